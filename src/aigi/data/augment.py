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


@dataclass(frozen=True)
class BlurJpegAugment:
    blur_prob: float = 0.0
    blur_sigma: tuple[float, float] = (0.0, 3.0)
    jpeg_prob: float = 0.0
    jpeg_quality: tuple[int, int] = (30, 100)

    @classmethod
    def from_config(cls, cfg: dict | None) -> "BlurJpegAugment":
        cfg = dict(cfg or {})
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
