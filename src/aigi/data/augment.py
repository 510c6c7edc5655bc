"""Training-time augmentation: Gaussian blur and JPEG re-compression, CNNDetection style.

Wang et al. (CVPR 2020) showed that blurring and re-compressing a share of the
training images makes detectors survive the same operations at test time;
CLIPMoLE trains with both at p = 0.1 (σ ∈ [0, 3], quality ∈ [30, 100]). Each
image draws from its own generator (seeded by epoch and index), so a run is
reproducible regardless of batch order or worker count.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image, ImageFilter

from ..errors import ConfigError, InputError


@dataclass(frozen=True)
class BlurJpegAugment:
    blur_prob: float = 0.0
    blur_sigma: tuple[float, float] = (0.0, 3.0)
    jpeg_prob: float = 0.0
    jpeg_quality: tuple[int, int] = (30, 100)

    @classmethod
    def from_config(cls, cfg: dict | None) -> "BlurJpegAugment":
        cfg = {k: v for k, v in (cfg or {}).items() if k != "policy"}
        for key in ("blur_sigma", "jpeg_quality"):
            if key in cfg:
                cfg[key] = tuple(cfg[key])
        return cls(**cfg)

    @property
    def active(self) -> bool:
        return self.blur_prob > 0 or self.jpeg_prob > 0

    def __call__(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        if self.blur_prob > 0 and rng.random() < self.blur_prob:
            sigma = float(rng.uniform(*self.blur_sigma))
            if sigma > 0:
                image = image.filter(ImageFilter.GaussianBlur(radius=sigma))
        if self.jpeg_prob > 0 and rng.random() < self.jpeg_prob:
            quality = int(rng.integers(self.jpeg_quality[0], self.jpeg_quality[1] + 1))
            buf = io.BytesIO()
            image.save(buf, format="JPEG", quality=quality)
            buf.seek(0)
            image = Image.open(buf).convert("RGB")
        return image


@dataclass(frozen=True)
class DegradationPolicy:
    """In-the-wild augmentation from the degradation library (FeatDistill-style).

    With probability ``prob`` an image gets 1…``max_ops`` distinct operations from
    ``categories`` (all when empty), each at a severity drawn from ``severity``.
    """

    prob: float = 0.0
    max_ops: int = 1
    categories: tuple[str, ...] = ()
    severity: tuple[float, float] = (0.1, 1.0)
    exclude: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, cfg: dict | None) -> "DegradationPolicy":
        cfg = dict(cfg or {})
        for key in ("categories", "severity", "exclude"):
            if key in cfg:
                cfg[key] = tuple(cfg[key])
        return cls(**cfg)

    @property
    def active(self) -> bool:
        return self.prob > 0

    def candidates(self) -> list[str]:
        from .degradations import get, names

        pool = [n for n in names() if n not in self.exclude and (not self.categories or get(n).category in self.categories)]
        if not pool:
            raise InputError(f"degradation policy selects no operation (categories {self.categories})")
        return pool

    def __call__(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        from .degradations import get

        if not self.active or rng.random() >= self.prob:
            return image
        pool = self.candidates()
        count = int(rng.integers(1, min(self.max_ops, len(pool)) + 1))
        arr = np.asarray(image)
        for name in rng.choice(pool, size=count, replace=False):
            arr = get(str(name))(arr, float(rng.uniform(*self.severity)), rng)
        return Image.fromarray(arr)


@dataclass(frozen=True)
class FixedCopies:
    """Fixed augmented copies of each training image, so that a frozen-feature detector can
    train on augmented data from the feature cache.

    Copy ``j`` of an image is rescaled by a factor drawn from ``scale`` and re-encoded as JPEG at
    a quality drawn from ``jpeg_quality``, from a generator seeded by the file's sha256 and ``j``:
    the same bytes always give the same copy, which is cached under its own key. Re-encoding
    both classes and rescaling them takes away the file-format and absolute-size habits that
    tell one source from another (``aigi datasets audit``); ``keep_original: false`` trains
    on the copies alone.

    ``thumbnails`` is the share of copies made thumbnails instead: the short side brought down
    to a size drawn from ``thumbnail_side`` (below ``min_side``: the view then scales it up, as
    it does any small file). Images on the web are often thumbnails, and a detector that only
    ever saw native pixels has learnt nothing about them (the LOSO ``cifake`` fold).
    """

    n: int = 0
    jpeg_quality: tuple[int, int] = (65, 100)
    scale: tuple[float, float] = (0.5, 1.0)
    keep_original: bool = True
    min_side: int = 224  # never rescale a short side below this (a native crop still fits); smaller images only re-encode
    thumbnails: float = 0.0  # the share of copies that are thumbnails instead (short side from thumbnail_side)
    thumbnail_side: tuple[int, int] = (32, 96)

    def __post_init__(self) -> None:
        lo, hi = self.jpeg_quality
        if self.n < 0 or not 1 <= lo <= hi <= 100 or not 0 < self.scale[0] <= self.scale[1] <= 1:
            raise ConfigError("augment.copies: n ≥ 0, 1 ≤ jpeg_quality low ≤ high ≤ 100, 0 < scale low ≤ high ≤ 1")
        if not 0.0 <= self.thumbnails <= 1.0 or not 8 <= self.thumbnail_side[0] <= self.thumbnail_side[1]:
            raise ConfigError("augment.copies: thumbnails in [0, 1] and 8 ≤ thumbnail_side low ≤ high")

    def copy(self, image: Image.Image, sha: str, j: int) -> Image.Image:
        rng = np.random.default_rng([int(sha[:16], 16), j])
        factor = float(rng.uniform(*self.scale))
        quality = int(rng.integers(self.jpeg_quality[0], self.jpeg_quality[1] + 1))
        w, h = image.size
        factor = max(factor, min(1.0, self.min_side / max(1, min(w, h))))
        # drawn after the others, from the same stream: without thumbnails a copy is what it was
        if self.thumbnails and rng.random() < self.thumbnails:
            factor = min(1.0, int(rng.integers(self.thumbnail_side[0], self.thumbnail_side[1] + 1)) / max(1, min(w, h)))
        if factor < 1:
            image = image.resize((max(1, round(w * factor)), max(1, round(h * factor))), Image.Resampling.BICUBIC,
                                 reducing_gap=3.0)
        buf = io.BytesIO()
        image.convert("RGB").save(buf, format="JPEG", quality=quality)
        buf.seek(0)
        with Image.open(buf) as out:
            return out.convert("RGB")

    def transforms(self) -> list[tuple[Callable[[Image.Image, str], Image.Image], str]]:
        """(transform, cache id) per copy: the id names every parameter that changes the pixels."""
        tag = f"copy:q{self.jpeg_quality[0]}-{self.jpeg_quality[1]}:s{self.scale[0]}-{self.scale[1]}:m{self.min_side}"
        if self.thumbnails:
            tag += f":t{self.thumbnails}@{self.thumbnail_side[0]}-{self.thumbnail_side[1]}"
        return [(lambda image, sha, j=j: self.copy(image, sha, j), f"{tag}#{j}") for j in range(self.n)]


@dataclass(frozen=True)
class Augmentations:
    """What a recipe's ``augment:`` section asks for: blur/JPEG, a degradation policy, fixed copies."""

    blur_jpeg: BlurJpegAugment
    policy: DegradationPolicy
    copies: FixedCopies = FixedCopies()

    @classmethod
    def from_config(cls, cfg: dict | None) -> "Augmentations":
        cfg = dict(cfg or {})
        copies = dict(cfg.pop("copies", None) or {})
        for key in ("jpeg_quality", "scale", "thumbnail_side"):
            if key in copies:
                copies[key] = tuple(copies[key])
        return cls(BlurJpegAugment.from_config(cfg), DegradationPolicy.from_config(cfg.pop("policy", None)),
                   FixedCopies(**copies))

    @property
    def active(self) -> bool:
        return self.blur_jpeg.active or self.policy.active

    def __call__(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        return self.policy(self.blur_jpeg(image, rng), rng)
