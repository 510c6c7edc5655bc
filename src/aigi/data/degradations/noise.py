"""noise degradations.

Every noise field is drawn once from ``rng`` at a fixed, severity-independent
strength and then scaled by severity, so one seed gives nested realisations
across severities (the same noise, only stronger) and PSNR falls with severity.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from .table import register


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """Round (not truncate) and clip a float image to uint8."""
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


@register("gaussian_noise", "noise", "additive i.i.d. Gaussian noise per pixel and channel, σ = 40 · severity grey levels")
def gaussian_noise(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    n = rng.standard_normal(image.shape)
    return _to_uint8(image.astype(np.float64) + 40.0 * severity * n)


_POISSON_PEAK_AT_1 = 20.0  # photons collected by a white pixel at severity 1


@register("poisson_noise", "noise",
          "shot noise: photon counts with peak (white) = 20 / severity² photons (320 at 0.25, 20 at 1; "
          "≈ 40 grey levels σ at mid-grey at 1); drawn once at peak 20, residual scaled by severity")
def poisson_noise(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    x = image.astype(np.float64)
    lam = x / 255.0 * _POISSON_PEAK_AT_1
    counts = rng.poisson(lam)  # drawn at the severity-1 peak, independent of severity
    shot = counts * (255.0 / _POISSON_PEAK_AT_1)  # the photon-count image back in grey levels
    # x + s · (shot − x): variance x · 255 / (20 / s²), i.e. exactly the shot-noise variance at peak 20 / s²
    return _to_uint8(x + severity * (shot - x))


def _upsample(field: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear up-sampling of a small HxWxC float field to h×w (per channel, via Pillow 'F' images)."""
    chans = [np.asarray(Image.fromarray(field[..., c].astype(np.float32)).resize((w, h), Image.Resampling.BILINEAR))
             for c in range(field.shape[-1])]
    return np.stack(chans, -1).astype(np.float64)


@register("sensor_noise", "noise",
          "ISO-like sensor noise, all terms × severity: shot σ = 0.12·√(v/255)·255 (≈ 22 grey levels at mid-grey), "
          "read σ = 4 grey levels per pixel and channel, chroma blotches σ = 8 grey levels per channel at a 4-pixel scale")
def sensor_noise(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    h, w = image.shape[:2]
    x = image.astype(np.float64) / 255.0
    shot = rng.standard_normal(image.shape) * 0.12 * np.sqrt(x)  # signal-dependent (variance ∝ signal)
    read = rng.standard_normal(image.shape) * (4.0 / 255.0)  # signal-independent floor
    coarse = rng.standard_normal((h // 4 + 2, w // 4 + 2, image.shape[2]))
    chroma = _upsample(coarse, h, w)
    chroma = chroma - chroma.mean(axis=-1, keepdims=True)  # colour only: zero-mean across channels
    chroma *= (8.0 / 255.0) / max(float(chroma.std()), 1e-12)  # σ = 8 grey levels (draws only, not the image)
    return _to_uint8((x + severity * (shot + read + chroma)) * 255.0)


@register("salt_pepper", "noise",
          "impulse noise: 10 · severity % of pixels set to black or white (all channels); fixed random pixel order, "
          "so a higher severity hits a superset of pixels")
def salt_pepper(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    h, w = image.shape[:2]
    order = rng.random((h, w))  # a pixel is hit once its draw falls below the fraction
    salt = rng.random((h, w)) < 0.5
    hit = order < 0.10 * severity
    out = image.copy()
    out[hit & salt] = 255
    out[hit & ~salt] = 0
    return out


@register("speckle", "noise", "multiplicative Gaussian noise v · (1 + n), n ~ N(0, (0.4 · severity)²)")
def speckle(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    n = rng.standard_normal(image.shape)
    x = image.astype(np.float64)
    return _to_uint8(x * (1.0 + 0.4 * severity * n))
