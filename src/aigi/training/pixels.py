"""The ``pixels`` trainer: for detectors that train through the backbone, or any
detector when augmentation changes the pixels every epoch.

Every epoch re-reads and re-encodes every image, which is what augmentation
costs: on a CPU the frozen backbone runs at about 5 images/s (ViT-B/16), so an
epoch over 8,000 images takes about half an hour instead of seconds from the
feature cache. Validation has no augmentation and goes through the cache.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..backbones.views import View
from ..data.augment import Augmentations
from ..data.datasets import Sample
from ..data.io import ImageReadError, file_sha256, read_image
from ..detectors import Detector
from .trainer import TrainContext, balance_weights, make_optimizer
from .validation import KeepBest, ValidationAP, finish, format_row, validation_ap


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


def train_pixels(detector: Detector, train_samples: Sequence[Sample], val_samples: Sequence[Sample],
                 ctx: TrainContext) -> dict[str, Any]:
    config, log, progress_factory = ctx.config, ctx.log, ctx.progress_factory
    epochs, batch_size, seed = config.epochs, config.batch_size, config.seed
    data = PixelDataset(train_samples, detector.backbone.preprocess, ctx.augment, seed, detector.view,
                        detector.backbone.preprocess_spec.output_size)
    weights = balance_weights(train_samples, config.balance)
    sampler = torch.utils.data.WeightedRandomSampler(weights, len(weights), generator=torch.Generator().manual_seed(seed)) \
        if weights is not None else None
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=sampler is None, sampler=sampler,
                                         num_workers=config.workers, collate_fn=collate,
                                         generator=torch.Generator().manual_seed(seed))
    opt = make_optimizer(detector, config)
    if ctx.cache_key is not None:  # validation through the cached frozen part (one row per crop)
        val_features, val_labels, _ = ctx.features(val_samples, "val")
        validate = lambda: validation_ap(val_labels, detector.probabilities_from_features(val_features))  # noqa: E731
    else:
        validate = ValidationAP(detector, val_samples, batch_size, ctx.cache_root)
    device = detector.device
    total_steps, step = epochs * len(loader), 0
    history: list[dict[str, Any]] = []
    best = KeepBest()
    for epoch in range(1, epochs + 1):
        data.epoch = epoch
        detector.train()
        bar = progress_factory(len(data), f"epoch {epoch}/{epochs}") if progress_factory else None
        seen, total = 0, 0.0
        every = max(1, len(loader) // 10)  # a log line per tenth of an epoch: long CPU epochs show progress
        for i, batch in enumerate(loader, 1):
            if batch is None:
                continue
            pixels, labels = batch[0].to(device), batch[1].to(device)
            detector.on_train_progress(step / max(1, total_steps - 1))
            step += 1
            parts = detector.losses(detector(pixels), labels)
            opt.zero_grad(set_to_none=True)
            parts["loss"].backward()
            opt.step()
            seen += len(labels)
            total += float(parts["loss"].detach()) * len(labels)
            if bar:
                bar.update(len(labels))
            if i % every == 0 and i < len(loader):
                log(f"epoch {epoch}: {seen}/{len(data)} images, loss {total / max(1, seen):.4f}")
        if bar:
            bar.close()
        row: dict[str, Any] = {"epoch": epoch, "train_loss": total / max(1, seen), "images": seen,
                               **detector.epoch_report()}
        if len(val_samples):
            row["val_ap"] = validate()
            best.offer((0.0 if math.isnan(row["val_ap"]) else row["val_ap"],), detector, epoch)
        history.append(row)
        log(format_row(row))
    return finish(best, detector, config.epochs, config.keep_best, log, history)
