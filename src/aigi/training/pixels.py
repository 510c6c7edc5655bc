"""The ``pixels`` trainer: for detectors that train through the backbone, or any
detector when augmentation changes the pixels every epoch.

Every epoch re-reads and re-encodes every image, which is what augmentation
costs: on a CPU the frozen backbone runs at about 5 images/s (ViT-B/16), so an
epoch over 8,000 images takes about half an hour instead of seconds from the
feature cache. Validation has no augmentation and goes through the cache.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..backbones.views import View
from ..data.augment import Augmentations
from ..data.datasets import Sample
from ..data.io import ImageReadError, file_sha256, read_image
from ..detectors import Detector
from .loop import SequentialOrders, Task, TrainLoop
from .trainer import TrainContext, balance_weights
from .validation import ap_result, validation_ap


class PixelDataset(torch.utils.data.Dataset):
    """Samples → (pixels, label); files that cannot be read or prepared come back as None and are dropped."""

    def __init__(self, samples: Sequence[Sample], preprocess: Callable, augment: Augmentations, seed: int,
                 view: View | None = None, size: int = 224) -> None:
        self.samples, self.preprocess, self.augment, self.seed = list(samples), preprocess, augment, seed
        self.view, self.size = view or View(), size
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        sample = self.samples[index]
        try:
            image = read_image(sample.path)
            rng = np.random.default_rng([self.seed, self.epoch, index])
            copies = self.augment.copies
            if copies.n:  # one of the fixed copies (or the original) each epoch
                j = int(rng.integers(-int(copies.keep_original), copies.n))
                image = image if j < 0 else copies.copy(image, file_sha256(sample.path), j)
            if self.augment.active:
                image = self.augment(image, rng)
            if self.view.native:  # a native crop at a random place: every place is a sample
                image = self.view.random_crop(image, self.size, rng)
            return self.preprocess([image])[0], sample.label
        except (ImageReadError, MemoryError, OSError, ValueError):  # one bad image never stops the epoch
            return None


def collate(batch):
    batch = [b for b in batch if b is not None]
    if not batch:
        return None
    return torch.stack([b[0] for b in batch]), torch.tensor([b[1] for b in batch], dtype=torch.float32)


def epoch_loader(data: PixelDataset, chunks: list[list[int]], epoch: int, workers: int) -> torch.utils.data.DataLoader:
    """One epoch's batches, read in ``workers`` processes. One loader per epoch: workers copy the
    dataset (and its epoch) when it starts; its own generator, so starting it draws nothing from
    the global RNG (a resumed run's dropout replays the same draws)."""
    data.epoch = epoch
    return torch.utils.data.DataLoader(data, batch_sampler=chunks, num_workers=workers, collate_fn=collate,
                                       generator=torch.Generator().manual_seed(data.seed * 100003 + epoch))


class PixelTask(Task):
    """Batches are read and augmented in a DataLoader (``train.workers``) over the loop's chunks."""

    def __init__(self, detector: Detector, data: PixelDataset, weights: torch.Tensor | None, workers: int,
                 validate: Callable[[], float], has_val: bool) -> None:
        self.detector, self.data, self.workers, self.validate_ap, self.has_val = detector, data, workers, validate, has_val
        self.order = SequentialOrders(len(data), data.seed, weights)

    def batches(self, chunks: list[list[int]], epoch: int):
        return epoch_loader(self.data, chunks, epoch, self.workers)

    def step(self, batch, weight: float, loop: TrainLoop) -> dict[str, float]:
        det = self.detector
        with loop.autocast():
            loss = det.losses(det(batch[0].to(det.device)), batch[1].to(det.device))["loss"]
        loop.backward(loss * weight)
        return {"train_loss": float(loss.detach())}

    def validate(self) -> tuple[dict[str, Any], tuple | None]:
        return ap_result(self.validate_ap()) if self.has_val else ({}, None)


def pixel_validation(detector: Detector, val_samples: Sequence[Sample], ctx: TrainContext) -> Callable[[], float]:
    """Validation AP per epoch: through the cached frozen part (one row per crop), else from pixels."""
    if ctx.cache_key is not None:
        val_features, val_labels, _ = ctx.features(val_samples, "val")
        return lambda: validation_ap(val_labels, detector.probabilities_from_features(val_features))
    return ctx.validation(detector, val_samples)


def train_pixels(detector: Detector, train_samples: Sequence[Sample], val_samples: Sequence[Sample],
                 ctx: TrainContext) -> dict[str, Any]:
    config = ctx.config
    data = PixelDataset(train_samples, detector.backbone.preprocess, ctx.augment, config.seed, detector.view,
                        detector.backbone.preprocess_spec.output_size)
    task = PixelTask(detector, data, balance_weights(train_samples, config.balance), config.workers,
                     pixel_validation(detector, val_samples, ctx), bool(len(val_samples)))
    return TrainLoop(detector, task, ctx, len(data)).run()
