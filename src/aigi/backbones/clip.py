"""CLIP image tower (with projection) and text tower through ``transformers``."""
from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:  # transformers is imported where a tower is built: scoring through an exported graph never needs it
    from transformers import (
        CLIPTextConfig,
        CLIPTextModelWithProjection,
        CLIPVisionConfig,
    )

from .base import VisionBackbone


class ClipVisionBackbone(VisionBackbone):
    """``CLIPVisionModelWithProjection``: the embedding UnivFD and CLIPMoLE use is
    the post-LN CLS token times the visual projection."""

    family = "clip"

    @property
    def embed_dim(self) -> int:
        return self.model.config.projection_dim

    def embed_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        return self._vit.pre_layrnorm(self._vit.embeddings(pixels))

    def pool(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.model.visual_projection(self._vit.post_layernorm(hidden[:, 0]))

    def stem(self) -> list[nn.Module]:
        return [self._vit.embeddings, self._vit.pre_layrnorm]


class HashTokenizer:
    """Stand-in tokenizer for text towers built from a config alone (random weights).

    Words are hashed into the vocabulary, so a caption always maps to the same ids;
    with real weights the model's own ``CLIPTokenizer`` is used instead.
    """

    def __init__(self, vocab_size: int, max_length: int, bos: int, eos: int) -> None:
        self.vocab_size, self.max_length, self.bos, self.eos = vocab_size, max_length, bos, eos

    def __call__(self, texts: list[str]) -> dict[str, torch.Tensor]:
        rows = []
        for text in texts:
            words = re.findall(r"[a-z0-9]+|[^\sa-z0-9]", text.lower())
            ids = [int(hashlib.md5(w.encode()).hexdigest(), 16) % (self.vocab_size - 2) for w in words]
            rows.append([self.bos, *ids[: self.max_length - 2], self.eos])
        width = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), width), self.eos, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            input_ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        return {"input_ids": input_ids, "attention_mask": mask}


class ClipTextBackbone(nn.Module):
    """Frozen-by-default CLIP text tower: captions → projected text embeddings,
    in the same joint space as the image embedding (DGS-Net needs that)."""

    def __init__(self, model: CLIPTextModelWithProjection, tokenizer, fingerprint: str, name: str) -> None:
        super().__init__()
        self.model, self.tokenizer, self.fingerprint, self.name = model, tokenizer, fingerprint, name

    @property
    def embed_dim(self) -> int:
        return self.model.config.projection_dim

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        if isinstance(self.tokenizer, HashTokenizer):
            return self.tokenizer(texts)
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.model.config.max_position_embeddings, return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    def encode(self, texts: list[str]) -> torch.Tensor:
        device = next(self.model.parameters()).device
        batch = {k: v.to(device) for k, v in self.tokenize(texts).items()}
        return self.model(**batch).text_embeds

    def forward(self, texts: list[str]) -> torch.Tensor:
        return self.encode(texts)


def transformer_config(cls, hidden: int, inter: int, layers: int, heads: int, **extra):
    """A transformers tower config from the four numbers every ViT / text tower has."""
    return cls(hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers, num_attention_heads=heads, **extra)


def clip_vision_config(hidden: int, inter: int, layers: int, heads: int, image: int, patch: int, proj: int) -> CLIPVisionConfig:
    from transformers import CLIPVisionConfig

    return transformer_config(CLIPVisionConfig, hidden, inter, layers, heads, image_size=image, patch_size=patch,
                              projection_dim=proj, hidden_act="quick_gelu")


def clip_text_config(hidden: int, inter: int, layers: int, heads: int, proj: int, vocab: int = 49408) -> CLIPTextConfig:
    from transformers import CLIPTextConfig

    return transformer_config(CLIPTextConfig, hidden, inter, layers, heads, projection_dim=proj, vocab_size=vocab,
                              max_position_embeddings=77, hidden_act="quick_gelu", bos_token_id=vocab - 2,
                              eos_token_id=vocab - 1)
