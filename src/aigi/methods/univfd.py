"""UnivFD (Ojha et al., CVPR 2023): the baseline every paper compares against.

Frozen CLIP, final image embedding (post-LN CLS, projected). Two heads:
a linear probe, and the nearest-neighbour rule over banks of real and fake
training embeddings.
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
