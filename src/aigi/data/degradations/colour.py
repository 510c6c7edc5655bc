"""colour degradations.

Deterministic colour transforms (``rng`` is accepted but not used); each one
moves every pixel further from the input as severity rises.
"""
from __future__ import annotations

import numpy as np

from .table import register

_LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601, as Pillow's "L" conversion


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """Round (not truncate) and clip a float image to uint8."""
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


@register("gamma", "colour", "darkening gamma curve v' = 255 · (v / 255)^γ with γ = 1 + 1.2 · severity (γ 2.2 at 1)")
def gamma(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    g = 1.0 + 1.2 * severity
    return _to_uint8(255.0 * (image.astype(np.float64) / 255.0) ** g)


@register("brightness", "colour", "under-exposure: every value scaled by 1 − 0.5 · severity (one stop darker, ×0.5, at 1)")
def brightness(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    return _to_uint8(image.astype(np.float64) * (1.0 - 0.5 * severity))


@register("contrast", "colour",
          "contrast reduced toward the image's mean luma: deviations × (1 − 0.7 · severity) (30 % contrast at 1)")
def contrast(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    x = image.astype(np.float64)
    mean = float((x @ _LUMA).mean())
    return _to_uint8(mean + (1.0 - 0.7 * severity) * (x - mean))


@register("saturation", "colour",
          "desaturation toward BT.601 luma: chroma × (1 − severity) (grayscale at 1)")
def saturation(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    x = image.astype(np.float64)
    grey = (x @ _LUMA)[..., None]
    return _to_uint8(grey + (1.0 - severity) * (x - grey))


def _rgb_to_hsv(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Float RGB in [0, 1] → (h in [0, 1), s, v), vectorised."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    v = rgb.max(-1)
    delta = v - rgb.min(-1)
    s = np.where(v > 0, delta / np.where(v > 0, v, 1.0), 0.0)
    d = np.where(delta > 0, delta, 1.0)
    h = np.where(v == r, ((g - b) / d) % 6.0, np.where(v == g, (b - r) / d + 2.0, (r - g) / d + 4.0))
    h = np.where(delta > 0, h / 6.0, 0.0)
    return h, s, v


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    h6 = (h % 1.0) * 6.0
    i = np.floor(h6).astype(np.int64) % 6
    f = h6 - np.floor(h6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    # sector i → (r, g, b)
    r = np.choose(i, [v, q, p, p, t, v])
    g = np.choose(i, [t, v, v, q, p, p])
    b = np.choose(i, [p, p, t, v, v, q])
    return np.stack([r, g, b], -1)


@register("hue", "colour", "HSV hue rotated by +90 · severity degrees (saturation and value kept)")
def hue(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    h, s, v = _rgb_to_hsv(image.astype(np.float64) / 255.0)
    return _to_uint8(_hsv_to_rgb(h + 0.25 * severity, s, v) * 255.0)


@register("white_balance", "colour",
          "warm colour cast: red gain 1 + 0.3 · severity, blue gain 1 − 0.3 · severity, green kept (R×1.3, B×0.7 at 1)")
def white_balance(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    gains = np.array([1.0 + 0.3 * severity, 1.0, 1.0 - 0.3 * severity])
    return _to_uint8(image.astype(np.float64) * gains)
