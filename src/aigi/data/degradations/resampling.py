"""Resampling."""
from __future__ import annotations

import numpy as np
from PIL import Image

from . import register


@register("resize", "resampling", "down-scale by 1 − 0.75 · severity (to 25 % at 1), bilinear, then back up to the input size")
def resize(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    h, w = image.shape[:2]
    scale = 1.0 - 0.75 * severity
    small = Image.fromarray(image).resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BILINEAR)
    return np.asarray(small.resize((w, h), Image.Resampling.BILINEAR))
