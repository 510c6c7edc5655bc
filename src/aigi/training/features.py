"""The ``features`` trainer: a detector head on cached frozen features.

With the backbone out of the loop an epoch over thousands of images takes well
under a second on a CPU, so we train full epochs and keep the state with the
best validation AP (ties: lower validation loss). When augmentation changes the
pixels every epoch (or ``train.from_pixels`` asks for it) the features cannot be
cached, and the run goes to the ``pixels`` trainer instead.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch

from ..config.recipe import TrainConfig
from ..detectors import Detector
from .trainer import TrainContext, balance_weights, epoch_order, make_optimizer
from .validation import KeepBest, finish, format_row, validation_ap


def train_features(detector: Detector, train_samples, val_samples, ctx: TrainContext) -> dict[str, Any]:
    xva, yva, _ = ctx.features(val_samples, "val")
    if ctx.augment.active or ctx.config.from_pixels:
        from .pixels import train_pixels

        ctx.log(f"training from pixels (augmentation: {ctx.augment.active}): every epoch runs the backbone on every image")
        return train_pixels(detector, train_samples, val_samples, ctx)
    xtr, ytr, rows = ctx.features(train_samples, "train")
    return train_head(detector, xtr, ytr, xva, yva, ctx.config, ctx.log, balance_weights(rows, ctx.config.balance))


def train_head(detector: Detector, train: torch.Tensor, train_labels: torch.Tensor, val: torch.Tensor | None,
               val_labels: torch.Tensor | None, config: TrainConfig, log: Callable[[str], None],
               weights: torch.Tensor | None = None) -> dict[str, Any]:
    epochs, batch_size = config.epochs, config.batch_size
    gen = torch.Generator().manual_seed(config.seed)
    opt = make_optimizer(detector, config)
    device = detector.device
    best = KeepBest()
    history = []
    y = train_labels.float()
    steps_per_epoch = -(-train.shape[0] // batch_size)
    total_steps, step = epochs * steps_per_epoch, 0
    for epoch in range(1, epochs + 1):
        detector.train()
        order = epoch_order(train.shape[0], weights, gen)
        total = 0.0
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            detector.on_train_progress(step / max(1, total_steps - 1))
            step += 1
            logits = detector.head_from_features(train[idx].to(device))
            loss = detector.losses(logits, y[idx].to(device))["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        row = {"epoch": epoch, "train_loss": total / len(order), **detector.epoch_report()}
        if val is not None and val_labels is not None and len(val):
            detector.eval()
            with torch.no_grad():
                vlogits = detector.head_from_features(val.to(device)).float().cpu()
            vloss = float(torch.nn.functional.binary_cross_entropy_with_logits(vlogits, val_labels.float()))
            vap = validation_ap(val_labels, vlogits)
            row.update(val_loss=vloss, val_ap=vap)
            best.offer((0.0 if math.isnan(vap) else vap, -vloss), detector, epoch)
        history.append(row)
        if epoch == 1 or epoch == epochs or epoch % max(1, epochs // 10) == 0:
            log(format_row(row))
    return finish(best, detector, config.epochs, config.keep_best, log, history)
