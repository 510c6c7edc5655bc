"""CLIPMoLE — mixture of low-rank experts on the last blocks of a frozen ViT
(Liu et al., "Mixture of Low-rank Experts for Transferable AI-Generated Image Detection";
docs/methods/mole.md).

The backbone stays frozen. In each of the last ``adapted_blocks`` blocks a
mixture of LoRA experts bypasses the whole MLP sub-layer
(``MLP'(x) = MLP(x) + ΔW x``, see :mod:`aigi.methods.mole.experts`); a linear head reads
the final image embedding. Loss: ``BCE + λ Σ_blocks L_lb`` with λ = 0.01.

The paper's variants (Table 5) are configurations of the same class:
LoRA on attention only (``attention_rank: 8, shared_rank: null, expert_ranks: []``),
shared LoRA only (``expert_ranks: []``), attention + MLP, routed experts only
(``shared_rank: null``) and the full mixture (the defaults).

Training: the ``features`` trainer on the cached frozen prefix (``tokens@k``), or
from pixels when augmentation is on. The routing report is
:mod:`aigi.methods.mole.report`.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from ...adapters import LoRALinear
from ...backbones import DEFAULT_BACKBONE, VisionBackbone
from ...detectors.adapted import AdaptedDetector
from ...errors import InputError
from .experts import MixtureOfLoRAExperts, MLPWithExperts

ATTENTION_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")


class MoLEDetector(AdaptedDetector):
    name = "mole"  # trains through the last blocks; the frozen prefix is cached instead

    def __init__(
        self,
        backbone: str | VisionBackbone = DEFAULT_BACKBONE,
        threshold: float = 0.5,
        adapted_blocks: int | str = 3,
        shared_rank: int | None = 8,
        expert_ranks: Sequence[int] = (4, 8, 16),
        alpha: float | None = None,
        attention_rank: int | None = None,
        attention_targets: Sequence[str] = ATTENTION_TARGETS,
        lb_weight: float = 0.01,
        shared_merged: bool = False,
    ) -> None:
        super().__init__(backbone, threshold)
        model = self.model
        total = model.num_layers
        k = total if adapted_blocks == "all" else int(adapted_blocks)
        if not 0 <= k <= total:
            raise InputError(f"adapted_blocks={adapted_blocks}: the backbone has {total} blocks")
        self.adapted_blocks, self.first_adapted = adapted_blocks, total - k
        self.shared_rank = int(shared_rank) if shared_rank else None
        self.expert_ranks = [int(r) for r in expert_ranks]
        self.alpha, self.lb_weight = alpha, float(lb_weight)
        self.attention_rank = int(attention_rank) if attention_rank else None
        self.attention_targets = list(attention_targets)
        model.pristine_blocks = self.first_adapted
        self.mixtures: list[MixtureOfLoRAExperts] = []  # a plain list: the modules are registered in the blocks
        for i in range(self.first_adapted, total):
            block = model.blocks[i]
            if self.shared_rank or self.expert_ranks:
                mix = MixtureOfLoRAExperts(model.width, self.shared_rank, self.expert_ranks, alpha)
                block.mlp = MLPWithExperts(block.mlp, mix)
                self.mixtures.append(mix)
            if self.attention_rank:
                for name in self.attention_targets:
                    setattr(block.self_attn, name, LoRALinear(getattr(block.self_attn, name), self.attention_rank, alpha))
        self.head = nn.Linear(model.embed_dim, 1)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)
        self.shared_merged = False
        if shared_merged:  # an exported detector: build the dense bypasses its weights fill
            self.merge_shared_experts()

    def params(self) -> dict[str, Any]:
        return {"adapted_blocks": self.adapted_blocks, "shared_rank": self.shared_rank,
                "expert_ranks": self.expert_ranks, "alpha": self.alpha, "attention_rank": self.attention_rank,
                "attention_targets": self.attention_targets, "lb_weight": self.lb_weight,
                "shared_merged": self.shared_merged}

    # ---- computation --------------------------------------------------------------
    def cache_point(self) -> str | None:
        """Tokens entering the first adapted block: everything before it is frozen."""
        return f"tokens@{self.first_adapted}"

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            prefix = self.model.encode(pixels, block_inputs=[self.first_adapted], embed=False)
        return self.forward_prefix(prefix.block_inputs[self.first_adapted])

    def forward_prefix(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits from cached tokens entering the first adapted block."""
        embed = self.model.forward_from(tokens.to(self.head.weight.dtype), self.first_adapted)
        return self.head(embed).squeeze(-1)

    def head_from_features(self, features: torch.Tensor) -> torch.Tensor:
        return self.forward_prefix(features)

    def losses(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        out = super().losses(logits, labels)
        stats = [m.last_stats for m in self.mixtures if m.last_stats is not None and m.num_experts]
        if stats:
            lb = torch.stack([s.load_balancing_loss() for s in stats]).sum()
            out["load_balancing"] = lb
            out["loss"] = out["loss"] + self.lb_weight * lb
        return out

    # ---- parameters ---------------------------------------------------------------
    def is_saved_key(self, key: str) -> bool:
        return not key.startswith("model.") or ".experts." in key or ".lora." in key

    @torch.no_grad()
    def merge_shared_experts(self) -> None:
        """For inference: each shared LoRA becomes one dense bypass; routed experts stay routed."""
        for mix in self.mixtures:
            mix.merge_shared()
        self.shared_merged = True

    def merge_for_inference(self) -> None:  # what `aigi export --merge` calls
        self.merge_shared_experts()

    # ---- routing report -----------------------------------------------------------
    @torch.no_grad()
    def routing_shares(self, tokens: torch.Tensor, labels: torch.Tensor, batch_size: int = 32) -> list[dict[str, Any]]:
        """Per adapted block and routed expert: share of tokens of real and of fake images."""
        self.eval()
        counts = {(b, lab): torch.zeros(max(1, len(self.expert_ranks))) for b in range(len(self.mixtures)) for lab in (0, 1)}
        for start in range(0, tokens.shape[0], batch_size):
            self.forward_prefix(tokens[start : start + batch_size].to(self.device))
            y = labels[start : start + batch_size].long()
            for b, mix in enumerate(self.mixtures):
                if mix.last_stats is None:
                    continue
                assign = mix.last_stats.assignment.cpu()
                for lab in (0, 1):
                    rows = assign[y == lab]
                    if rows.numel():
                        counts[(b, lab)] += torch.bincount(rows.reshape(-1), minlength=mix.num_experts).float()
        table = []
        for b in range(len(self.mixtures)):
            for j, rank in enumerate(self.expert_ranks):
                row = {"block": self.first_adapted + b, "expert": j, "rank": rank}
                for lab, name in ((0, "real"), (1, "fake")):
                    total = counts[(b, lab)].sum()
                    row[f"share_{name}"] = float(counts[(b, lab)][j] / total) if total > 0 else float("nan")
                table.append(row)
        return table
