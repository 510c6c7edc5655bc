"""The shared base of detectors that carry their own, adapted copy of the backbone.

MoLE, DGS-Net and FeatDistill put trainable parts (LoRA bypasses, experts, tuned
blocks) inside the tower, so the tower is a submodule (``self.model``) rather
than a shared frozen feature extractor. What they share lives here: building the
tower from a spec or a loaded backbone, counting parameters against the vision
tower as the papers do, and saving only what training changed (adapters, tuned
weights, heads) while the pretrained weights stay behind the backbone spec.
"""
from __future__ import annotations

from typing import Any, ClassVar

import torch

from ..backbones import VisionBackbone, load_backbone
from ..errors import InputError
from .base import Detector


class AdaptedDetector(Detector):
    feature_key = None  # nothing after the tower's stem is frozen by default; cache_point() says what is
    embeds_backbone = True  # `aigi train` passes the loaded backbone in, and the detector adapts it
    legacy_prefixes: ClassVar[dict[str, str]] = {}  # saved-key prefixes of older formats → current ones

    def __init__(self, backbone: str | VisionBackbone, threshold: float) -> None:
        model = backbone if isinstance(backbone, VisionBackbone) else load_backbone(backbone)
        super().__init__(model.name if isinstance(backbone, VisionBackbone) else backbone, threshold)
        model.freeze()
        self.vision_parameters = model.parameter_count()  # the pretrained tower, before any adapter
        self.model = model  # a submodule: the trainable parts live inside its blocks
        object.__setattr__(self, "_backbone", model)

    def is_saved_key(self, key: str) -> bool:
        """Whether a state-dict entry is the detector's own (saved) rather than pretrained."""
        return not key.startswith("model.")

    def parameter_report(self) -> dict[str, Any]:
        trainable = sum(p.numel() for p in self.trainable_parameters())
        total = sum(p.numel() for p in self.parameters())
        return {"total": total, "trainable": trainable, "frozen": total - trainable,
                "vision_tower": self.vision_parameters,
                "trainable_share_of_vision_tower": trainable / self.vision_parameters}

    def state_to_save(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.state_dict().items() if self.is_saved_key(k)}

    def load_saved_state(self, state: dict[str, torch.Tensor]) -> None:
        for old, new in self.legacy_prefixes.items():
            state = {(new + k[len(old):] if k.startswith(old) else k): v for k, v in state.items()}
        missing, unexpected = self.load_state_dict(state, strict=False)
        bad = [k for k in missing if self.is_saved_key(k)]
        if bad or unexpected:
            raise InputError(f"saved {self.name} weights do not match the config: missing {bad[:3]}, "
                             f"unexpected {unexpected[:3]}")
