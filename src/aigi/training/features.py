"""The ``features`` trainer: a detector head on cached frozen features.

With the backbone out of the loop an epoch over thousands of images takes well
under a second on a CPU, so we train full epochs and keep the state with the
best validation AP (ties: lower validation loss). When augmentation changes the
pixels every epoch (or ``train.from_pixels`` asks for it) the features cannot be
cached, and the run goes to the ``pixels`` trainer instead.
"""
from __future__ import annotations

from typing import Any

import torch

from ..detectors import Detector
from .loop import SequentialOrders, Task, TrainLoop
from .trainer import TrainContext, balance_weights
from .validation import ap_result, validation_ap


class HeadTask(Task):
    """Batches are rows of the cached features; the order is drawn from one generator, epoch after epoch."""

    def __init__(self, detector: Detector, train: torch.Tensor, labels: torch.Tensor, val: torch.Tensor,
                 val_labels: torch.Tensor, weights: torch.Tensor | None, seed: int) -> None:
        self.detector, self.x, self.y, self.val, self.val_labels = detector, train, labels.float(), val, val_labels
        self.order = SequentialOrders(train.shape[0], seed, weights)

    def batches(self, chunks: list[list[int]], epoch: int):
        for chunk in chunks:
            idx = torch.tensor(chunk, dtype=torch.long)
            yield self.x[idx], self.y[idx]

    def step(self, batch, weight: float, loop: TrainLoop) -> dict[str, float]:
        det = self.detector
        with loop.autocast():
            loss = det.losses(det.head_from_features(batch[0].to(det.device)), batch[1].to(det.device))["loss"]
        loop.backward(loss * weight)
        return {"train_loss": float(loss.detach())}

    def validate(self) -> tuple[dict[str, Any], tuple | None]:
        if not len(self.val):
            return {}, None
        with torch.no_grad():
            logits = self.detector.head_from_features(self.val.to(self.detector.device)).float().cpu()
        loss = float(torch.nn.functional.binary_cross_entropy_with_logits(logits, self.val_labels.float()))
        ap = validation_ap(self.val_labels, logits)
        fields, key = ap_result(ap, -loss)
        return {"val_loss": loss, **fields}, key


def train_features(detector: Detector, train_samples, val_samples, ctx: TrainContext) -> dict[str, Any]:
    xva, yva, _ = ctx.features(val_samples, "val")
    if ctx.augment.active or ctx.config.from_pixels:
        from .pixels import train_pixels

        ctx.log(f"training from pixels (augmentation: {ctx.augment.active}): every epoch runs the backbone on every image")
        return train_pixels(detector, train_samples, val_samples, ctx)
    xtr, ytr, rows = ctx.features(train_samples, "train")
    task = HeadTask(detector, xtr, ytr, xva, yva, balance_weights(rows, ctx.config.balance), ctx.config.seed)
    return TrainLoop(detector, task, ctx, xtr.shape[0]).run()
