"""Calibration: make P(fake) mean what it says, fitted on a validation split.

Temperature scaling divides the logit by one learned ``T``; Platt scaling learns
``a · logit + b``. Neither changes the ranking (AP, AUC), both change accuracy
at 0.5 and the expected calibration error. The fitted map is stored in the
detector's config and applied to every probability it reports.
"""
from __future__ import annotations

from typing import Any

import torch

from ..errors import InputError

METHODS = ("temperature", "platt")


def fit(logits: torch.Tensor, labels: torch.Tensor, method: str, steps: int = 200) -> dict[str, Any]:
    """Minimise the validation negative log-likelihood with L-BFGS."""
    if method not in METHODS:
        raise InputError(f"unknown calibration '{method}' (known: {', '.join(METHODS)})")
    x, y = logits.detach().double().flatten(), labels.detach().double().flatten()
    if method == "temperature":
        log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        params = [log_t]

        def mapped() -> torch.Tensor:
            return x / log_t.exp()
    else:
        a = torch.ones(1, dtype=torch.float64, requires_grad=True)
        b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        params = [a, b]

        def mapped() -> torch.Tensor:
            return a * x + b

    opt = torch.optim.LBFGS(params, lr=0.5, max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(mapped(), y)
        loss.backward()
        return loss

    opt.step(closure)
    if method == "temperature":
        return {"method": "temperature", "temperature": float(log_t.detach().exp())}
    return {"method": "platt", "a": float(a.detach()), "b": float(b.detach())}


def apply(logits: torch.Tensor, calibration: dict[str, Any] | None) -> torch.Tensor:
    """Calibrated logits (unchanged when there is no calibration)."""
    if not calibration:
        return logits
    if calibration["method"] == "temperature":
        return logits / calibration["temperature"]
    return calibration["a"] * logits + calibration["b"]
