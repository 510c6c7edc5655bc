"""FeatDistill's ``two_stage`` trainer, resumable at any step (docs/methods/featdistill.md).

Stage 1 (``stage1_epochs``): BCE. At the boundary the model is snapshotted —
saved as a usable detector in ``<run>/stage1`` and frozen as the teacher.
Stage 2: ``BCE + λ · L_distill`` with the distillation the expert names
(:mod:`.distillation`: ``l2``, ``crd`` or ``none``).

It runs in the common step loop (:mod:`aigi.training.loop`), which checkpoints
after every epoch, every ``checkpoint_every`` steps and on Ctrl-C; with
``resume: true`` training continues from the newest checkpoint — across the
stage boundary too — and reaches the same weights as an uninterrupted run.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch

from ...data.datasets import Sample
from ...errors import InputError
from ...training.loop import Task, TrainLoop
from ...training.pixels import PixelDataset, epoch_loader
from ...training.trainer import TrainContext
from ...training.validation import ap_result
from .distillation import DISTILLATIONS
from .model import FeatDistillExpert


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffled sample order of one epoch: a function of (seed, epoch) only, so a resumed epoch replays it."""
    return np.random.default_rng([seed, epoch]).permutation(n)


class TwoStageTask(Task):
    """One expert's run in the step loop: the stage of each epoch, the teacher it begins stage 2
    with, and the distillation's state (teacher weights, momentum, queue) in every checkpoint."""

    def __init__(self, detector: FeatDistillExpert, train_samples: Sequence[Sample], val_samples: Sequence[Sample],
                 ctx: TrainContext) -> None:
        config = ctx.config
        if detector.distill not in DISTILLATIONS:
            raise InputError(f"unknown distillation '{detector.distill}' (known: {', '.join(DISTILLATIONS.names())})")
        self.detector, self.log, self.ctx = detector, ctx.log, ctx
        self.epochs, self.batch_size, self.seed, self.workers = config.epochs, config.batch_size, config.seed, config.workers
        self.stage1 = min(detector.stage1_epochs, self.epochs)
        self.distiller = DISTILLATIONS.get(detector.distill)(detector)
        self.data = PixelDataset(train_samples, detector.backbone.preprocess, ctx.augment, self.seed)
        self.per_epoch = math.ceil(len(self.data) / self.batch_size)
        self.validate_ap = ctx.validation(detector, val_samples)

    def stage(self, epoch: int) -> int:
        return 1 if epoch <= self.stage1 else 2

    def extra_parameters(self) -> list[torch.nn.Parameter]:
        return [p for m in self.distiller.modules() for p in m.parameters()]

    def fingerprint(self) -> dict[str, Any]:
        return {"distill": self.detector.distill, "stage1_epochs": self.stage1}

    def order(self, epoch: int) -> torch.Tensor:
        return torch.from_numpy(epoch_order(len(self.data), self.seed, epoch))

    def batches(self, chunks: list[list[int]], epoch: int):
        return epoch_loader(self.data, chunks, epoch, self.workers)

    def row_start(self, epoch: int) -> dict[str, Any]:
        return {"stage": self.stage(epoch)}

    def begin_epoch(self, epoch: int) -> None:
        det = self.detector
        if self.stage(epoch) == 2 and self.distiller.teacher is None and det.distill != "none":
            self.distiller.begin()
            self.log(f"stage 2: teacher = the stage-1 model ({det.distill} distillation, λ = {det.distill_weight})")
        for m in self.distiller.modules():
            m.train()
        self.epoch, self.current = epoch, self.stage(epoch)

    def step(self, batch, weight: float, loop: TrainLoop) -> dict[str, float]:
        det = self.detector
        pixels, labels = batch[0].to(det.device), batch[1].to(det.device)
        with loop.autocast():
            prefix = det.prefix(pixels)  # the frozen part, once for student and teacher
            tokens, embed, logits = det.run(prefix)
            parts = det.losses(logits.float(), labels)
            if self.current == 2:
                d = self.distiller.loss(prefix, tokens, embed)
                if d is not None:
                    parts["distill"] = d
                    parts["loss"] = parts["loss"] + det.distill_weight * d
        loop.backward(parts["loss"] * weight)
        return {k: float(v.detach()) for k, v in parts.items()}

    def after_step(self, step: int, total: int) -> dict[str, float]:
        first = self.stage1 * self.per_epoch
        return self.distiller.after_step(step - first, total - first) if step > first else {}

    def validate(self) -> tuple[dict[str, Any], tuple | None]:
        ap = self.validate_ap()
        # ties go to the later epoch: the more trained (stage-2) model
        return ap_result(ap, self.epoch)

    def end_epoch(self, epoch: int) -> None:
        checkpoints = self.ctx.checkpoint_dir
        if epoch == self.stage1 and checkpoints is not None and self.ctx.is_main:
            self.detector.save(checkpoints.parent / "stage1")
            self.log(f"stage 1 done: {checkpoints.parent / 'stage1'} (the teacher of stage 2)")

    def state(self) -> dict[str, torch.Tensor]:
        return self.distiller.state()

    def load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        self.distiller.load_state(tensors)


def train_two_stage(detector: FeatDistillExpert, train_samples: Sequence[Sample], val_samples: Sequence[Sample],
                    ctx: TrainContext) -> dict[str, Any]:
    task = TwoStageTask(detector, train_samples, val_samples, ctx)
    ctx.log(f"two-stage training: stage 1 = BCE for {task.stage1} epoch(s), stage 2 = BCE + {detector.distill_weight} x "
            f"{detector.distill} for {task.epochs - task.stage1} epoch(s); {task.per_epoch} batches of "
            f"{task.batch_size} per epoch")
    return TrainLoop(detector, task, ctx, len(task.data)).run()
