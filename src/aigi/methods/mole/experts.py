"""Mixture of low-rank experts (CLIPMoLE, §3.2 of the paper).

``ΔW x = (α/r) B A x + G_k(x) (α_k/r_k) B_k A_k x`` with ``k = argmax softmax(W_g x)``:
one shared LoRA for every token plus, per token, the single routed LoRA its
router picks, scaled by that expert's gate value. Tokens are dispatched: each
routed expert runs only on the tokens assigned to it. The routing statistics
``f_j`` (share of tokens whose argmax is j) and ``P_j`` (mean gate probability of
j) of the last forward pass are kept for the load-balancing loss
``L_lb = N Σ_j f_j P_j`` and for routing reports.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from ...adapters.lora import LoRA
from ...errors import InputError


@dataclass
class RoutingStats:
    fraction: torch.Tensor  # f_j, [N], no gradient
    probability: torch.Tensor  # P_j, [N], differentiable
    counts: torch.Tensor  # tokens per expert, [N]
    assignment: torch.Tensor  # expert index per token, [B, T]

    def load_balancing_loss(self) -> torch.Tensor:
        n = self.fraction.numel()
        return n * (self.fraction * self.probability).sum()


class MixtureOfLoRAExperts(nn.Module):
    """A ``d → d`` bypass: shared LoRA + top-1 routed LoRAs of configurable ranks."""

    def __init__(self, dim: int, shared_rank: int | None = 8, expert_ranks: Sequence[int] = (4, 8, 16),
                 alpha: float | None = None) -> None:
        super().__init__()
        if shared_rank is None and not expert_ranks:
            raise InputError("a mixture needs a shared LoRA, routed experts, or both")
        self.dim = int(dim)
        self.shared = LoRA(dim, dim, shared_rank, alpha) if shared_rank else None
        self.experts = nn.ModuleList(LoRA(dim, dim, r, alpha) for r in expert_ranks)
        self.router = nn.Linear(dim, len(self.experts), bias=False) if len(self.experts) else None
        self.last_stats: RoutingStats | None = None

    @property
    def num_experts(self) -> int:
        return len(self.experts)

    def route(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gate probabilities ``[M, N]`` and the argmax expert per token ``[M]``."""
        gates = torch.softmax(self.router(x).float(), dim=-1)
        return gates, gates.argmax(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.shared(x) if self.shared is not None else torch.zeros_like(x)
        if self.router is None:
            return out
        flat = x.reshape(-1, self.dim)
        gates, choice = self.route(flat)
        routed = torch.zeros_like(flat)
        for j, expert in enumerate(self.experts):
            idx = (choice == j).nonzero(as_tuple=True)[0]
            if idx.numel():
                routed.index_add_(0, idx, expert(flat[idx]) * gates[idx, j : j + 1].to(flat.dtype))
        counts = torch.bincount(choice, minlength=self.num_experts)
        self.last_stats = RoutingStats(
            fraction=(counts.float() / max(1, choice.numel())).detach(),
            probability=gates.mean(dim=0),
            counts=counts.detach(),
            assignment=choice.detach().view(x.shape[:-1]),
        )
        return out + routed.view_as(x)

    @torch.no_grad()
    def merge_shared(self) -> None:
        """Fold the shared LoRA into one dense bypass matrix (routed experts stay routed)."""
        if self.shared is None or isinstance(self.shared, nn.Linear):
            return
        dense = nn.Linear(self.dim, self.dim, bias=False).to(self.shared.A.device, self.shared.A.dtype)
        dense.weight.copy_(self.shared.delta_weight())
        dense.weight.requires_grad_(False)
        self.shared = dense


class MLPWithExperts(nn.Module):
    """``MLP'(x) = MLP(x) + ΔW x``: the experts bypass the whole (frozen) MLP sub-layer."""

    def __init__(self, mlp: nn.Module, experts: MixtureOfLoRAExperts) -> None:
        super().__init__()
        self.mlp = mlp
        self.experts = experts

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x) + self.experts(x)
