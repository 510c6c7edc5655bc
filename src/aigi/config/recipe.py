"""A training recipe as typed sections, with every default in one place.

``load_recipe`` checks a whole recipe before any work starts: every key at every
depth (a method's ``params`` against its constructor), every type, every choice.

Paths. One rule: a path that names another recipe (``base:``, ``experts:``) is
relative to the recipe file that names it; every other path in a recipe
(``data.*``, ``output``, ``features.cache_dir``, a captions file) is relative to
the working directory ``aigi`` runs in, as on the command line.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ..backbones import DEFAULT_BACKBONE
from ..backbones.views import View
from ..data.augment import DegradationPolicy, FixedCopies
from ..errors import ConfigError
from ..registry import DETECTORS
from .checked import build, plain


@dataclass
class DataConfig:
    train: str | None = None  # a folder with 0_real/1_fake, or a CSV/JSONL manifest
    val: str | None = None  # none: hold out val_fraction of train, stratified by subset and label
    val_fraction: float = 0.1
    subset_depth: int = 1
    limit_per_class: int | None = None
    exclude: str | None = None  # images never trained or validated on, matched by content: a folder, a file or a glob

    def __post_init__(self) -> None:
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"data.val_fraction must lie in (0, 1), got {self.val_fraction}")
        if self.limit_per_class is not None and self.limit_per_class < 1:
            raise ConfigError(f"data.limit_per_class must be ≥ 1 (null: no limit), got {self.limit_per_class}")
        if self.subset_depth < 0:
            raise ConfigError(f"data.subset_depth must be ≥ 0, got {self.subset_depth}")


@dataclass
class TrainConfig:
    """What every trainer reads: optimisation, precision, seed and checkpointing."""

    epochs: int = 50
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0
    workers: int = 0  # DataLoader workers for trainers that read pixels
    from_pixels: bool = False  # the features trainer re-encodes every epoch even without augmentation
    # the forward pass under autocast: bf16, or fp16 with a loss scaler (a GPU)
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    grad_accum: int = 1  # micro-batches per step: a step still sees batch_size images, in less memory
    resume: bool = False  # continue from the newest checkpoint in <run>/checkpoint
    checkpoint_every: int = 0  # also checkpoint every N steps (0: at epoch ends and on Ctrl-C only)
    keep_checkpoints: int = 2  # the newest K checkpoints are kept
    keep_best: bool = True  # restore the epoch with the best validation AP at the end
    # how an epoch draws samples: uniformly, or with replacement so that every class (every
    # (subset, class) pair: a pool's sources) weighs the same whatever its size
    balance: Literal["none", "class", "subset_class"] = "none"

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "workers", "checkpoint_every", "grad_accum", "keep_checkpoints"):
            low = 1 if name in ("batch_size", "grad_accum", "keep_checkpoints") else 0
            if getattr(self, name) < low:
                raise ConfigError(f"train.{name} must be ≥ {low}, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ConfigError(f"train.lr must be positive, got {self.lr}")


@dataclass
class AugmentConfig:
    """CNNDetection-style blur/JPEG, and the degradation-library policy."""

    blur_prob: float = 0.0
    blur_sigma: tuple[float, float] = (0.0, 3.0)
    jpeg_prob: float = 0.0
    jpeg_quality: tuple[int, int] = (30, 100)
    policy: DegradationPolicy = field(default_factory=DegradationPolicy)
    copies: FixedCopies = field(default_factory=FixedCopies)  # fixed, cached copies (frozen-feature training)


@dataclass
class FeaturesConfig:
    batch_size: int = 32  # images per backbone pass when filling the feature cache
    cache_dir: str | None = None  # the feature cache root for this run (default: $AIGI_FEATURE_CACHE or <cache>/features)


@dataclass
class Recipe:
    detector: str = "univfd"
    backbone: str = DEFAULT_BACKBONE
    params: dict[str, Any] = field(default_factory=dict)  # checked against the detector's constructor
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    view: str = "resize"  # which pixels the tower sees: resize | crop | multicrop:K (aigi.backbones.views)
    calibration: Literal["none", "temperature", "platt"] | None = "none"  # fitted on the validation split
    device: str = "cpu"
    output: str = "runs/{detector}"

    def __post_init__(self) -> None:
        View.parse(self.view)

    def as_dict(self) -> dict[str, Any]:
        """The resolved recipe as YAML-ready built-ins (what a run folder records)."""
        return plain(self)

    @property
    def output_dir(self) -> str:
        return str(self.output).format(detector=self.detector)


def check_params(detector: str, params: dict[str, Any] | None, where: str = "params") -> dict[str, Any]:
    """The recipe's ``params`` checked against the detector's constructor; only the
    keys given are returned (sizes read off the backbone fill the rest later)."""
    schema = DETECTORS.get(detector).params_schema()
    checked = build(schema, params or {}, where)
    return {k: getattr(checked, k) for k in (params or {})}


def load_recipe(raw: dict[str, Any] | Recipe) -> Recipe:
    """A single-detector recipe, checked whole (ensemble recipes: :mod:`aigi.training.ensemble_recipe`)."""
    if isinstance(raw, Recipe):
        return raw
    recipe = build(Recipe, raw)
    recipe.params = check_params(recipe.detector, recipe.params)
    return recipe
