"""enhancement degradations.

Post-processing that "improves" an image (sharpening, denoising, histogram
equalisation) and so wipes or exaggerates the high-frequency traces detectors
rely on. Deterministic: ``rng`` is accepted but not used.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from .table import register


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """Round (not truncate) and clip a float image to uint8."""
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


@register("sharpen", "enhancement",
          "unsharp mask v + a · (v − GaussianBlur_σ=2(v)) with amount a = 2 · severity (200 % at 1)")
def sharpen(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    x = image.astype(np.float64)
    blurred = np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius=2.0))).astype(np.float64)
    return _to_uint8(x + 2.0 * severity * (x - blurred))


@register("denoise", "enhancement",
          "median-filter denoising: Pillow MedianFilter 5×5 blended with the input, weight = severity "
          "(full 5×5 median at 1)")
def denoise(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    # One fixed filter scaled by severity: a per-pixel change |s · (median − v)| that grows with s keeps PSNR
    # strictly falling on any image. Blending between growing window sizes (3 → 5 → 7) does not: the blend of two
    # neighbouring windows can sit closer to the input than either, and 5 → 7 barely changes a small image.
    x = image.astype(np.float64)
    smoothed = np.asarray(Image.fromarray(image).filter(ImageFilter.MedianFilter(5))).astype(np.float64)
    return _to_uint8(x + severity * (smoothed - x))


@register("histogram_equalisation", "enhancement",
          "Pillow ImageOps.equalize (per channel) blended with the input: weight = severity (full equalisation at 1)")
def histogram_equalisation(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    x = image.astype(np.float64)
    eq = np.asarray(ImageOps.equalize(Image.fromarray(image))).astype(np.float64)
    return _to_uint8(x + severity * (eq - x))
