"""Temperature and Platt scaling recover known maps."""
from __future__ import annotations

import pytest
import torch

from aigi.detectors.calibration import apply, fit


def _data(a: float, b: float, n=4000, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, generator=g) * 3
    labels = (torch.rand(n, generator=g) < torch.sigmoid(a * logits + b)).float()
    return logits, labels


def test_temperature_recovers_overconfidence():
    logits, labels = _data(0.5, 0.0)  # true probabilities come from logits / 2
    cal = fit(logits, labels, "temperature")
    assert cal["temperature"] == pytest.approx(2.0, rel=0.15)
    assert torch.allclose(apply(logits, cal), logits / cal["temperature"])


def test_platt_recovers_slope_and_offset():
    logits, labels = _data(0.7, -0.8, seed=1)
    cal = fit(logits, labels, "platt")
    assert cal["a"] == pytest.approx(0.7, abs=0.1) and cal["b"] == pytest.approx(-0.8, abs=0.15)


def test_none_and_unknown():
    x = torch.tensor([0.3, -1.0])
    assert torch.equal(apply(x, None), x)
    with pytest.raises(ValueError, match="unknown calibration"):
        fit(x, torch.tensor([0.0, 1.0]), "isotonic")
