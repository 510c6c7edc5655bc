"""Resampling: down-scale and back with several kernels, pixelation."""
from __future__ import annotations

import numpy as np
from PIL import Image

from .table import register

_NEAREST, _BILINEAR, _LANCZOS = Image.Resampling.NEAREST, Image.Resampling.BILINEAR, Image.Resampling.LANCZOS


def _down_up(image: np.ndarray, scale: float, down, up) -> np.ndarray:
    h, w = image.shape[:2]
    small = Image.fromarray(image).resize((max(1, round(w * scale)), max(1, round(h * scale))), down)
    return np.asarray(small.resize((w, h), up))


@register("resize", "resampling", "down-scale by 1 − 0.75 · severity (to 25 % at 1), bilinear, then back up")
def resize(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    return _down_up(image, 1.0 - 0.75 * severity, _BILINEAR, _BILINEAR)


@register("resize_lanczos", "resampling", "down-scale by 1 − 0.75 · severity with Lanczos, back up with bicubic")
def resize_lanczos(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    return _down_up(image, 1.0 - 0.75 * severity, _LANCZOS, Image.Resampling.BICUBIC)


@register("resize_nearest", "resampling", "down-scale by 1 − 0.6 · severity with nearest neighbour, back up bilinear (aliasing)")
def resize_nearest(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    return _down_up(image, 1.0 - 0.6 * severity, _NEAREST, _BILINEAR)


@register("pixelate", "resampling", "mosaic blocks of 1 + 11 · severity pixels (box down, nearest up)")
def pixelate(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    return _down_up(image, 1.0 / (1.0 + 11.0 * severity), Image.Resampling.BOX, _NEAREST)
