"""The contract every detector implements.

A detector maps images to one logit each (``p = sigmoid(logit)`` = probability
that the image is AI-generated). Detectors whose backbone is frozen declare the
feature they read (``feature_key``); training and evaluation then run their head
on cached features and never touch the backbone twice for the same image.
Weights are saved as safetensors plus a JSON config, never as pickles; the
backbone's own pretrained weights are not copied into a detector's folder, its
spec string is stored instead.

A detector names its trainer (``trainer``, a key of :data:`aigi.registry.TRAINERS`);
how it is trained lives there, not here. Its params schema is its constructor
(:meth:`Detector.params_schema`), so recipes are checked against it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterable

import torch
from safetensors.torch import save_file
from torch import nn

from ..backbones import DEFAULT_BACKBONE, VisionBackbone, load_backbone
from ..data.io import ImageReadError, read_image
from ..errors import InputError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT_VERSION = 1


@dataclass
class Prediction:
    """One image's result. ``error`` is set (and the score left empty) when the
    image could not be read: a batch never stops for one bad file."""

    path: str
    prob_fake: float | None
    verdict: str | None
    error: str | None = None
    extra: dict[str, float] = field(default_factory=dict)

    def as_record(self) -> dict[str, Any]:
        rec = {"path": self.path, "prob_fake": self.prob_fake, "verdict": self.verdict, "error": self.error}
        rec.update(self.extra)
        return rec


class Detector(nn.Module):
    """Base class: subclasses set ``name``, ``feature_key`` and ``trainer`` and implement
    :meth:`head_from_features` (frozen-feature detectors) or :meth:`forward`."""

    name: ClassVar[str] = "detector"
    feature_key: ClassVar[str | None] = "embed"
    trainer: ClassVar[str] = "features"  # the TRAINERS entry `aigi train` runs for this detector
    embeds_backbone: ClassVar[bool] = False  # True: adapters live inside the backbone, which is then passed in loaded
    resumable: ClassVar[bool] = False  # True: its trainer checkpoints and `aigi train --resume` continues a run

    def __init__(self, backbone: str = DEFAULT_BACKBONE, threshold: float = 0.5) -> None:
        super().__init__()
        self.backbone_spec = backbone
        self.threshold = float(threshold)  # tuned on a validation split by `aigi train`
        self.calibration: dict[str, Any] | None = None  # temperature / Platt map fitted on validation
        self.metadata: dict[str, Any] = {}
        object.__setattr__(self, "_backbone", None)  # not a submodule: its weights are never saved

    # ---- configuration ------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        """Constructor arguments besides backbone/threshold (JSON-serialisable)."""
        return {}

    @classmethod
    def params_schema(cls) -> type:
        """The ``params:`` a recipe may give: a dataclass made from the constructor's signature."""
        from ..config.checked import signature_dataclass

        return signature_dataclass(cls.__init__, f"{cls.__name__}Params", skip=("backbone", "threshold"))

    @classmethod
    def backbone_params(cls, backbone: VisionBackbone) -> dict[str, Any]:
        """Constructor arguments read off the backbone (widths, depth); a recipe may override them."""
        return {}

    def config(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "detector": self.name,
            "backbone": self.backbone_spec,
            "threshold": self.threshold,
            "calibration": self.calibration,
            "params": self.params(),
            "metadata": self.metadata,
        }

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
        if self._backbone is None:
            object.__setattr__(self, "_backbone", load_backbone(self.backbone_spec).freeze())
        if next(self._backbone.parameters()).device != self.device:
            self._backbone.to(self.device)
        return self._backbone

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

    def merge_for_inference(self) -> None:
        """Fold trainable adapters into dense weights for deployment (``aigi export --merge``)."""
        raise InputError(f"detector '{self.name}' has no adapters to merge")

    # ---- inference ----------------------------------------------------------------
    def to_probability(self, logits: torch.Tensor) -> torch.Tensor:
        """P(fake) from raw logits, through the stored calibration if any."""
        from .calibration import apply

        return torch.sigmoid(apply(logits.float(), self.calibration))

    @torch.no_grad()
    def logits_from_features(self, features: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        self.eval()
        out = [self.head_from_features(features[i : i + batch_size].to(self.device)).float().cpu()
               for i in range(0, features.shape[0], batch_size)]
        return torch.cat(out) if out else torch.empty(0)

    def probabilities_from_features(self, features: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        return self.to_probability(self.logits_from_features(features, batch_size))

    def dataset_probabilities(self, evaluate_member) -> tuple[dict[int, float], list, dict[str, dict[int, float]]]:
        """P(fake) per dataset index, the errors, and per-expert scores (none but an ensemble's):
        ``evaluate_member(detector)`` scores one detector through its own (cached) path."""
        scores, errors = evaluate_member(self)
        return scores, errors, {}

    def verdict(self, prob: float) -> str:
        return "fake" if prob >= self.threshold else "real"

    @torch.no_grad()
    def predict(self, inputs: Iterable[Any] | Any, batch_size: int = 16, progress=None) -> list[Prediction]:
        """Score paths, PIL images, numpy arrays or bytes; unreadable inputs get an
        error record instead of stopping the batch."""
        items = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        self.eval()
        results: list[Prediction | None] = [None] * len(items)
        for start in range(0, len(items), batch_size):
            idx, images = [], []
            for i in range(start, min(start + batch_size, len(items))):
                name = str(items[i]) if isinstance(items[i], (str, Path)) else f"<input {i}>"
                try:
                    images.append(read_image(items[i]))
                    idx.append(i)
                except ImageReadError as exc:
                    results[i] = Prediction(name, None, None, exc.cause)
            if images:
                pixels = self.backbone.preprocess(images).to(self.device)
                probs = self.to_probability(self(pixels).cpu()).tolist()
                for i, p in zip(idx, probs):
                    name = str(items[i]) if isinstance(items[i], (str, Path)) else f"<input {i}>"
                    results[i] = Prediction(name, p, self.verdict(p))
            if progress:
                progress(min(batch_size, len(items) - start))
        return results  # type: ignore[return-value]

    # ---- persistence --------------------------------------------------------------
    def state_to_save(self) -> dict[str, torch.Tensor]:
        """What goes into model.safetensors (adapted detectors leave the pretrained weights out)."""
        return self.state_dict()

    def load_saved_state(self, state: dict[str, torch.Tensor]) -> None:
        self.load_state_dict(state)

    def loaded_from(self, folder: Path) -> None:
        """Called after loading, with the detector's folder (an ensemble finds its members there)."""

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_to_save().items()}
        save_file(state, str(folder / WEIGHTS_FILE), metadata={"detector": self.name})
        (folder / CONFIG_FILE).write_text(json.dumps(self.config(), indent=2) + "\n")
        return folder

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Detector":
        det = cls(backbone=config.get("backbone", DEFAULT_BACKBONE), threshold=config.get("threshold", 0.5),
                  **config.get("params", {}))
        det.metadata = dict(config.get("metadata", {}))
        det.calibration = config.get("calibration")
        return det

