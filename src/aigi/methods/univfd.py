"""UnivFD (Ojha et al., CVPR 2023): the baseline every paper compares against.

Frozen CLIP, final image embedding (post-LN CLS, projected). Two heads:
a linear probe, and the nearest-neighbour rule over banks of real and fake
training embeddings. A third reads the same probe across blocks: the CLS token
of several blocks, not only the last one's embedding.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..backbones import DEFAULT_BACKBONE
from ..detectors import Detector
from ..errors import InputError


class UnivFDProbe(Detector):
    """One linear layer on the frozen embedding."""

    name = "univfd"
    feature_key = "embed"

    def __init__(self, backbone: str = DEFAULT_BACKBONE, threshold: float = 0.5, embed_dim: int = 512) -> None:
        super().__init__(backbone, threshold)
        self.embed_dim = int(embed_dim)
        self.head = nn.Linear(self.embed_dim, 1)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def params(self) -> dict[str, Any]:
        return {"embed_dim": self.embed_dim}

    @classmethod
    def backbone_params(cls, backbone) -> dict[str, Any]:
        return {"embed_dim": backbone.embed_dim}

    def head_from_features(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features.to(self.head.weight.dtype)).squeeze(-1)


class UnivFDLayers(Detector):
    """One linear layer on several blocks' CLS tokens, each layer-normalised.

    The final embedding keeps what CLIP's contrastive training rewards, the meaning of
    the picture; generation traces are plainest in the middle blocks (the premise of
    LTD, and of probes on intermediate blocks such as RINE), and they survive in a photo
    that resembles no training image. Normalising each block's token (no learnt scale)
    keeps the blocks whose activations are an order of magnitude larger from owning
    the probe. It reads the cached ``cls`` feature, so it costs no extra backbone pass.
    """

    name = "univfd-layers"
    feature_key = "cls"

    def __init__(self, backbone: str = DEFAULT_BACKBONE, threshold: float = 0.5, num_layers: int = 12,
                 width: int = 768, blocks: list[int] | None = None, dropout: float = 0.0) -> None:
        super().__init__(backbone, threshold)
        self.num_layers, self.width, self.dropout = int(num_layers), int(width), float(dropout)
        chosen = list(range(self.num_layers)) if blocks is None else [int(b) for b in blocks]
        if not chosen or any(not -self.num_layers <= b < self.num_layers for b in chosen):
            raise InputError(f"blocks {chosen} must be a non-empty list of block indices in "
                             f"{-self.num_layers}..{self.num_layers - 1} (the backbone has {self.num_layers})")
        resolved = [b % self.num_layers for b in chosen]
        if len(set(resolved)) != len(resolved):
            raise InputError(f"blocks {chosen} name a block twice")
        self.blocks = resolved
        self.drop = nn.Dropout(self.dropout)
        self.head = nn.Linear(len(resolved) * self.width, 1)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def params(self) -> dict[str, Any]:
        return {"num_layers": self.num_layers, "width": self.width, "blocks": list(self.blocks),
                "dropout": self.dropout}

    @classmethod
    def backbone_params(cls, backbone) -> dict[str, Any]:
        return {"num_layers": backbone.num_layers, "width": backbone.width}

    def head_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """``features``: ``[B, num_layers, width]``, every block's CLS token (the cached ``cls``)."""
        if features.shape[1:] != (self.num_layers, self.width):
            raise InputError(f"univfd-layers expects every block's CLS token, [batch, {self.num_layers}, "
                             f"{self.width}], not {list(features.shape)}")
        return self.head_from_tokens(features[:, self.blocks])

    def head_from_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """``tokens``: ``[B, len(blocks), width]``, the chosen blocks' CLS tokens in order."""
        tokens = nn.functional.layer_norm(tokens.float(), (self.width,))
        return self.head(self.drop(tokens.flatten(1)).to(self.head.weight.dtype)).squeeze(-1)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Early exit: the tower stops after the deepest chosen block."""
        with torch.no_grad():
            out = self.backbone.encode(pixels, layers=self.blocks, stop_after=max(self.blocks), embed=False)
        return self.head_from_tokens(out.cls_per_layer)  # in the order asked for


class UnivFDNearestNeighbour(Detector):
    """Cosine nearest neighbours against real and fake banks.

    ``logit = (mean top-k similarity to fakes − mean top-k similarity to reals) / T``:
    with k = 1 the verdict at 0.5 is the paper's rule (the closer class wins), and
    the score still ranks images for AP / AUC.
    """

    name = "univfd-knn"
    feature_key = "embed"
    trainer = "bank"  # no gradient training: the banks are the training embeddings
    resumable = False  # nothing to resume: filling the banks is one pass over the cached features

    def __init__(self, backbone: str = DEFAULT_BACKBONE, threshold: float = 0.5, embed_dim: int = 512,
                 k: int = 1, temperature: float = 0.02, bank_size: int = 0) -> None:
        super().__init__(backbone, threshold)
        self.embed_dim, self.k, self.temperature = int(embed_dim), int(k), float(temperature)
        self.register_buffer("bank", torch.zeros(int(bank_size), self.embed_dim))
        self.register_buffer("bank_labels", torch.zeros(int(bank_size), dtype=torch.uint8))

    def params(self) -> dict[str, Any]:
        return {"embed_dim": self.embed_dim, "k": self.k, "temperature": self.temperature,
                "bank_size": int(self.bank.shape[0])}

    @classmethod
    def backbone_params(cls, backbone) -> dict[str, Any]:
        return {"embed_dim": backbone.embed_dim}

    def head_from_features(self, features: torch.Tensor) -> torch.Tensor:
        if self.bank.shape[0] == 0:
            raise RuntimeError("univfd-knn has an empty bank: fit it on training features first")
        sims = nn.functional.normalize(features.float(), dim=-1) @ self.bank.T

        def top(mask: torch.Tensor) -> torch.Tensor:
            part = sims[:, mask]
            return part.topk(min(self.k, part.shape[1]), dim=1).values.mean(dim=1)

        fake = self.bank_labels.bool()
        return (top(fake) - top(~fake)) / self.temperature

    def fill_banks(self, train: torch.Tensor, train_labels: torch.Tensor) -> None:
        labels = train_labels.to(torch.uint8)
        if labels.min() == labels.max():
            raise InputError("univfd-knn needs both real and fake training images")
        self.bank = nn.functional.normalize(train.float(), dim=-1).to(self.device)
        self.bank_labels = labels.to(self.device)


def fit_bank(detector: UnivFDNearestNeighbour, train_samples, val_samples, ctx) -> dict[str, Any]:
    """The ``bank`` trainer: the training embeddings, read from the feature cache, become the banks."""
    features, labels, _ = ctx.features(train_samples, "train")
    detector.fill_banks(features, labels)
    ctx.log(f"bank: {int((labels == 0).sum())} real + {int((labels == 1).sum())} fake embeddings, k={detector.k}")
    return {"epochs": 0}
