"""The vision-backbone contract every detector relies on.

A backbone runs its blocks itself (rather than asking ``transformers`` for all
hidden states) so that one pass can stop after any block, return exactly the
layers a detector asks for, and expose ``blocks`` for adapters to wrap.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from PIL import Image
from torch import nn

from .preprocess import PreprocessSpec, prepare, preprocess


@dataclass
class BackboneOutput:
    """What one forward pass produced.

    ``cls_per_layer``: ``[B, len(layers), width]`` block outputs' CLS token (SigLIP,
    which has no CLS token: the mean of the patch tokens), in the order asked for.
    ``tokens``: ``[B, N, width]`` tokens after the last block that ran.
    ``embed``: ``[B, embed_dim]`` final image embedding (post-LN, projected / pooled);
    ``None`` when the pass stopped before the last block.
    ``block_inputs``: block index → ``[B, N, width]`` tokens entering that block.
    """

    cls_per_layer: torch.Tensor | None = None
    tokens: torch.Tensor | None = None
    embed: torch.Tensor | None = None
    layers: tuple[int, ...] = ()
    block_inputs: dict[int, torch.Tensor] = field(default_factory=dict)


LayerSpec = str | int | Sequence[int] | None


class VisionBackbone(nn.Module):
    """A ViT image tower: ``embed_tokens`` → ``blocks`` → ``pool``."""

    family: str = "vit"

    def __init__(self, model: nn.Module, spec: PreprocessSpec, fingerprint: str, name: str) -> None:
        super().__init__()
        self.model = model
        self.preprocess_spec = spec
        self.fingerprint = fingerprint
        self.name = name
        # blocks still exactly as loaded; adapters inserted from this block on change the outputs
        # after it, which must then never be cached under this backbone's fingerprint
        self.pristine_blocks: int | None = None

    # ---- the transformers layout CLIP and SigLIP share -----------------------------
    @property
    def _vit(self) -> nn.Module:
        return getattr(self.model, "vision_model", self.model)

    @property
    def blocks(self) -> nn.ModuleList:
        return self._vit.encoder.layers

    @property
    def width(self) -> int:
        return self.model.config.hidden_size

    # ---- pieces subclasses supply -------------------------------------------------

    @property
    def embed_dim(self) -> int:
        raise NotImplementedError

    def embed_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def layer_summary(self, hidden: torch.Tensor) -> torch.Tensor:
        """One vector per image for a block's output (CLS token by default)."""
        return hidden[:, 0]

    def pool(self, hidden: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def stem(self) -> list[nn.Module]:
        """The modules :meth:`embed_tokens` runs (patch embedding, positions, pre-norm)."""
        raise NotImplementedError

    def patch_tokens(self, hidden: torch.Tensor) -> torch.Tensor:
        """The dense per-patch features of a block's output (CLS token dropped)."""
        return hidden[:, 1:]

    # ---- shared behaviour ---------------------------------------------------------
    @property
    def num_layers(self) -> int:
        return len(self.blocks)

    def run_block(self, index: int, hidden: torch.Tensor) -> torch.Tensor:
        out = self.blocks[index](hidden, None)
        return out[0] if isinstance(out, tuple) else out

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return preprocess(images, self.preprocess_spec)

    def prepare(self, images: Sequence[Image.Image]) -> tuple[torch.Tensor, list[int], dict[int, str]]:
        """:func:`aigi.backbones.preprocess.prepare` with this tower's spec."""
        return prepare(images, self.preprocess_spec)

    def _resolve_layers(self, layers: LayerSpec) -> tuple[int, ...]:
        if layers is None:
            return ()
        if layers == "all":
            return tuple(range(self.num_layers))
        if isinstance(layers, int):
            layers = [layers]
        return tuple(i % self.num_layers for i in layers)  # negative indices count from the end

    def encode(
        self,
        pixels: torch.Tensor,
        layers: LayerSpec = None,
        tokens: bool = False,
        stop_after: int | None = None,
        embed: bool = True,
        block_inputs: Sequence[int] = (),
    ) -> BackboneOutput:
        """One forward pass.

        ``layers``: ``None``, ``"all"`` or block indices (0-based, negatives allowed)
        whose CLS summaries to return. ``block_inputs``: blocks whose input tokens to
        return (a frozen prefix for adapters to start from). ``stop_after``: last
        block to run (early exit); by default the pass stops after the deepest
        block anything asked for needs.
        """
        wanted = self._resolve_layers(layers)
        inputs_wanted = {i % self.num_layers for i in block_inputs}
        last = self.num_layers - 1
        if stop_after is None:
            needs = [*wanted, *(i - 1 for i in inputs_wanted)]
            stop_after = last if (embed or tokens or not needs) else max(needs)
        elif stop_after < 0:
            stop_after %= self.num_layers
        if wanted and max(wanted) > stop_after:
            raise ValueError(f"layer {max(wanted)} asked for but the pass stops after block {stop_after}")
        hidden = self.embed_tokens(pixels)
        summaries: dict[int, torch.Tensor] = {}
        inputs: dict[int, torch.Tensor] = {}
        for i in range(self.num_layers):
            if i in inputs_wanted:
                inputs[i] = hidden
            if i > stop_after:
                break
            hidden = self.run_block(i, hidden)
            if i in wanted:
                summaries[i] = self.layer_summary(hidden)
        out = BackboneOutput(layers=wanted, block_inputs=inputs)
        if wanted:
            out.cls_per_layer = torch.stack([summaries[i] for i in wanted], dim=1)
        if tokens:
            out.tokens = hidden
        if embed and stop_after == last:
            out.embed = self.pool(hidden)
        return out

    def forward_from(self, hidden: torch.Tensor, start: int) -> torch.Tensor:
        """Final embedding from the tokens entering block ``start`` (a cached frozen prefix)."""
        for i in range(start, self.num_layers):
            hidden = self.run_block(i, hidden)
        return self.pool(hidden)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.encode(pixels).embed  # type: ignore[return-value]

    def freeze(self) -> "VisionBackbone":
        for p in self.parameters():
            p.requires_grad_(False)
        return self.eval()

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def describe(self) -> dict:
        return {
            "name": self.name,
            "family": self.family,
            "layers": self.num_layers,
            "width": self.width,
            "embed_dim": self.embed_dim,
            "input": self.preprocess_spec.output_size,
            "parameters": self.parameter_count(),
            "fingerprint": self.fingerprint,
        }

