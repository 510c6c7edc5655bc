"""FeatDistill's ``two_stage`` trainer, resumable at any step (docs/methods/featdistill.md).

Stage 1 (``stage1_epochs``): BCE. At the boundary the model is snapshotted —
saved as a usable detector in ``<run>/stage1`` and frozen as the teacher.
Stage 2: ``BCE + λ · L_distill`` with the distillation the expert names
(:mod:`.distillation`: ``l2``, ``crd`` or ``none``).

A checkpoint (safetensors + JSON, :mod:`aigi.training.checkpoint`) is written
after every epoch, every ``checkpoint_every`` steps and on Ctrl-C; with
``resume: true`` training continues from it — across the stage boundary too —
and reaches the same weights as an uninterrupted run.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ...data.datasets import Sample
from ...errors import InputError
from ...training.checkpoint import (
    CheckpointError,
    has_checkpoint,
    load_checkpoint,
    load_optimizer_state,
    load_rng_state,
    optimizer_state,
    prefixed,
    rng_state,
    save_checkpoint,
    unprefixed,
)
from ...training.pixels import PixelDataset, collate
from ...training.precision import autocast
from ...training.trainer import TrainContext, make_optimizer
from ...training.validation import KeepBest, ValidationAP, finish, format_row
from .distillation import DISTILLATIONS
from .model import FeatDistillExpert


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffled sample order of one epoch: a function of (seed, epoch) only, so a resumed epoch replays it."""
    return np.random.default_rng([seed, epoch]).permutation(n)


class TwoStageTrainer:
    """One expert's run: the optimiser, the data order, the distillation and the checkpoint."""

    def __init__(self, detector: FeatDistillExpert, train_samples: Sequence[Sample], val_samples: Sequence[Sample],
                 ctx: TrainContext) -> None:
        config = ctx.config
        self.detector, self.log, self.progress_factory = detector, ctx.log, ctx.progress_factory
        self.epochs, self.batch_size, self.seed = config.epochs, config.batch_size, config.seed
        self.every, self.workers, self.precision = config.checkpoint_every, config.workers, config.precision
        if detector.distill not in DISTILLATIONS:
            raise InputError(f"unknown distillation '{detector.distill}' (known: {', '.join(DISTILLATIONS.names())})")
        self.ckpt_dir: Path | None = ctx.checkpoint_dir
        self.stage1 = min(detector.stage1_epochs, self.epochs)
        self.distiller = DISTILLATIONS.get(detector.distill)(detector)
        self.opt = make_optimizer(detector, config, [p for m in self.distiller.modules() for p in m.parameters()])
        self.data = PixelDataset(train_samples, detector.backbone.preprocess, ctx.augment, self.seed)
        self.per_epoch = math.ceil(len(self.data) / self.batch_size)
        self.stage2_total = (self.epochs - self.stage1) * self.per_epoch
        self.validate = ValidationAP(detector, val_samples, self.batch_size, ctx.cache_root)
        self.best, self.history = KeepBest(), []
        self.epoch, self.start_batch, self.step = 1, 0, 0
        self.position = (1, 0)  # (epoch, next batch) a checkpoint taken now would resume at
        self.seen, self.totals = 0, {}  # this epoch's running sums (kept in a mid-epoch checkpoint)
        self.status: dict[str, float] = {}  # the distillation's latest state (momentum, queue fill)

    # ---- checkpoints ------------------------------------------------------------------
    def save(self) -> None:
        if self.ckpt_dir is None:
            return
        tensors = prefixed("model.", self.detector.state_to_save())
        opt_tensors, opt_meta = optimizer_state(self.opt)
        tensors.update(prefixed("optim.", opt_tensors))
        tensors.update(prefixed("rng.", rng_state()))
        tensors.update(prefixed("distill.", self.distiller.state()))
        if self.best.state is not None:
            tensors.update(prefixed("best.", self.best.state))
        mid_epoch = self.position[1] > 0
        save_checkpoint(self.ckpt_dir, tensors, {
            "epoch": self.position[0], "batch": self.position[1], "step": self.step, "epochs": self.epochs,
            "stage1_epochs": self.stage1, "per_epoch": self.per_epoch, "distill": self.detector.distill,
            "history": self.history, "optimizer": opt_meta, "status": self.status,
            "best_key": list(self.best.key) if self.best.key is not None else None, "best_epoch": self.best.epoch,
            "running": {"seen": self.seen if mid_epoch else 0, "totals": self.totals if mid_epoch else {}},
        })

    def restore(self) -> bool:
        """Continue from the checkpoint; False when there is none."""
        d = self.ckpt_dir
        if d is None or not has_checkpoint(d):
            return False
        tensors, meta = load_checkpoint(d)
        if (meta["distill"], meta["per_epoch"], meta["stage1_epochs"]) != (self.detector.distill, self.per_epoch, self.stage1):
            raise CheckpointError(f"{d}: checkpoint is from a different recipe (distill {meta['distill']}, "
                                  f"{meta['per_epoch']} batches/epoch, stage 1 = {meta['stage1_epochs']} epochs)")
        self.detector.load_saved_state(unprefixed("model.", tensors))
        load_optimizer_state(self.opt, unprefixed("optim.", tensors), meta["optimizer"])
        load_rng_state(unprefixed("rng.", tensors))
        self.distiller.load_state(unprefixed("distill.", tensors))
        self.history, self.step, self.status = meta["history"], int(meta["step"]), dict(meta.get("status") or {})
        self.epoch, self.start_batch = int(meta["epoch"]), int(meta["batch"])
        self.position = (self.epoch, self.start_batch)
        self.seen, self.totals = int(meta["running"]["seen"]), dict(meta["running"]["totals"])
        if meta.get("best_key") is not None:
            self.best.key, self.best.epoch = tuple(meta["best_key"]), int(meta["best_epoch"])
            self.best.state = unprefixed("best.", tensors)
        self.log(f"resumed from {d}: epoch {self.epoch}, batch {self.start_batch}, step {self.step} "
                 f"(stage {1 if self.epoch <= self.stage1 else 2})")
        return True

    # ---- training ---------------------------------------------------------------------
    def train_step(self, pixels: torch.Tensor, labels: torch.Tensor, stage: int) -> dict[str, torch.Tensor]:
        det = self.detector
        with autocast(self.precision, det.device):
            prefix = det.prefix(pixels)  # the frozen part, once for student and teacher
            tokens, embed, logits = det.run(prefix)
            parts = det.losses(logits.float(), labels)
            if stage == 2:
                d = self.distiller.loss(prefix, tokens, embed)
                if d is not None:
                    parts["distill"] = d
                    parts["loss"] = parts["loss"] + det.distill_weight * d
        self.opt.zero_grad(set_to_none=True)
        parts["loss"].backward()
        self.opt.step()
        return parts

    def run_epoch(self, stage: int) -> None:
        det, epoch = self.detector, self.epoch
        self.data.epoch = epoch
        det.train()
        for m in self.distiller.modules():
            m.train()
        if self.start_batch == 0:
            self.seen, self.totals = 0, {}
        bar = self.progress_factory(len(self.data), f"epoch {epoch}/{self.epochs} (stage {stage})") if self.progress_factory else None
        # workers see the dataset as it is when the loader starts: one loader per epoch; its own
        # generator, so starting it draws nothing from the global RNG (dropout replays on resume)
        order = epoch_order(len(self.data), self.seed, epoch)
        loader = torch.utils.data.DataLoader(self.data, batch_size=self.batch_size, num_workers=self.workers,
                                             collate_fn=collate, sampler=order[self.start_batch * self.batch_size :].tolist(),
                                             generator=torch.Generator().manual_seed(self.seed * 100003 + epoch))
        tenth = max(1, self.per_epoch // 10)
        for b, batch in enumerate(loader, start=self.start_batch):
            if batch is None:  # every image of the batch unreadable
                self.position = (epoch, b + 1)
                continue
            labels = batch[1].to(det.device)
            parts = self.train_step(batch[0].to(det.device), labels, stage)
            self.step, self.position = self.step + 1, (epoch, b + 1)
            if stage == 2:
                self.status = self.distiller.after_step(self.step - self.stage1 * self.per_epoch, self.stage2_total)
            self.seen += len(labels)
            for k, v in parts.items():
                self.totals[k] = self.totals.get(k, 0.0) + float(v.detach()) * len(labels)
            if bar:
                bar.update(len(labels))
            if (b + 1) % tenth == 0 and b + 1 < self.per_epoch:  # long CPU epochs show progress in the log
                self.log(f"epoch {epoch}: {self.seen} images, loss {self.totals['loss'] / max(1, self.seen):.4f}")
            if self.every and self.step % self.every == 0 and b + 1 < self.per_epoch:
                self.save()
        if bar:
            bar.close()

    def end_epoch(self, stage: int) -> None:
        row: dict[str, Any] = {"epoch": self.epoch, "stage": stage, "images": self.seen,
                               **{k: v / max(1, self.seen) for k, v in self.totals.items()}, **self.status}
        row["val_ap"] = self.validate()
        # ties go to the later epoch: the more trained (stage-2) model
        self.best.offer((0.0 if math.isnan(row["val_ap"]) else row["val_ap"], self.epoch), self.detector, self.epoch)
        self.history.append(row)
        self.log(format_row(row))
        if self.epoch == self.stage1 and self.ckpt_dir is not None:
            self.detector.save(self.ckpt_dir.parent / "stage1")
            self.log(f"stage 1 done: {self.ckpt_dir.parent / 'stage1'} (the teacher of stage 2)")
        self.epoch, self.start_batch = self.epoch + 1, 0
        self.position = (self.epoch, 0)
        self.save()

    def run(self, resume: bool, keep_best: bool) -> dict[str, Any]:
        if not (resume and self.restore()):
            torch.manual_seed(self.seed)
        det = self.detector
        self.log(f"two-stage training: stage 1 = BCE for {self.stage1} epoch(s), stage 2 = BCE + {det.distill_weight} x "
                 f"{det.distill} for {self.epochs - self.stage1} epoch(s); {self.per_epoch} batches of "
                 f"{self.batch_size} per epoch")
        try:
            while self.epoch <= self.epochs:
                stage = 1 if self.epoch <= self.stage1 else 2
                if stage == 2 and self.distiller.teacher is None and det.distill != "none":
                    self.distiller.begin()
                    self.log(f"stage 2: teacher = the stage-1 model ({det.distill} distillation, λ = {det.distill_weight})")
                self.run_epoch(stage)
                self.end_epoch(stage)
        except KeyboardInterrupt:
            self.save()
            self.log(f"interrupted: checkpoint at epoch {self.position[0]}, batch {self.position[1]} in "
                     f"{self.ckpt_dir}; continue with `aigi train ... --resume`")
            raise
        return finish(self.best, det, self.epochs, keep_best, self.log, self.history)


def train_two_stage(detector: FeatDistillExpert, train_samples: Sequence[Sample], val_samples: Sequence[Sample],
                    ctx: TrainContext) -> dict[str, Any]:
    trainer = TwoStageTrainer(detector, train_samples, val_samples, ctx)
    return trainer.run(ctx.config.resume, ctx.config.keep_best)
