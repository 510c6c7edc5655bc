"""Blur."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from . import register


@register("gaussian_blur", "blur", "Gaussian σ = 4 · severity pixels (the UnivFD / CNNDetection sweep uses σ 1…4)")
def gaussian_blur(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    return np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius=4.0 * severity)))
