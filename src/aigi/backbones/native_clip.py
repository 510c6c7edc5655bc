"""A CLIP ViT image tower in plain torch, for the embedded weights.

Importing ``transformers`` costs 2.4 s and 150 MB before a single weight is read, more
than the rest of ``aigi detect``'s start-up together (docs/detect.md). The embedded tower
has one fixed, known architecture, so it is built here instead: the same modules under
the same names as ``transformers``' ``CLIPVisionModelWithProjection`` (the same
state dict loads into either; LoRA and MoLE wrap the same ``q_proj``/``mlp``), and the
same operations in the same order, so its outputs equal that model's (tested on random
weights of several shapes, and on the embedded weights). Other CLIP and SigLIP towers
(``hf:…``, local folders, ``random:…``) are still built by ``transformers``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError


def quick_gelu(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(1.702 * x)


ACTIVATIONS = {"quick_gelu": quick_gelu, "gelu": F.gelu}


@dataclass(frozen=True)
class ClipVisionShape:
    """The fields of a ``clip_vision_model`` config.json the tower is built from (the rest,
    initialiser settings, are ignored)."""

    hidden_size: int = 768
    intermediate_size: int = 3072
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    num_channels: int = 3
    image_size: int = 224
    patch_size: int = 16
    projection_dim: int = 512
    layer_norm_eps: float = 1e-5
    hidden_act: str = "quick_gelu"

    @classmethod
    def from_json(cls, path: str | Path) -> "ClipVisionShape":
        raw = json.loads(Path(path).read_text())
        shape = cls(**{f.name: raw[f.name] for f in fields(cls) if f.name in raw})
        if shape.hidden_act not in ACTIVATIONS:
            raise InputError(f"{path}: hidden_act '{shape.hidden_act}' is not one of {', '.join(ACTIVATIONS)}")
        return shape


class Embeddings(nn.Module):
    def __init__(self, c: ClipVisionShape) -> None:
        super().__init__()
        self.class_embedding = nn.Parameter(torch.zeros(c.hidden_size))
        self.patch_embedding = nn.Conv2d(c.num_channels, c.hidden_size, c.patch_size, c.patch_size, bias=False)
        positions = (c.image_size // c.patch_size) ** 2 + 1
        # given its weight: Embedding's own normal_ init on the meta device imports torch._dynamo (1 s)
        self.position_embedding = nn.Embedding(positions, c.hidden_size, _weight=torch.empty(positions, c.hidden_size))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        # shape[0], not len(): an exported graph keeps the batch dynamic
        patches = self.patch_embedding(pixels.to(self.patch_embedding.weight.dtype)).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.class_embedding.expand(pixels.shape[0], 1, -1), patches], dim=1)
        return tokens + self.position_embedding.weight[None]


class Attention(nn.Module):
    def __init__(self, c: ClipVisionShape) -> None:
        super().__init__()
        d = c.hidden_size
        self.heads, self.scale = c.num_attention_heads, (d // c.num_attention_heads) ** -0.5
        self.k_proj, self.v_proj, self.q_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (*x.shape[:-1], self.heads, -1)
        q, k, v = (proj(x).view(shape).transpose(1, 2) for proj in (self.q_proj, self.k_proj, self.v_proj))
        out = F.scaled_dot_product_attention(q, k, v, scale=self.scale).transpose(1, 2).contiguous()
        return self.out_proj(out.reshape(*x.shape[:-1], -1).contiguous())


class MLP(nn.Module):
    def __init__(self, c: ClipVisionShape) -> None:
        super().__init__()
        self.act = ACTIVATIONS[c.hidden_act]
        self.fc1, self.fc2 = nn.Linear(c.hidden_size, c.intermediate_size), nn.Linear(c.intermediate_size, c.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, c: ClipVisionShape) -> None:
        super().__init__()
        self.self_attn, self.mlp = Attention(c), MLP(c)
        self.layer_norm1 = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.layer_norm2 = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, x: torch.Tensor, attention_mask: None = None) -> torch.Tensor:
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class Encoder(nn.Module):
    def __init__(self, c: ClipVisionShape) -> None:
        super().__init__()
        self.layers = nn.ModuleList(Block(c) for _ in range(c.num_hidden_layers))


class VisionTransformer(nn.Module):
    def __init__(self, c: ClipVisionShape) -> None:
        super().__init__()
        self.embeddings = Embeddings(c)
        self.pre_layrnorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)  # sic: transformers' name
        self.encoder = Encoder(c)
        self.post_layernorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)


class ClipVisionWithProjection(nn.Module):
    """The tower :class:`~aigi.backbones.clip.ClipVisionBackbone` drives block by block
    (it never calls this module's ``forward``); ``config`` answers the sizes it asks."""

    def __init__(self, config: ClipVisionShape) -> None:
        super().__init__()
        self.config = config
        self.vision_model = VisionTransformer(config)
        self.visual_projection = nn.Linear(config.hidden_size, config.projection_dim, bias=False)


def assemble(config: ClipVisionShape, state: dict[str, torch.Tensor]) -> ClipVisionWithProjection:
    """The tower holding ``state``'s tensors as they are: built on the meta device (no random
    init), then assigned (no copy; each tensor keeps its dtype)."""
    with torch.device("meta"):
        model = ClipVisionWithProjection(config)
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()
