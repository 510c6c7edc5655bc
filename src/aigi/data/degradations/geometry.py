"""Geometry: crop, rotation, flip, perspective (the output keeps the input size)."""
from __future__ import annotations

import numpy as np
from PIL import Image

from .table import register


@register("crop", "geometry", "random crop keeping 1 − 0.5 · severity of each side (to 50 % at 1), resized back")
def crop(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    h, w = image.shape[:2]
    keep = 1.0 - 0.5 * severity
    ch, cw = max(1, round(h * keep)), max(1, round(w * keep))
    fy, fx = rng.random(), rng.random()  # position drawn once: nested crops across severities
    top, left = int(fy * (h - ch)), int(fx * (w - cw))
    box = Image.fromarray(image[top : top + ch, left : left + cw])
    return np.asarray(box.resize((w, h), Image.Resampling.BICUBIC))


@register("rotation", "geometry", "rotation by ±(1 + 14 · severity) degrees (random sign), reflected borders")
def rotation(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    angle = (1.0 + 14.0 * severity) * (1 if rng.random() < 0.5 else -1)
    h, w = image.shape[:2]
    padded = np.pad(image, ((h // 2, h // 2), (w // 2, w // 2), (0, 0)), mode="reflect")
    turned = Image.fromarray(padded).rotate(angle, resample=Image.Resampling.BICUBIC)
    return np.asarray(turned)[h // 2 : h // 2 + h, w // 2 : w // 2 + w]


@register("flip", "geometry", "horizontal mirror at any severity > 0 (severity has no strength: not monotone)",
          monotone=False)
def flip(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    return image[:, ::-1]


@register("perspective", "geometry", "corners moved inward by up to 0.2 · severity of the size (random per corner)")
def perspective(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    h, w = image.shape[:2]
    jitter = rng.uniform(0.3, 1.0, size=(4, 2)) * 0.2 * severity * np.array([w, h])
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float64)
    inward = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]])
    quad = src + inward * jitter  # where the output's corners come from
    # solve the 8 projective coefficients mapping output corners → input quad
    a, b = [], []
    for (x, y), (u, v) in zip(src, quad):
        a += [[x, y, 1, 0, 0, 0, -u * x, -u * y], [0, 0, 0, x, y, 1, -v * x, -v * y]]
        b += [u, v]
    coeffs = np.linalg.solve(np.array(a), np.array(b))
    return np.asarray(Image.fromarray(image).transform((w, h), Image.Transform.PERSPECTIVE, tuple(coeffs),
                                                       Image.Resampling.BICUBIC))
