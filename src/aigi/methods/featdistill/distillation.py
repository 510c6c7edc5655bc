"""Stage-2 distillations of FeatDistill, by name (``params.distill``).

- ``l2``: mean squared difference of the final block's dense patch tokens,
  student vs the fixed stage-1 teacher (paper §4.7). The mean over tokens and
  channels, not the sum, so λ = 1 keeps it on the scale of the BCE;
- ``crd``: InfoNCE between the student's projected embedding and a momentum
  teacher's key for the same image, against a MoCo queue of earlier keys; the
  teacher's momentum follows the cosine schedule (paper §5.1, :mod:`.contrastive`);
- ``none``: BCE throughout (the ablation).
"""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from ...registry import Registry
from ...training.checkpoint import prefixed, unprefixed
from .contrastive import (
    NegativeQueue,
    ProjectionHead,
    ema_update,
    info_nce,
    momentum_at,
)

DISTILLATIONS: Registry[Any] = Registry("distillation")


def frozen_copy(detector) -> nn.Module:
    teacher = copy.deepcopy(detector)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher.eval()


class NoDistillation:
    """BCE only in both stages; keeps nothing."""

    def __init__(self, detector) -> None:
        self.detector = detector
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

    def __init__(self, detector):
        super().__init__(detector)
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
