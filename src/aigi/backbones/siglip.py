"""SigLIP image tower through ``transformers``.

SigLIP has no CLS token: a block's summary vector is the mean of its patch
tokens, and the final embedding is the model's attention-pooling head output.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from transformers import SiglipVisionConfig

from .base import VisionBackbone
from .clip import transformer_config

SIGLIP_MEAN = (0.5, 0.5, 0.5)
SIGLIP_STD = (0.5, 0.5, 0.5)


class SiglipVisionBackbone(VisionBackbone):
    family = "siglip"

    @property
    def embed_dim(self) -> int:
        return self.model.config.hidden_size

    def embed_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        return self._vit.embeddings(pixels)

    def layer_summary(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden.mean(dim=1)

    def stem(self) -> list[torch.nn.Module]:
        return [self._vit.embeddings]

    def patch_tokens(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden  # no CLS token: every token is a patch

    def pool(self, hidden: torch.Tensor) -> torch.Tensor:
        hidden = self._vit.post_layernorm(hidden)
        return self._vit.head(hidden)


def siglip_vision_config(hidden: int, inter: int, layers: int, heads: int, image: int, patch: int) -> SiglipVisionConfig:
    from transformers import SiglipVisionConfig

    return transformer_config(SiglipVisionConfig, hidden, inter, layers, heads, image_size=image, patch_size=patch)
