"""LoRA: a trainable low-rank bypass ``ΔW x = (α / r) · B A x`` beside a frozen map.

``A`` starts Kaiming-uniform and ``B`` at zero, so before training the bypass
adds exactly nothing and an adapted model equals the frozen one.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import InputError


class LoRA(nn.Module):
    """The bypass alone: ``x [.., d_in] → (α/r) B A x [.., d_out]``."""

    def __init__(self, in_features: int, out_features: int, rank: int, alpha: float | None = None) -> None:
        super().__init__()
        if rank < 1:
            raise InputError(f"LoRA rank must be ≥ 1, got {rank}")
        self.rank = int(rank)
        self.alpha = float(alpha if alpha is not None else rank)  # α = r: scale 1 unless a recipe says otherwise
        self.scale = self.alpha / self.rank
        self.A = nn.Parameter(torch.empty(self.rank, in_features))
        self.B = nn.Parameter(torch.zeros(out_features, self.rank))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x @ self.A.T) @ self.B.T * self.scale

    def delta_weight(self) -> torch.Tensor:
        """The dense ``[d_out, d_in]`` matrix this bypass adds."""
        return self.B @ self.A * self.scale


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a LoRA bypass (used for attention projections)."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float | None = None) -> None:
        super().__init__()
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.lora = LoRA(base.in_features, base.out_features, rank, alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.lora(x)

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        """One plain ``nn.Linear`` computing the same function."""
        out = nn.Linear(self.base.in_features, self.base.out_features, bias=self.base.bias is not None)
        out.weight.copy_(self.base.weight + self.lora.delta_weight())
        if self.base.bias is not None:
            out.bias.copy_(self.base.bias)
        return out.to(self.base.weight.device, self.base.weight.dtype)
