"""The pieces of contrastive representation distillation (FeatDistill §5.1).

A momentum teacher (an exponential moving average of the student) embeds each
image into a key; the student's query for the same image must pick that key out
from a MoCo-style queue of earlier keys (InfoNCE). The momentum follows a cosine
schedule from ``m_base`` at the first step to ``m_max`` at the last, so the
teacher tracks the student closely early and settles late.
"""
from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn

from ...errors import InputError


def momentum_at(step: int, total: int, m_base: float, m_max: float) -> float:
    """``m = m_max − (m_max − m_base) · (cos(π · step / total) + 1) / 2``."""
    if total <= 0:
        return float(m_max)
    frac = min(max(step / total, 0.0), 1.0)
    return float(m_max - (m_max - m_base) * (math.cos(math.pi * frac) + 1.0) / 2.0)


@torch.no_grad()
def ema_update(teacher: Iterable[torch.Tensor], student: Iterable[torch.Tensor], momentum: float) -> None:
    """``θ_T ← m θ_T + (1 − m) θ_S``, pairwise in order."""
    for t, s in zip(teacher, student, strict=True):
        t.mul_(momentum).add_(s.detach().to(t.dtype), alpha=1.0 - momentum)


class NegativeQueue(nn.Module):
    """A first-in-first-out store of the last ``size`` teacher keys.

    ``keys()`` returns them oldest first; the buffer (and its write position) are
    part of a checkpoint, so a resumed run sees the same negatives.
    """

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        if size < 1:
            raise InputError(f"queue size must be ≥ 1, got {size}")
        self.size = int(size)
        self.register_buffer("buffer", torch.zeros(self.size, dim))
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))  # next slot to overwrite
        self.register_buffer("count", torch.zeros((), dtype=torch.long))  # slots filled so far

    @torch.no_grad()
    def push(self, keys: torch.Tensor) -> None:
        keys = keys.detach().to(self.buffer.dtype)[-self.size :]  # more keys than slots: the newest win
        n = keys.shape[0]
        slots = (self.pointer + torch.arange(n, device=self.buffer.device)) % self.size
        self.buffer[slots] = keys
        self.pointer.copy_((self.pointer + n) % self.size)
        self.count.copy_(torch.clamp(self.count + n, max=self.size))

    def keys(self) -> torch.Tensor:
        n = int(self.count)
        if n < self.size:
            return self.buffer[:n]
        return torch.roll(self.buffer, shifts=-int(self.pointer), dims=0)

    def __len__(self) -> int:
        return int(self.count)


def info_nce(query: torch.Tensor, key: torch.Tensor, negatives: torch.Tensor, temperature: float) -> torch.Tensor:
    """Cross-entropy of picking each query's own key (column 0) among the negatives.

    ``query``/``key``: ``[B, D]`` L2-normalised; ``negatives``: ``[K, D]`` (K may be 0).
    """
    positive = (query * key).sum(dim=1, keepdim=True)
    logits = torch.cat([positive, query @ negatives.T], dim=1) / temperature
    return nn.functional.cross_entropy(logits, torch.zeros(len(query), dtype=torch.long, device=query.device))


class ProjectionHead(nn.Sequential):
    """Embedding → normalised contrastive space (training only; never saved with the detector)."""

    def __init__(self, dim: int, hidden: int, out: int) -> None:
        super().__init__(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(super().forward(x), dim=-1)
