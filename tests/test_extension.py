"""The extension promise: a new method is one class, one registration call and one
recipe. Nothing else in aigi is edited; training, evaluation, detection and
save/load all work through the registry."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import aigi
from aigi.config import ConfigError
from aigi.detectors import Detector
from aigi.registry import DETECTORS


class LayerMeanProbe(Detector):
    """A toy method: the mean of every block's CLS feature, through a small MLP."""

    name = "test-layer-mean"
    feature_key = "cls"  # frozen per-block CLS features: cached, trained by the `features` trainer

    def __init__(self, backbone: str = "random:tiny-clip", threshold: float = 0.5, width: int = 32,
                 hidden: int = 8) -> None:
        super().__init__(backbone, threshold)
        self.width, self.hidden = int(width), int(hidden)
        self.head = nn.Sequential(nn.Linear(self.width, self.hidden), nn.ReLU(), nn.Linear(self.hidden, 1))

    def params(self):
        return {"width": self.width, "hidden": self.hidden}

    @classmethod
    def backbone_params(cls, backbone):
        return {"width": backbone.width}

    def head_from_features(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features.float().mean(dim=1)).squeeze(-1)


DETECTORS.register(LayerMeanProbe.name, LayerMeanProbe)  # the one registration call

RECIPE = """\
detector: test-layer-mean
backbone: random:tiny-clip
params: {{hidden: 16}}
data: {{train: {train}, val: {val}}}
train: {{epochs: 30, batch_size: 16, lr: 0.01}}
output: {out}
"""


@pytest.fixture
def recipe(tiny_data, tmp_path):
    path = tmp_path / "toy.yaml"
    path.write_text(RECIPE.format(train=tiny_data / "train", val=tiny_data / "val", out=tmp_path / "run"))
    return path


def test_toy_method_trains_evaluates_detects_and_round_trips(recipe, tiny_data, tmp_path):
    run = aigi.train(recipe)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["validation"]["auc"] > 0.9  # the tiny data are separable: it learned
    det = aigi.load_detector(run)
    assert isinstance(det, LayerMeanProbe) and det.hidden == 16 and det.width == 32
    result = aigi.evaluate(run, tiny_data / "test")
    assert result.rows["all"]["auc"] > 0.9
    images = sorted((tiny_data / "test").rglob("*.png"))[:4]
    preds = list(aigi.detect(images, run))
    assert [p.path for p in preds] == [str(p) for p in images] and all(0 <= p.prob_fake <= 1 for p in preds)
    det.save(tmp_path / "copy")
    again = aigi.load_detector(tmp_path / "copy")
    x = torch.randn(3, 4, 32)
    with torch.no_grad():
        assert torch.equal(again.head_from_features(x), det.head_from_features(x))


def test_toy_method_params_are_checked_like_any_other(recipe):
    with pytest.raises(ConfigError, match=r"params\.hiden \(did you mean 'hidden'\?\)"):
        aigi.train(recipe, overrides=["params.hiden=4"])
    with pytest.raises(ConfigError, match=r"params\.hidden: expected int, got 'many'"):
        aigi.train(recipe, overrides=["params.hidden=many"])
    assert aigi.describe(recipe)["detector"] == "test-layer-mean"
