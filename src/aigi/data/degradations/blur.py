"""Blur: Gaussian, motion, defocus, atmospheric haze."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from .table import register


def _convolve(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Same-size 2-D convolution per channel with edge padding (numpy only)."""
    kh, kw = kernel.shape
    pad = ((kh // 2, kh - 1 - kh // 2), (kw // 2, kw - 1 - kw // 2), (0, 0))
    src = np.pad(image.astype(np.float32), pad, mode="edge")
    out = np.zeros(image.shape, dtype=np.float32)
    h, w = image.shape[:2]
    for dy in range(kh):
        for dx in range(kw):
            if kernel[dy, dx]:
                out += kernel[dy, dx] * src[dy : dy + h, dx : dx + w]
    return out


@register("gaussian_blur", "blur", "Gaussian σ = 4 · severity pixels (the UnivFD / CNNDetection sweep uses σ 1…4)")
def gaussian_blur(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    return np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius=4.0 * severity)))


@register("motion_blur", "blur", "linear motion of 2 + 14 · severity pixels at a random angle")
def motion_blur(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    angle = rng.uniform(0, np.pi)
    length = 2.0 + 14.0 * severity
    size = int(np.ceil(length)) | 1
    kernel = np.zeros((size, size), dtype=np.float32)
    c = size // 2
    for t in np.linspace(-length / 2, length / 2, 4 * size):
        kernel[int(round(c + t * np.sin(angle))), int(round(c + t * np.cos(angle)))] = 1.0
    return _convolve(image, kernel / kernel.sum())


@register("defocus_blur", "blur", "disk (out-of-focus) kernel of radius 1 + 5 · severity pixels")
def defocus_blur(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    radius = 1.0 + 5.0 * severity
    r = int(np.ceil(radius))
    y, x = np.mgrid[-r : r + 1, -r : r + 1]
    kernel = np.clip(radius + 0.5 - np.sqrt(x**2 + y**2), 0, 1).astype(np.float32)  # antialiased disk
    return _convolve(image, kernel / kernel.sum())


@register("haze", "blur", "atmospheric haze: blend toward a bright airlight by up to 60 %, stronger away from the bottom")
def haze(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    h, w = image.shape[:2]
    airlight = rng.uniform(200, 240)
    depth = np.linspace(1.0, 0.4, h, dtype=np.float32)[:, None, None]  # farther at the top
    t = 1.0 - 0.6 * severity * depth  # transmission
    blurred = np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius=1.5 * severity)), dtype=np.float32)
    return blurred * t + airlight * (1.0 - t)
