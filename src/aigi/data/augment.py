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

import numpy as np
from PIL import Image, ImageFilter

from ..errors import InputError


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
class Augmentations:
    """What a recipe's ``augment:`` section asks for: blur/JPEG and a degradation policy."""

    blur_jpeg: BlurJpegAugment
    policy: DegradationPolicy

    @classmethod
    def from_config(cls, cfg: dict | None) -> "Augmentations":
        cfg = dict(cfg or {})
        return cls(BlurJpegAugment.from_config(cfg), DegradationPolicy.from_config(cfg.pop("policy", None)))

    @property
    def active(self) -> bool:
        return self.blur_jpeg.active or self.policy.active

    def __call__(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        return self.policy(self.blur_jpeg(image, rng), rng)
