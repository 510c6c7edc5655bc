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
from .checkpoint import (CheckpointError, load_checkpoint, load_optimizer_state, load_rng_state, optimizer_state,
                         prefixed, rng_state, save_checkpoint, unprefixed)
from .contrastive import NegativeQueue, ProjectionHead, ema_update, info_nce, momentum_at
from .finetune import PixelDataset, _collate
from .keep_best import KeepBest, format_row, validation_ap

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
        return {}

    def load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        """Rebuild the stage-2 state from a checkpoint."""


class PatchL2Distillation(NoDistillation):
    """``‖M_student − M_teacher‖²`` on dense patch tokens, teacher fixed at the stage-1 model."""

    def begin(self) -> None:
        self.teacher = frozen_copy(self.detector)

    def loss(self, prefix, tokens, embed):
        with torch.no_grad():
            target = self.teacher.run(prefix)[0]
        patches = self.detector.model.patch_tokens
        return (patches(tokens).float() - patches(target).float()).pow(2).mean()

    def state(self):
        return prefixed("teacher.", self.teacher.state_to_save()) if self.teacher is not None else {}

    def load_state(self, tensors):
        if any(k.startswith("teacher.") for k in tensors):  # checkpointed in stage 2
            self.begin()
            self.teacher.load_saved_state(unprefixed("teacher.", tensors))


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
        self.momentum = self.m_base
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
        self.momentum = momentum_at(step, total, self.m_base, self.m_max)
        ema_update(*self._pairs(), self.momentum)
        if self._key is not None:
            self.queue.push(self._key)
        return {"momentum": self.momentum, "queue": float(len(self.queue))}

    def state(self):
        out = prefixed("projection.", self.projection.state_dict())
        if self.teacher is not None:
            out.update(prefixed("teacher.", self.teacher.state_to_save()))
            out.update(prefixed("teacher_projection.", self.teacher_projection.state_dict()))
            out.update(prefixed("queue.", self.queue.state_dict()))
        return out

    def load_state(self, tensors):
        self.projection.load_state_dict(unprefixed("projection.", tensors))
        if any(k.startswith("teacher.") for k in tensors):
            self.begin()
            self.teacher.load_saved_state(unprefixed("teacher.", tensors))
            self.teacher_projection.load_state_dict(unprefixed("teacher_projection.", tensors))
            self.queue.load_state_dict(unprefixed("queue.", tensors))


DISTILLATIONS.register("none", NoDistillation)
DISTILLATIONS.register("l2", PatchL2Distillation)
DISTILLATIONS.register("crd", ContrastiveDistillation)


class _Validation:
    """Validation AP per epoch: through the cached frozen prefix when there is one."""

    def __init__(self, detector, samples: Sequence[Sample], batch_size: int) -> None:
        self.detector, self.samples, self.batch_size = detector, list(samples), batch_size
        self.features = None
        self.labels = torch.tensor([s.label for s in self.samples], dtype=torch.float32)
        key = detector.cache_point()
        if key is not None and self.samples:
            from .feature_cache import FeatureCache

            res = FeatureCache(detector.backbone).extract([s.path for s in self.samples], keys=(key,),
                                                         batch_size=batch_size)
            self.features, self.labels = res.features[key], self.labels[res.kept]

    def __call__(self) -> float:
        if not self.samples:
            return float("nan")
        if self.features is not None:
            return validation_ap(self.labels, self.detector.probabilities_from_features(self.features, self.batch_size))
        preds = self.detector.predict([str(s.path) for s in self.samples], batch_size=self.batch_size)
        ok = [i for i, p in enumerate(preds) if p.error is None]
        return validation_ap(self.labels[ok], torch.tensor([preds[i].prob_fake for i in ok]))


PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


def autocast(precision: str, device: torch.device):
    """Mixed precision for the forward pass (bf16 needs no loss scaling); fp32 is a no-op."""
    dtype = PRECISIONS[precision]
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype is not None) if dtype else nullcontext()


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffled sample order of one epoch: a function of (seed, epoch) only, so a resumed epoch replays it."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def train_two_stage(detector, train_samples: Sequence[Sample], val_samples: Sequence[Sample],
                    settings: dict[str, Any], augment, log: Callable[[str], None],
                    progress_factory=None) -> dict[str, Any]:
    epochs, batch_size = int(settings.get("epochs", 3)), int(settings.get("batch_size", 32))
    seed, lr = int(settings.get("seed", 0)), float(settings.get("lr", 1e-4))
    every = int(settings.get("checkpoint_every") or 0)
    workers, precision = int(settings.get("workers", 0)), str(settings.get("precision", "fp32"))
    if precision not in PRECISIONS:
        raise ValueError(f"train.precision must be one of {', '.join(PRECISIONS)}, not '{precision}'")
    ckpt_dir = Path(settings["checkpoint_dir"]) if settings.get("checkpoint_dir") else None
    stage1 = min(detector.stage1_epochs, epochs)
    if detector.distill not in DISTILLATIONS:
        raise ValueError(f"unknown distillation '{detector.distill}' (known: {', '.join(DISTILLATIONS.names())})")
    distiller = DISTILLATIONS.get(detector.distill)(detector, settings)
    extra = [p for m in distiller.modules() for p in m.parameters()]
    groups = detector.param_groups(lr) + ([{"params": extra, "lr": lr}] if extra else [])
    opt = torch.optim.AdamW(groups, lr=lr, weight_decay=float(settings.get("weight_decay", 0.0)))
    data = PixelDataset(train_samples, detector.backbone.preprocess, augment, seed)
    per_epoch = math.ceil(len(data) / batch_size)
    tenth = max(1, per_epoch // 10)
    stage2_total = (epochs - stage1) * per_epoch
    validate = _Validation(detector, val_samples, batch_size)
    best, history = KeepBest(), []
    epoch, start_batch, step = 1, 0, 0
    seen, totals = 0, {}  # this epoch's running sums (kept in a mid-epoch checkpoint)
    status: dict[str, float] = {}  # the distillation's latest state (momentum, queue fill)

    def snapshot(position: tuple[int, int]) -> None:
        if ckpt_dir is None:
            return
        tensors = prefixed("model.", detector.state_to_save())
        opt_tensors, opt_meta = optimizer_state(opt)
        tensors.update(prefixed("optim.", opt_tensors))
        tensors.update(prefixed("rng.", rng_state()))
        tensors.update(prefixed("distill.", distiller.state()))
        if best.state is not None:
            tensors.update(prefixed("best.", best.state))
        save_checkpoint(ckpt_dir, tensors, {
            "epoch": position[0], "batch": position[1], "step": step, "epochs": epochs, "stage1_epochs": stage1,
            "per_epoch": per_epoch, "distill": detector.distill, "history": history, "optimizer": opt_meta,
            "best_key": list(best.key) if best.key is not None else None, "best_epoch": best.epoch,
            "running": {"seen": seen, "totals": totals} if position[1] else {"seen": 0, "totals": {}},
        })

    if settings.get("resume") and ckpt_dir is not None and (ckpt_dir.exists() or ckpt_dir.with_name(ckpt_dir.name + ".old").exists()):
        tensors, meta = load_checkpoint(ckpt_dir)
        if (meta["distill"], meta["per_epoch"], meta["stage1_epochs"]) != (detector.distill, per_epoch, stage1):
            raise CheckpointError(f"{ckpt_dir}: checkpoint is from a different recipe (distill {meta['distill']}, "
                                  f"{meta['per_epoch']} batches/epoch, stage 1 = {meta['stage1_epochs']} epochs)")
        detector.load_saved_state(unprefixed("model.", tensors))
        load_optimizer_state(opt, unprefixed("optim.", tensors), meta["optimizer"])
        load_rng_state(unprefixed("rng.", tensors))
        distiller.load_state(unprefixed("distill.", tensors))
        history, step = meta["history"], int(meta["step"])
        epoch, start_batch = int(meta["epoch"]), int(meta["batch"])
        seen, totals = int(meta["running"]["seen"]), dict(meta["running"]["totals"])
        if meta.get("best_key") is not None:
            best.key, best.epoch, best.state = tuple(meta["best_key"]), int(meta["best_epoch"]), unprefixed("best.", tensors)
        log(f"resumed from {ckpt_dir}: epoch {epoch}, batch {start_batch}, step {step} "
            f"(stage {1 if epoch <= stage1 else 2})")
    else:
        torch.manual_seed(seed)

    log(f"two-stage training: stage 1 = BCE for {stage1} epoch(s), stage 2 = BCE + {detector.distill_weight} x "
        f"{detector.distill} for {epochs - stage1} epoch(s); {per_epoch} batches of {batch_size} per epoch")
    position = (epoch, start_batch)
    try:
        while epoch <= epochs:
            stage = 1 if epoch <= stage1 else 2
            if stage == 2 and distiller.teacher is None and detector.distill != "none":
                distiller.begin()
                log(f"stage 2: teacher = the stage-1 model ({detector.distill} distillation, λ = {detector.distill_weight})")
            data.epoch = epoch
            order = epoch_order(len(data), seed, epoch)
            detector.train()
            for m in distiller.modules():
                m.train()
            if start_batch == 0:
                seen, totals = 0, {}
            bar = progress_factory(len(data), f"epoch {epoch}/{epochs} (stage {stage})") if progress_factory else None
            # workers see the dataset as it is when the loader starts: one loader per epoch; its own
            # generator, so starting it draws nothing from the global RNG (dropout replays on resume)
            loader = torch.utils.data.DataLoader(data, batch_size=batch_size, num_workers=workers, collate_fn=_collate,
                                                 sampler=order[start_batch * batch_size :].tolist(),
                                                 generator=torch.Generator().manual_seed(seed * 100003 + epoch))
            for b, batch in enumerate(loader, start=start_batch):
                if batch is None:
                    position = (epoch, b + 1)
                    continue
                pixels, labels = batch[0].to(detector.device), batch[1].to(detector.device)
                with autocast(precision, detector.device):
                    prefix = detector.prefix(pixels)
                    tokens, embed, logits = detector.run(prefix)
                    parts = detector.losses(logits.float(), labels)
                    loss = parts["loss"]
                    if stage == 2:
                        d = distiller.loss(prefix, tokens, embed)
                        if d is not None:
                            parts["distill"] = d
                            parts["loss"] = loss = loss + detector.distill_weight * d
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step, position = step + 1, (epoch, b + 1)
                if stage == 2:
                    status = distiller.after_step(step - stage1 * per_epoch, stage2_total)
                seen += len(labels)
                for k, v in parts.items():
                    totals[k] = totals.get(k, 0.0) + float(v.detach()) * len(labels)
                if bar:
                    bar.update(len(labels))
                if (b + 1) % tenth == 0 and b + 1 < per_epoch:  # long CPU epochs show progress in the log
                    log(f"epoch {epoch}: {seen} images, loss {totals['loss'] / max(1, seen):.4f}")
                if every and step % every == 0 and b + 1 < per_epoch:
                    snapshot(position)
            if bar:
                bar.close()
            row: dict[str, Any] = {"epoch": epoch, "stage": stage, "images": seen,
                                   **{k: v / max(1, seen) for k, v in totals.items()}, **status}
            row["val_ap"] = validate()
            # ties go to the later epoch: the more trained (stage-2) model
            best.offer((0.0 if math.isnan(row["val_ap"]) else row["val_ap"], epoch), detector, epoch)
            history.append(row)
            log(format_row(row))
            if epoch == stage1 and ckpt_dir is not None:
                detector.save(ckpt_dir.parent / "stage1")
                log(f"stage 1 done: {ckpt_dir.parent / 'stage1'} (the teacher of stage 2)")
            epoch, start_batch = epoch + 1, 0
            position = (epoch, 0)
            snapshot(position)
    except KeyboardInterrupt:
        snapshot(position)
        log(f"interrupted: checkpoint at epoch {position[0]}, batch {position[1]} in {ckpt_dir}; "
            "continue with `aigi train ... --resume`")
        raise
    if settings.get("keep_best", True):
        best.restore(detector, log)
    return {"epochs": epochs, "best_epoch": best.epoch if settings.get("keep_best", True) else epochs,
            "history": history}
