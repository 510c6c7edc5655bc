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

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ..config.recipe import TrainConfig
from ..data.augment import Augmentations
from ..data.datasets import Sample
from ..detectors import Detector
from ..features import FeatureCache

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
    _memo: dict[str, tuple[torch.Tensor, torch.Tensor, list[Sample]]] = field(default_factory=dict, repr=False)

    @property
    def checkpoint_dir(self) -> Path | None:
        return self.run_dir / "checkpoint" if self.run_dir is not None else None

    def cache(self) -> FeatureCache:
        return FeatureCache(self.backbone, root=self.cache_root)

    def features(self, samples: Sequence[Sample], name: str) -> tuple[torch.Tensor, torch.Tensor, list[Sample]]:
        """The cache point's features of ``samples`` (readable ones), their labels and those samples;
        computed once per run and name."""
        if name in self._memo:
            return self._memo[name]
        if self.cache_key is None:
            raise RuntimeError("this detector has no frozen part to cache")
        bar = self.progress_factory(len(samples), f"features {name}") if self.progress_factory else None
        result = self.cache().extract([s.path for s in samples], keys=(self.cache_key,),
                                      batch_size=self.feature_batch_size, progress=bar.update if bar else None)
        if bar:
            bar.close()
        for path, cause in result.errors:
            self.log(f"skipped {path}: {cause}")
        self.log(f"{name}: {len(result.kept)} images, {result.encoded} encoded now, "
                 f"{len(result.kept) - result.encoded} from cache")
        kept = [samples[i] for i in result.kept]
        labels = torch.tensor([s.label for s in kept], dtype=torch.float32)
        self._memo[name] = (result.features[self.cache_key], labels, kept)
        return self._memo[name]


def make_optimizer(detector: Detector, config: TrainConfig, extra: Sequence[torch.nn.Parameter] = ()) -> torch.optim.Optimizer:
    """AdamW over the detector's parameter groups (a method may give parts their own rate),
    plus training-only parameters (a projection head) at the base rate."""
    groups = detector.param_groups(config.lr) + ([{"params": list(extra), "lr": config.lr}] if extra else [])
    return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
