"""FeatDistill expert — a fine-tuned CLIP / SigLIP tower with an MLP head
(FeatDistill, Tu et al. 2026; docs/methods/featdistill.md).

One expert of the FeatDistill ensemble: the image tower, tuned either in full
(``tune: full``) or through LoRA bypasses (``tune: lora``), on its last
``tuned_blocks`` blocks (``"all"``: the whole tower, stem included), and a head
``d → 256 → 1`` on the final image embedding. Training is two-stage
(the ``two_stage`` trainer, :mod:`.trainer`): BCE for ``stage1_epochs``, then
``BCE + λ · L_distill`` against a teacher made from the stage-1 model, with
``distill: l2`` (dense patch tokens vs the fixed snapshot) or ``distill: crd``
(contrastive, momentum teacher and negative queue, :mod:`.contrastive`). Experts
become an ensemble through :mod:`aigi.detectors.ensemble`.

Blocks before the tuned ones stay frozen, so their output (``tokens@k``) is
cached for validation and evaluation, and computed once per training batch for
student and teacher together.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn

from ...adapters import LoRALinear
from ...backbones import DEFAULT_BACKBONE, VisionBackbone
from ...config.checked import plain
from ...detectors.adapted import AdaptedDetector
from ...errors import InputError

TUNING_MODES = ("full", "lora")
DEFAULT_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")


@dataclass
class CRDSettings:
    """Contrastive distillation (``distill: crd``): projection, queue, temperature, momentum schedule."""

    dim: int = 128  # projected embedding size
    hidden: int = 512  # projection MLP width
    queue: int = 4096  # negatives kept (MoCo queue)
    temperature: float = 0.07
    m_base: float = 0.99  # EMA momentum at the first stage-2 step …
    m_max: float = 0.999  # … rising on a cosine to this at the last


CRD_DEFAULTS: dict[str, Any] = plain(CRDSettings())


class MLPHead(nn.Sequential):
    """``d → hidden → 1`` with ReLU and dropout: the authors' head (768/1152 → 256 → 2, as one logit);
    ``hidden = 0`` gives a linear head."""

    def __init__(self, dim: int, hidden: int = 256, dropout: float = 0.1) -> None:
        if hidden:
            super().__init__(nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 1))
        else:
            super().__init__(nn.Dropout(dropout), nn.Linear(dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x).squeeze(-1)


class FeatDistillExpert(AdaptedDetector):
    name = "featdistill"
    trainer = "two_stage"

    def __init__(
        self,
        backbone: str | VisionBackbone = DEFAULT_BACKBONE,
        threshold: float = 0.5,
        tune: str = "lora",
        tuned_blocks: int | str = "all",
        lora_rank: int = 16,
        lora_alpha: float | None = None,
        lora_targets: Sequence[str] = DEFAULT_LORA_TARGETS,
        head_hidden: int = 256,
        head_dropout: float = 0.1,
        head_lr_scale: float = 10.0,
        stage1_epochs: int = 2,
        distill: str = "l2",
        distill_weight: float = 1.0,
        crd: CRDSettings | None = None,  # a mapping works too
        lora_merged: bool = False,
    ) -> None:
        super().__init__(backbone, threshold)
        model = self.model
        if tune not in TUNING_MODES:
            raise InputError(f"tune must be one of {TUNING_MODES}, not '{tune}'")
        total = model.num_layers
        k = total if tuned_blocks == "all" else int(tuned_blocks)
        if not 1 <= k <= total:
            raise InputError(f"tuned_blocks={tuned_blocks}: the backbone has {total} blocks")
        unknown = sorted(set(crd) - set(CRD_DEFAULTS)) if isinstance(crd, dict) else []
        if unknown:
            raise InputError(f"unknown crd settings {unknown} (known: {', '.join(CRD_DEFAULTS)})")
        self.tune, self.tuned_blocks, self.first_tuned = tune, tuned_blocks, total - k
        self.tunes_stem = tune == "full" and tuned_blocks == "all"
        self.lora_rank, self.lora_alpha, self.lora_targets = int(lora_rank), lora_alpha, list(lora_targets)
        self.head_hidden, self.head_dropout = int(head_hidden), float(head_dropout)
        self.head_lr_scale = float(head_lr_scale)
        self.stage1_epochs, self.distill, self.distill_weight = int(stage1_epochs), distill, float(distill_weight)
        self.crd = {**CRD_DEFAULTS, **(plain(crd) if crd else {})}
        model.pristine_blocks = -1 if self.tunes_stem else self.first_tuned  # -1: even the stem's output changes
        if tune == "lora":
            self._insert_lora(model)
        else:
            self._unfreeze(model)
        model.train(False)
        self.head = MLPHead(model.embed_dim, self.head_hidden, self.head_dropout)
        # fixed here, not read off requires_grad later: a frozen teacher copy saves the same keys
        self._tuned = frozenset(name for name, p in self.named_parameters() if p.requires_grad)
        self.lora_merged = False
        if lora_merged:  # an exported expert: build the dense layers its weights fill
            self.merge_for_inference()

    def _insert_lora(self, model: VisionBackbone) -> None:
        found = 0
        for block in list(model.blocks)[self.first_tuned :]:
            for name, module in list(block.named_modules()):
                if name.rpartition(".")[2] in self.lora_targets and isinstance(module, nn.Linear):
                    parent = block.get_submodule(name.rpartition(".")[0]) if "." in name else block
                    setattr(parent, name.rpartition(".")[2], LoRALinear(module, self.lora_rank, self.lora_alpha))
                    found += 1
        if not found:
            raise InputError(f"lora_targets {self.lora_targets} match no linear layer of the tuned blocks")

    def _unfreeze(self, model: VisionBackbone) -> None:
        frozen = {id(p) for m in list(model.blocks)[: self.first_tuned] for p in m.parameters()}
        if not self.tunes_stem:
            frozen |= {id(p) for m in model.stem() for p in m.parameters()}
        for p in model.parameters():
            p.requires_grad_(id(p) not in frozen)

    def params(self) -> dict[str, Any]:
        return {"tune": self.tune, "tuned_blocks": self.tuned_blocks, "lora_rank": self.lora_rank,
                "lora_alpha": self.lora_alpha, "lora_targets": self.lora_targets, "head_hidden": self.head_hidden,
                "head_dropout": self.head_dropout, "head_lr_scale": self.head_lr_scale,
                "stage1_epochs": self.stage1_epochs, "distill": self.distill, "distill_weight": self.distill_weight,
                "crd": self.crd, "lora_merged": self.lora_merged}

    # ---- computation --------------------------------------------------------------
    def cache_point(self) -> str | None:
        """The frozen prefix's output; none when the stem itself is tuned."""
        return None if self.tunes_stem else f"tokens@{self.first_tuned}"

    def prefix(self, pixels: torch.Tensor) -> torch.Tensor:
        """What the frozen part computes (pixels themselves when nothing is frozen)."""
        if self.tunes_stem:
            return pixels
        with torch.no_grad():
            return self.model.encode(pixels, block_inputs=[self.first_tuned], embed=False).block_inputs[self.first_tuned]

    def run(self, prefix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The tuned part: (final block's tokens, image embedding, logit)."""
        hidden = self.model.embed_tokens(prefix) if self.tunes_stem else prefix.to(self.head[-1].weight.dtype)
        for i in range(self.first_tuned, self.model.num_layers):
            hidden = self.model.run_block(i, hidden)
        embed = self.model.pool(hidden)
        return hidden, embed, self.head(embed)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.run(self.prefix(pixels))[2]

    def head_from_features(self, features: torch.Tensor) -> torch.Tensor:
        return self.run(features)[2]

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """The freshly initialised head learns ``head_lr_scale`` times faster than the pretrained tower."""
        head = list(self.head.parameters())
        tower = [p for p in self.model.parameters() if p.requires_grad]
        return [{"params": tower, "lr": lr}, {"params": head, "lr": lr * self.head_lr_scale}]

    @torch.no_grad()
    def merge_for_inference(self) -> None:
        """Fold every LoRA bypass into its frozen layer: the same function with no extra
        matmuls at inference (the saved file then holds those layers' dense weights)."""
        if self.tune != "lora" or self.lora_merged:
            raise InputError("only an unmerged LoRA expert has adapters to merge")
        merged: set[str] = set()
        for name, module in list(self.named_modules()):
            if isinstance(module, LoRALinear):
                parent, _, attr = name.rpartition(".")
                setattr(self.get_submodule(parent), attr, module.merged().requires_grad_(False))
                merged |= {f"{name}.weight", f"{name}.bias"}
        self._tuned = frozenset(k for k in self._tuned if ".lora." not in k) | merged
        self.lora_merged = True

    # ---- persistence ----------------------------------------------------------------
    def is_saved_key(self, key: str) -> bool:
        """Head, adapters and tuned tower weights; never the pretrained frozen ones."""
        return not key.startswith("model.") or key in self._tuned
