"""The contract every detector implements.

A detector maps images to one logit each (``p = sigmoid(logit)`` = probability
that the image is AI-generated). Detectors whose backbone is frozen declare the
feature they read (``feature_key``); training and evaluation then run their head
on cached features and never touch the backbone twice for the same image.

The class is split by concern: computation and training hooks here, scoring in
:mod:`.inference`, saving and rebuilding in :mod:`.persistence`.

A detector names its trainer (``trainer``, a key of :data:`aigi.registry.TRAINERS`);
how it is trained lives there, not here. Its params schema is its constructor
(:meth:`Detector.params_schema`), so recipes are checked against it.
"""
from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from ..backbones import (
    DEFAULT_BACKBONE,
    BackboneOutput,
    VisionBackbone,
    hold_matrices_in,
    load_backbone,
)
from ..backbones.views import View
from ..errors import InputError
from .folders import CONFIG_FILE, FORMAT_VERSION, WEIGHTS_FILE
from .inference import Inference, Prediction
from .persistence import Persistence

__all__ = ["CONFIG_FILE", "FORMAT_VERSION", "WEIGHTS_FILE", "Detector", "Prediction"]


class Detector(Inference, Persistence, nn.Module):
    """Base class: subclasses set ``name``, ``feature_key`` and ``trainer`` and implement
    :meth:`head_from_features` (frozen-feature detectors) or :meth:`forward`."""

    name: ClassVar[str] = "detector"
    feature_key: ClassVar[str | None] = "embed"
    trainer: ClassVar[str] = "features"  # the TRAINERS entry `aigi train` runs for this detector
    embeds_backbone: ClassVar[bool] = False  # True: adapters live inside the backbone, which is then passed in loaded
    resumable: ClassVar[bool] = True  # its trainer checkpoints and `aigi train --resume` continues a run (the step loop)

    def __init__(self, backbone: str = DEFAULT_BACKBONE, threshold: float = 0.5) -> None:
        super().__init__()
        self.backbone_spec = backbone
        self.threshold = float(threshold)  # tuned on a validation split by `aigi train`
        self.calibration: dict[str, Any] | None = None  # temperature / Platt map fitted on validation
        self.metadata: dict[str, Any] = {}
        self.view = View()  # which pixels the tower sees (a recipe's ``view``; saved with the detector)
        self.precision = "fp32"  # inference precision (:mod:`aigi.detectors.precision`); not saved
        self.runner: Any = None  # an exported graph that computes the logits instead (:mod:`aigi.runtimes`)
        object.__setattr__(self, "_backbone", None)  # not a submodule: its weights are never saved
        object.__setattr__(self, "_tower_owner", None)  # a detector whose frozen tower this one reads (share_tower)

    # ---- backbone -----------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        for t in self.parameters():
            return t.device
        for t in self.buffers():
            return t.device
        return torch.device("cpu")

    @property
    def backbone(self) -> VisionBackbone:
        """Loaded on first use, so a detector that only sees cached features never
        pays for it."""
        if self._backbone is None and self._tower_owner is not None:
            return self._tower_owner.backbone
        if self._backbone is None:
            object.__setattr__(self, "_backbone", load_backbone(self.backbone_spec).freeze())
        if next(self._backbone.parameters()).device != self.device:
            self._backbone.to(self.device)
        return self._backbone

    def hold_tower_in(self, matrix_dtype: torch.dtype) -> None:
        """Hold the frozen tower's Linear weights in ``matrix_dtype`` (bf16 inference): loaded
        straight into it when not loaded yet, else converted in place; a tower shared with
        another detector (:meth:`share_tower`) is held by its owner."""
        if self._backbone is None and self._tower_owner is not None:
            self._tower_owner.hold_tower_in(matrix_dtype)
            return
        if self._backbone is None:
            object.__setattr__(self, "_backbone", load_backbone(self.backbone_spec, self.device, matrix_dtype).freeze())
        else:
            hold_matrices_in(self._backbone, matrix_dtype)

    def experts(self) -> list["Detector"]:
        """The detectors that compute: itself (an ensemble: its members)."""
        return [self]

    @property
    def reads_frozen_tower(self) -> bool:
        """Whether the whole tower is frozen and the head reads one of its outputs (``feature_key``):
        then the tower, and its forward pass, can be shared with other such detectors on it."""
        return self.feature_key is not None

    def share_tower(self, owner: "Detector") -> None:
        """Read the frozen tower through ``owner``'s (same spec): ensemble members on one tower
        load and hold it once, in one precision."""
        if not (self.reads_frozen_tower and owner.reads_frozen_tower) or owner.backbone_spec != self.backbone_spec:
            raise InputError(f"'{self.name}' on {self.backbone_spec} cannot share the tower of "
                             f"'{owner.name}' on {owner.backbone_spec}")
        object.__setattr__(self, "_tower_owner", owner)

    def attach_backbone(self, backbone: VisionBackbone) -> None:
        """Reuse an already loaded backbone (it must match the spec); a detector that
        already holds one (its own, adapted) keeps it."""
        if self._backbone is None:
            object.__setattr__(self, "_backbone", backbone.freeze())

    # ---- computation --------------------------------------------------------------
    def head_from_features(self, features: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{self.name} does not run on cached features")

    def extract(self, pixels: torch.Tensor) -> torch.Tensor:
        """The frozen feature this detector reads, straight from the backbone."""
        with torch.no_grad():
            out = self.backbone.encode(pixels, layers="all" if self.feature_key == "cls" else None)
        return self.feature_of(out)

    def feature_of(self, out: BackboneOutput) -> torch.Tensor:
        """This detector's feature from a tower pass that computed it (``encode(layers="all")``
        computes every one), so that detectors sharing a tower share the pass."""
        return out.cls_per_layer if self.feature_key == "cls" else out.embed

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.head_from_features(self.extract(pixels))

    def losses(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        bce = nn.functional.binary_cross_entropy_with_logits(logits, labels.float())
        return {"loss": bce, "bce": bce}

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """Optimiser parameter groups; a method overrides this to give parts their own rate."""
        return [{"params": self.trainable_parameters(), "lr": lr}]

    def parameter_report(self) -> dict[str, Any]:
        """Parameter counts; the share is relative to the vision tower, as the papers report it."""
        vision = self.backbone.parameter_count()
        own = sum(p.numel() for p in self.parameters())
        trainable = sum(p.numel() for p in self.trainable_parameters())
        return {"total": vision + own, "trainable": trainable, "frozen": vision + own - trainable,
                "vision_tower": vision, "trainable_share_of_vision_tower": trainable / vision}

    def cache_point(self) -> str | None:
        """Which frozen output can be cached (None: the whole network trains)."""
        return self.feature_key

    # ---- training hooks (no-ops unless a method needs them) --------------------------
    def on_train_progress(self, fraction: float) -> None:
        """Called before every optimisation step with the share of training done."""

    def epoch_report(self) -> dict[str, Any]:
        """Extra per-epoch values for the training history (e.g. a selection distribution)."""
        return {}

    # ---- evaluation and deployment (an ensemble and adapted detectors override) --------
    def dataset_probabilities(self, evaluate_member) -> tuple[dict[int, float], list, dict[str, dict[int, float]]]:
        """P(fake) per dataset index, the errors, and per-expert scores (none but an ensemble's):
        ``evaluate_member(detector)`` scores one detector through its own (cached) path."""
        scores, errors = evaluate_member(self)
        return scores, errors, {}

    def merge_for_inference(self) -> None:
        """Fold trainable adapters into dense weights for deployment (``aigi export --merge``)."""
        raise InputError(f"detector '{self.name}' has no adapters to merge")
