"""What every trainer receives and shares.

A trainer is a function registered in :data:`aigi.registry.TRAINERS`::

    def train_x(detector, train_samples, val_samples, ctx: TrainContext) -> dict

It returns a summary (``epochs``, ``best_epoch``, ``history``); the run around
it (:mod:`aigi.training.run`) loads data, builds the detector, then scores the
validation split, tunes the threshold and writes the run folder. Everything a
trainer reads from the recipe comes through ``ctx.config``, one typed
:class:`~aigi.config.recipe.TrainConfig` with its defaults in one place.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ..backbones.views import View
from ..config.recipe import TrainConfig
from ..data.augment import Augmentations
from ..data.datasets import Sample
from ..detectors import Detector
from ..features import FeatureCache
from .validation import ValidationAP

ProgressFactory = Callable[[int, str], Any]  # (total, description) → an object with update(n) and close()


@dataclass
class TrainContext:
    config: TrainConfig
    augment: Augmentations
    log: Callable[[str], None] = print
    progress_factory: ProgressFactory | None = None
    run_dir: Path | None = None  # checkpoints go to <run_dir>/checkpoint
    cache_root: str | Path | None = None  # the feature cache root for the whole run
    feature_batch_size: int = 32
    cache_key: str | None = None  # the detector's cache point
    backbone: Any = None  # the backbone the cache point is read from
    view: View = field(default_factory=View)  # the detector's view: ``view.crops`` feature rows per image
    accelerator: Any = None  # this process's accelerate.Accelerator (:mod:`.distributed`); the run makes it
    _memo: dict[str, tuple[torch.Tensor, torch.Tensor, list[Sample]]] = field(default_factory=dict, repr=False)
    _cache: FeatureCache | None = field(default=None, repr=False)

    @property
    def is_main(self) -> bool:
        """The process that logs and writes (the only one without a multi-process launch)."""
        return self.accelerator is None or self.accelerator.is_main_process

    @property
    def checkpoint_dir(self) -> Path | None:
        return self.run_dir / "checkpoint" if self.run_dir is not None else None

    def cache(self) -> FeatureCache:
        """One cache for the run: its stores read their index files once, not per split and copy."""
        if self._cache is None:
            self._cache = FeatureCache(self.backbone, root=self.cache_root)
        return self._cache

    def features(self, samples: Sequence[Sample], name: str) -> tuple[torch.Tensor, torch.Tensor, list[Sample]]:
        """The cache point's feature rows of ``samples`` (readable ones), with a label and a sample
        per row; computed once per run and name. A multi-crop view gives ``view.crops`` adjacent rows
        per image; for ``train``, the fixed augmented copies (``augment.copies``) add rows of their own."""
        if name in self._memo:
            return self._memo[name]
        if self.cache_key is None:
            raise RuntimeError("this detector has no frozen part to cache")
        with self.main_first():
            self._memo[name] = self._features(samples, name)
        return self._memo[name]

    def validation(self, detector: Detector, samples: Sequence[Sample]) -> ValidationAP:
        """Validation AP per epoch for a trainer that reads pixels (cached when it can be)."""
        with self.main_first():
            return ValidationAP(detector, samples, self.config.batch_size, self.cache_root)

    def main_first(self):
        """Under a multi-process launch the main process fills the feature cache first and the
        others then read it, instead of all encoding the same images at once."""
        if self.accelerator is not None and self.accelerator.num_processes > 1:
            return self.accelerator.main_process_first()
        return contextlib.nullcontext()

    def _features(self, samples: Sequence[Sample], name: str) -> tuple[torch.Tensor, torch.Tensor, list[Sample]]:
        variants: list[tuple[Any, str]] = [(None, "")]
        copies = self.augment.copies
        if name == "train" and copies.n:
            variants = ([(None, "")] if copies.keep_original else []) + copies.transforms()
        rows, labels, kept_samples = [], [], []
        for i, (transform, transform_id) in enumerate(variants):
            what = name if not transform_id else f"{name} copy {transform_id.rsplit('#', 1)[-1]}"
            bar = self.progress_factory(len(samples), f"features {what}") if self.progress_factory else None
            result = self.cache().extract_view([s.path for s in samples], self.view, keys=(self.cache_key,),
                                               batch_size=self.feature_batch_size, progress=bar.update if bar else None,
                                               transform=transform, transform_id=transform_id)
            if bar:
                bar.close()
            for path, cause in result.errors if i == 0 else ():
                self.log(f"skipped {path}: {cause}")
            n = len(result.kept) * result.views
            views = f" ({result.views} crops each)" if result.views > 1 else ""
            self.log(f"{what}: {len(result.kept)} images{views}, {result.encoded} encoded now, {n - result.encoded} from cache")
            kept = [samples[k] for k in result.kept for _ in range(result.views)]
            rows.append(result.features[self.cache_key])
            labels.extend(s.label for s in kept)
            kept_samples.extend(kept)
        return torch.cat(rows), torch.tensor(labels, dtype=torch.float32), kept_samples


def make_optimizer(detector: Detector, config: TrainConfig, extra: Sequence[torch.nn.Parameter] = ()) -> torch.optim.Optimizer:
    """AdamW over the detector's parameter groups (a method may give parts their own rate),
    plus training-only parameters (a projection head) at the base rate."""
    groups = detector.param_groups(config.lr) + ([{"params": list(extra), "lr": config.lr}] if extra else [])
    return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)


BALANCING_TRAINERS = ("features", "pixels")  # the trainers that read train.balance


def epoch_order(n: int, weights: torch.Tensor | None, gen: torch.Generator) -> torch.Tensor:
    """One epoch's sample order: a permutation, or ``n`` draws with replacement by ``weights``."""
    if weights is None:
        return torch.randperm(n, generator=gen)
    return torch.multinomial(weights, n, replacement=True, generator=gen)


def balance_weights(samples: Sequence[Sample], mode: str) -> torch.Tensor | None:
    """Per-sample weights under which every group (``class``: label; ``subset_class``: subset and
    label) is drawn equally often; None for ``none``."""
    if mode == "none":
        return None
    keys = [(s.label,) if mode == "class" else (s.subset, s.label) for s in samples]
    counts: dict[tuple, int] = {}
    for k in keys:
        counts[k] = counts.get(k, 0) + 1
    return torch.tensor([1.0 / counts[k] for k in keys], dtype=torch.float64)
