"""LTD — Layer Transition Discrepancy (CVPR 2026, arXiv 2603.10598).

Real images move smoothly through a frozen ViT's middle blocks; generated ones
jump. LTD reads every block's CLS summary ``f^(1..L)`` from one frozen pass,
picks a window of ``n`` consecutive blocks (learned with straight-through
Gumbel-softmax over the ``C = L − n + 1`` starts; argmax at inference), and
runs two token sequences through ONE shared transformer block:

* raw branch:        ``[CLS_r, P f^(s) + p_1, …, P f^(s+n−1) + p_n]``
* transition branch: ``[CLS_t, P d^(1) + q_1, …, P d^(n−1) + q_(n−1)]``,  ``d^(k) = f^(s+k) − f^(s+k−1)``

``P`` is one shared projection to the block width ``hidden`` — the identity when
``hidden`` equals the backbone width, as in the paper (ViT-L/14, 1024). The two
[CLS] outputs are concatenated → LayerNorm → Linear → logit.

As in the authors' code, each image draws its own hard Gumbel sample during
training, position encodings are added to the layer tokens (not to [CLS]), the
shared block is a GELU ``TransformerEncoderLayer`` with dropout 0.3, and the
candidate windows may be restricted to a block range (the paper hooks blocks
11–19 of ViT-L/14: ``candidate_blocks: [11, 19]``). Their temperature schedule
(linear, 1.0 → 0.1) is implemented; note their released trainer never calls it,
so their runs keep τ = 1.

Because the backbone is frozen, training reads the per-block features from the
feature cache (the ``features`` trainer); inference stops the backbone after the
window's last block. The run report (window, selection, transitions) is
:mod:`aigi.methods.ltd.report`.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...backbones import DEFAULT_BACKBONE
from ...detectors import Detector
from ...errors import InputError

BRANCHES = ("both", "raw", "transition")


class LTDDetector(Detector):
    name = "ltd"
    feature_key = "cls"

    def __init__(
        self,
        backbone: str = DEFAULT_BACKBONE,
        threshold: float = 0.5,
        num_layers: int = 12,
        width: int = 768,
        n: int = 5,
        hidden: int | None = None,
        heads: int = 8,
        dropout: float = 0.3,
        branches: str = "both",
        position_encoding: bool = True,
        fixed_start: int | None = None,
        candidate_blocks: tuple[int, int] | list[int] | None = None,
        tau_start: float = 1.0,
        tau_end: float = 0.1,
        selection_lr_scale: float = 1.0,
    ) -> None:
        super().__init__(backbone, threshold)
        if branches not in BRANCHES:
            raise InputError(f"branches must be one of {BRANCHES}, not '{branches}'")
        if not 2 <= n <= num_layers:
            raise InputError(f"window n={n} must be between 2 and the backbone's {num_layers} blocks")
        self.num_layers, self.width, self.n = int(num_layers), int(width), int(n)
        self.hidden = int(hidden or width)
        self.heads, self.dropout, self.branches = int(heads), float(dropout), branches
        self.position_encoding = bool(position_encoding)
        lo, hi = (int(candidate_blocks[0]), int(candidate_blocks[1])) if candidate_blocks else (0, self.num_layers - 1)
        if not 0 <= lo <= hi < self.num_layers or hi - lo + 1 < self.n:
            raise InputError(f"candidate_blocks [{lo}, {hi}] must lie in 0..{self.num_layers - 1} and hold n={n} blocks")
        self.first_block, self.last_block = lo, hi
        self.candidates = hi - lo + 1 - self.n + 1
        if fixed_start is not None and not lo <= fixed_start <= hi - self.n + 1:
            raise InputError(f"fixed_start={fixed_start} outside {lo}..{hi - self.n + 1}")
        self.fixed_start = fixed_start
        self.tau_start, self.tau_end = float(tau_start), float(tau_end)
        self.tau = self.tau_start
        self.selection_lr_scale = float(selection_lr_scale)

        self.selection_logits = nn.Parameter(torch.zeros(self.candidates), requires_grad=fixed_start is None)
        self.project = nn.Identity() if self.hidden == self.width else nn.Linear(self.width, self.hidden)
        self.cls_raw = nn.Parameter(torch.zeros(1, 1, self.hidden))
        self.cls_transition = nn.Parameter(torch.zeros(1, 1, self.hidden))
        self.pos_raw = nn.Parameter(torch.zeros(1, self.n, self.hidden))
        self.pos_transition = nn.Parameter(torch.zeros(1, self.n - 1, self.hidden))
        for p in (self.cls_raw, self.cls_transition, self.pos_raw, self.pos_transition):
            nn.init.trunc_normal_(p, std=0.02)
        if not self.position_encoding:  # ablation: fixed at zero
            for p in (self.pos_raw, self.pos_transition):
                p.requires_grad_(False)
                nn.init.zeros_(p)
        self.block = nn.TransformerEncoderLayer(self.hidden, self.heads, dim_feedforward=4 * self.hidden,
                                                dropout=self.dropout, activation="gelu", batch_first=True)
        n_branches = 2 if branches == "both" else 1
        self.norm = nn.LayerNorm(n_branches * self.hidden)
        self.classifier = nn.Linear(n_branches * self.hidden, 1)

    def params(self) -> dict[str, Any]:
        return {"num_layers": self.num_layers, "width": self.width, "n": self.n, "hidden": self.hidden,
                "heads": self.heads, "dropout": self.dropout, "branches": self.branches,
                "position_encoding": self.position_encoding, "fixed_start": self.fixed_start,
                "candidate_blocks": [self.first_block, self.last_block], "tau_start": self.tau_start,
                "tau_end": self.tau_end, "selection_lr_scale": self.selection_lr_scale}

    @classmethod
    def backbone_params(cls, backbone) -> dict[str, Any]:
        return {"num_layers": backbone.num_layers, "width": backbone.width}

    # ---- window selection ---------------------------------------------------------
    def selected_start(self) -> int:
        """The window's first block at inference: argmax of the selection logits."""
        if self.fixed_start is not None:
            return int(self.fixed_start)
        return self.first_block + int(self.selection_logits.argmax())

    def selected_layers(self) -> list[int]:
        s = self.selected_start()
        return list(range(s, s + self.n))

    def selection_probabilities(self) -> torch.Tensor:
        return torch.softmax(self.selection_logits.detach().float(), dim=0)

    def _windows(self, features: torch.Tensor) -> torch.Tensor:
        """[B, L, d] → [B, C, n, d], every candidate window."""
        span = features[:, self.first_block : self.last_block + 1]
        return span.unfold(1, self.n, 1).permute(0, 1, 3, 2)

    def select(self, features: torch.Tensor) -> torch.Tensor:
        """[B, L, d] per-block features → [B, n, d] window.

        Training: a hard Gumbel-softmax sample per image, straight-through so the
        selection logits get gradients. Evaluation: the argmax window.
        """
        if features.shape[1] != self.num_layers:
            raise ValueError(f"expected {self.num_layers} blocks of features, got {features.shape[1]}")
        if self.fixed_start is not None or not self.training:
            s = self.selected_start()
            return features[:, s : s + self.n]
        logits = self.selection_logits.unsqueeze(0).expand(features.shape[0], -1)
        weights = nn.functional.gumbel_softmax(logits, tau=self.tau, hard=True)
        return torch.einsum("bc,bcnd->bnd", weights.to(features.dtype), self._windows(features))

    def on_train_progress(self, fraction: float) -> None:
        """Anneal the Gumbel temperature linearly from tau_start to tau_end."""
        fraction = min(max(fraction, 0.0), 1.0)
        self.tau = self.tau_start + (self.tau_end - self.tau_start) * fraction

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """The selection logits may learn faster than the rest (``selection_lr_scale``)."""
        rest = [p for n, p in self.named_parameters() if p.requires_grad and n != "selection_logits"]
        groups: list[dict[str, Any]] = [{"params": rest, "lr": lr}]
        if self.selection_logits.requires_grad:
            groups.append({"params": [self.selection_logits], "lr": lr * self.selection_lr_scale})
        return groups

    # ---- the two branches ---------------------------------------------------------
    @staticmethod
    def transitions(window: torch.Tensor) -> torch.Tensor:
        """Adjacent differences ``f^(k+1) − f^(k)`` of a [B, n, d] window."""
        return window[:, 1:] - window[:, :-1]

    def _branch(self, tokens: torch.Tensor, cls: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        x = torch.cat([cls.expand(tokens.shape[0], -1, -1), self.project(tokens) + pos], dim=1)
        return self.block(x)[:, 0]

    def head_from_window(self, window: torch.Tensor) -> torch.Tensor:
        window = window.to(self.cls_raw.dtype)
        parts = []
        if self.branches in ("both", "raw"):
            parts.append(self._branch(window, self.cls_raw, self.pos_raw))
        if self.branches in ("both", "transition"):
            parts.append(self._branch(self.transitions(window), self.cls_transition, self.pos_transition))
        return self.classifier(self.norm(torch.cat(parts, dim=-1))).squeeze(-1)

    def head_from_features(self, features: torch.Tensor) -> torch.Tensor:
        return self.head_from_window(self.select(features))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Early exit: the backbone stops after the last block of the window."""
        layers = self.selected_layers()
        with torch.no_grad():
            out = self.backbone.encode(pixels, layers=layers, stop_after=layers[-1], embed=False)
        return self.head_from_window(out.cls_per_layer)

    # ---- reporting ----------------------------------------------------------------
    def epoch_report(self) -> dict[str, Any]:
        return {"tau": self.tau, "selected_start": self.selected_start(),
                "selection": [round(float(p), 4) for p in self.selection_probabilities()]}
