"""DGS-Net — LoRA fine-tuning with distillation-guided gradient surgery
(ICML 2026, arXiv 2511.13108; docs/methods/dgs.md).

Three branches per (image, caption, label): the student image tower with LoRA
(``peft``, rank 8 on attention q, v by default) and its head; the frozen CLIP
text tower on the caption and its head; a frozen copy of the original image
tower (the teacher) and its head. Each head learns from its own BCE. The
student's tower learns from the *surgered* embedding gradient
(:mod:`.surgery`): the caption direction suppressed, the teacher's descent
directions added. Inference runs the student and its head alone — the teacher
and the text tower are never loaded for it. Training is the method's own
``dgs`` trainer (:mod:`.trainer`), with captions from :mod:`.captions`.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from ...backbones import (
    DEFAULT_BACKBONE,
    VisionBackbone,
    load_backbone,
    load_text_backbone,
)
from ...detectors.adapted import AdaptedDetector
from ...errors import InputError

DISTILL_MODES = ("gradient", "feature")


class DGSDetector(AdaptedDetector):
    name = "dgs"
    trainer = "dgs"
    legacy_prefixes = {"student.": "model."}  # saved before the tower became `model`

    def __init__(
        self,
        backbone: str | VisionBackbone = DEFAULT_BACKBONE,
        threshold: float = 0.5,
        lora_rank: int = 8,
        lora_alpha: float = 8.0,
        lora_targets: Sequence[str] = ("q_proj", "v_proj"),
        text_backbone: str = "random:clip-text-b16",
        beta: float = 1.0,
        suppress: bool = True,
        distill: str = "gradient",
        feature_weight: float = 1.0,
        captions: str = "prompt:a photo",
    ) -> None:
        from peft import LoraConfig, inject_adapter_in_model

        super().__init__(backbone, threshold)
        model = self.model
        if distill not in DISTILL_MODES:
            raise InputError(f"distill must be one of {DISTILL_MODES}, not '{distill}'")
        self.lora_rank, self.lora_alpha, self.lora_targets = int(lora_rank), float(lora_alpha), list(lora_targets)
        self.text_spec, self.beta, self.suppress = text_backbone, float(beta), bool(suppress)
        self.distill, self.feature_weight, self.captions = distill, float(feature_weight), captions
        inject_adapter_in_model(LoraConfig(r=self.lora_rank, lora_alpha=self.lora_alpha, lora_dropout=0.0,
                                           target_modules=self.lora_targets), model.model)
        model.pristine_blocks = 0  # every block may carry LoRA: nothing after the embeddings is cacheable
        self.head = nn.Linear(model.embed_dim, 1)
        self.text_head = nn.Linear(model.embed_dim, 1)  # image and text share CLIP's joint space
        self.teacher_head = nn.Linear(model.embed_dim, 1)
        for h in (self.head, self.text_head, self.teacher_head):
            nn.init.normal_(h.weight, std=0.02)
            nn.init.zeros_(h.bias)
        # frozen branches for training only: plain attributes, never submodules, never saved
        object.__setattr__(self, "_teacher", None)
        object.__setattr__(self, "_text", None)

    def params(self) -> dict[str, Any]:
        return {"lora_rank": self.lora_rank, "lora_alpha": self.lora_alpha, "lora_targets": self.lora_targets,
                "text_backbone": self.text_spec, "beta": self.beta, "suppress": self.suppress,
                "distill": self.distill, "feature_weight": self.feature_weight, "captions": self.captions}

    @property
    def student(self):
        """The adapted image tower (the paper's name for it)."""
        return self.model

    # ---- what is saved: LoRA + heads, never the towers ------------------------------
    def is_saved_key(self, key: str) -> bool:
        return not key.startswith("model.") or "lora_" in key

    # ---- the frozen branches, training only -------------------------------------------
    @property
    def teacher(self) -> VisionBackbone:
        if self._teacher is None:
            object.__setattr__(self, "_teacher", load_backbone(self.backbone_spec, device=self.device).freeze())
        return self._teacher

    @property
    def text(self):
        if self._text is None:
            object.__setattr__(self, "_text", load_text_backbone(self.text_spec, device=self.device))
            for p in self._text.parameters():
                p.requires_grad_(False)
        return self._text

    def loaded_towers(self) -> dict[str, bool]:
        """Which frozen towers are in memory (inference must load neither)."""
        return {"teacher": self._teacher is not None, "text": self._text is not None}

    # ---- computation --------------------------------------------------------------
    def cache_point(self) -> str | None:
        return None

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.head(self.student.encode(pixels).embed).squeeze(-1)

    @torch.no_grad()
    def text_embeddings(self, captions: Sequence[str]) -> torch.Tensor:
        return self.text.encode(list(captions)).float()
