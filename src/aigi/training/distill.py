"""FeatDistill's two-stage training, resumable at any step (seed 000, methods.md §5).

Stage 1 (``stage1_epochs``): BCE. At the boundary the model is snapshotted —
saved as a usable detector in ``<run>/stage1`` and frozen as the teacher.
Stage 2: ``BCE + λ · L_distill`` with the distillation the expert names:

- ``l2``: mean squared difference of the final block's dense patch tokens,
  student vs the fixed stage-1 teacher (paper §4.7). The mean over tokens and
  channels, not the sum, so λ = 1 keeps it on the scale of the BCE;
- ``crd``: InfoNCE between the student's projected embedding and a momentum
  teacher's key for the same image, against a MoCo queue of earlier keys; the
  teacher's momentum follows the cosine schedule (paper §5.1);
- ``none``: BCE throughout (the ablation).

A checkpoint (safetensors + JSON, :mod:`aigi.training.checkpoint`) is written
after every epoch, every ``checkpoint_every`` steps and on Ctrl-C; with
``resume: true`` training continues from it — across the stage boundary too —
and reaches the same weights as an uninterrupted run.
"""
from __future__ import annotations

import copy
import math
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..data.datasets import Sample
from ..registry import Registry
from .checkpoint import (CheckpointError, has_checkpoint, load_checkpoint, load_optimizer_state, load_rng_state, optimizer_state,
                         prefixed, rng_state, save_checkpoint, unprefixed)
from .contrastive import NegativeQueue, ProjectionHead, ema_update, info_nce, momentum_at
from .finetune import PixelDataset, _collate
from .keep_best import KeepBest, ValidationAP, format_row

DISTILLATIONS: Registry[Any] = Registry("distillation")


def frozen_copy(detector) -> nn.Module:
    teacher = copy.deepcopy(detector)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher.eval()


class NoDistillation:
    """BCE only in both stages; keeps nothing."""

    def __init__(self, detector, settings: dict[str, Any]) -> None:
        self.detector, self.settings = detector, settings
        self.teacher: nn.Module | None = None

    def modules(self) -> list[nn.Module]:
        """Training-only trainable modules (optimised with the student, checkpointed, never saved with it)."""
        return []

    def begin(self) -> None:
        """Stage 2 starts: build the teacher from the student as it is now."""

    def loss(self, prefix: torch.Tensor, tokens: torch.Tensor, embed: torch.Tensor) -> torch.Tensor | None:
        return None

    def after_step(self, step: int, total: int) -> dict[str, float]:
        return {}

    def state(self) -> dict[str, torch.Tensor]:
        """What a checkpoint keeps: the teacher's tuned weights once stage 2 has begun."""
        return prefixed("teacher.", self.teacher.state_to_save()) if self.teacher is not None else {}

    def load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        """Rebuild the stage-2 state from a checkpoint (nothing to do when it was taken in stage 1)."""
        if any(k.startswith("teacher.") for k in tensors):
            self.begin()
            self.teacher.load_saved_state(unprefixed("teacher.", tensors))


class PatchL2Distillation(NoDistillation):
    """``‖M_student − M_teacher‖²`` on dense patch tokens, teacher fixed at the stage-1 model."""

    def begin(self) -> None:
        self.teacher = frozen_copy(self.detector)

    def loss(self, prefix, tokens, embed):
        with torch.no_grad():
            target = self.teacher.run(prefix)[0]
        patches = self.detector.model.patch_tokens
        return (patches(tokens).float() - patches(target).float()).pow(2).mean()


class ContrastiveDistillation(NoDistillation):
    """CRD with a MoCo-style queue and a momentum (EMA) teacher on a cosine momentum schedule."""

    def __init__(self, detector, settings):
        super().__init__(detector, settings)
        c = detector.crd
        dim = detector.model.embed_dim
        self.temperature, self.m_base, self.m_max = float(c["temperature"]), float(c["m_base"]), float(c["m_max"])
        self.projection = ProjectionHead(dim, int(c["hidden"]), int(c["dim"])).to(detector.device)
        self.queue = NegativeQueue(int(c["queue"]), int(c["dim"])).to(detector.device)
        self.teacher_projection: nn.Module | None = None
        self._key: torch.Tensor | None = None

    def modules(self):
        return [self.projection]

    def begin(self):
        self.teacher = frozen_copy(self.detector)
        self.teacher_projection = frozen_copy(self.projection)

    def _pairs(self):
        """(teacher, student) tensors the EMA moves: tuned weights and the projection."""
        student = dict(self.detector.named_parameters())
        teacher = dict(self.teacher.named_parameters())
        names = [n for n, p in student.items() if p.requires_grad]
        t = [teacher[n] for n in names] + list(self.teacher_projection.parameters())
        s = [student[n] for n in names] + list(self.projection.parameters())
        return t, s

    def loss(self, prefix, tokens, embed):
        with torch.no_grad():
            key = self.teacher_projection(self.teacher.run(prefix)[1].float())
        query = self.projection(embed.float())
        self._key = key
        return info_nce(query, key, self.queue.keys().to(query.dtype), self.temperature)

    def after_step(self, step, total):
        momentum = momentum_at(step, total, self.m_base, self.m_max)
        ema_update(*self._pairs(), momentum)
        if self._key is not None:
            self.queue.push(self._key)
        return {"momentum": momentum, "queue": float(len(self.queue))}

    def state(self):
        out = {**super().state(), **prefixed("projection.", self.projection.state_dict())}
        if self.teacher is not None:
            out.update(prefixed("teacher_projection.", self.teacher_projection.state_dict()))
            out.update(prefixed("queue.", self.queue.state_dict()))
        return out

    def load_state(self, tensors):
        self.projection.load_state_dict(unprefixed("projection.", tensors))
        super().load_state(tensors)
        if self.teacher is not None:
            self.teacher_projection.load_state_dict(unprefixed("teacher_projection.", tensors))
            self.queue.load_state_dict(unprefixed("queue.", tensors))


DISTILLATIONS.register("none", NoDistillation)
DISTILLATIONS.register("l2", PatchL2Distillation)
DISTILLATIONS.register("crd", ContrastiveDistillation)


PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


def autocast(precision: str, device: torch.device):
    """Mixed precision for the forward pass (bf16 needs no loss scaling); fp32 is a no-op."""
    dtype = PRECISIONS[precision]
    return torch.autocast(device_type=device.type, dtype=dtype) if dtype else nullcontext()


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffled sample order of one epoch: a function of (seed, epoch) only, so a resumed epoch replays it."""
    return np.random.default_rng([seed, epoch]).permutation(n)


class TwoStageTrainer:
    """One expert's run: the optimiser, the data order, the distillation and the checkpoint."""

    def __init__(self, detector, train_samples: Sequence[Sample], val_samples: Sequence[Sample],
                 settings: dict[str, Any], augment, log: Callable[[str], None], progress_factory=None) -> None:
        self.detector, self.log, self.progress_factory = detector, log, progress_factory
        self.epochs, self.batch_size = int(settings.get("epochs", 3)), int(settings.get("batch_size", 32))
        self.seed, lr = int(settings.get("seed", 0)), float(settings.get("lr", 1e-4))
        self.every = int(settings.get("checkpoint_every") or 0)
        self.workers, self.precision = int(settings.get("workers", 0)), str(settings.get("precision", "fp32"))
        if self.precision not in PRECISIONS:
            raise ValueError(f"train.precision must be one of {', '.join(PRECISIONS)}, not '{self.precision}'")
        if detector.distill not in DISTILLATIONS:
            raise ValueError(f"unknown distillation '{detector.distill}' (known: {', '.join(DISTILLATIONS.names())})")
        self.ckpt_dir = Path(settings["checkpoint_dir"]) if settings.get("checkpoint_dir") else None
        self.stage1 = min(detector.stage1_epochs, self.epochs)
        self.distiller = DISTILLATIONS.get(detector.distill)(detector, settings)
        extra = [p for m in self.distiller.modules() for p in m.parameters()]
        groups = detector.param_groups(lr) + ([{"params": extra, "lr": lr}] if extra else [])
        self.opt = torch.optim.AdamW(groups, lr=lr, weight_decay=float(settings.get("weight_decay", 0.0)))
        self.data = PixelDataset(train_samples, detector.backbone.preprocess, augment, self.seed)
        self.per_epoch = math.ceil(len(self.data) / self.batch_size)
        self.stage2_total = (self.epochs - self.stage1) * self.per_epoch
        self.validate = ValidationAP(detector, val_samples, self.batch_size)
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
                                             collate_fn=_collate, sampler=order[self.start_batch * self.batch_size :].tolist(),
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
        if keep_best:
            self.best.restore(det, self.log)
        return {"epochs": self.epochs, "best_epoch": self.best.epoch if keep_best else self.epochs,
                "history": self.history}


def train_two_stage(detector, train_samples: Sequence[Sample], val_samples: Sequence[Sample],
                    settings: dict[str, Any], augment, log: Callable[[str], None],
                    progress_factory=None) -> dict[str, Any]:
    trainer = TwoStageTrainer(detector, train_samples, val_samples, settings, augment, log, progress_factory)
    return trainer.run(bool(settings.get("resume")), bool(settings.get("keep_best", True)))
