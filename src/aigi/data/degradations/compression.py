"""Compression through real codecs (Pillow's libjpeg, OpenJPEG, libwebp)."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from .table import register


def _roundtrip(image: np.ndarray, fmt: str, **options) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format=fmt, **options)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"))


def jpeg_quality(severity: float) -> int:
    return int(round(95 - 65 * severity))


@register("jpeg", "compression", "JPEG quality 95 → 30 (libjpeg); 0 skips the codec")
def jpeg(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    return _roundtrip(image, "JPEG", quality=jpeg_quality(severity))


@register("jpeg2000", "compression", "JPEG 2000 compression ratio 4 → 80 (OpenJPEG); 0 skips the codec")
def jpeg2000(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    return _roundtrip(image, "JPEG2000", quality_mode="rates", quality_layers=[4 + 76 * severity])


@register("webp", "compression", "lossy WebP quality 90 → 5 (libwebp); 0 skips the codec")
def webp(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    return _roundtrip(image, "WEBP", quality=int(round(90 - 85 * severity)), method=4)


@register("double_jpeg", "compression", "JPEG twice at quality 95 → 30, as when a second program re-saves a JPEG")
def double_jpeg(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    quality = jpeg_quality(severity)
    return _roundtrip(_roundtrip(image, "JPEG", quality=quality), "JPEG", quality=quality)


@register("blocking", "compression", "8×8 block artefacts: each block pulled toward its mean by up to 85 %, then JPEG 90")
def blocking(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    h, w = image.shape[:2]
    ph, pw = -h % 8, -w % 8
    padded = np.pad(image.astype(np.float32), ((0, ph), (0, pw), (0, 0)), mode="edge")
    blocks = padded.reshape(padded.shape[0] // 8, 8, padded.shape[1] // 8, 8, 3)
    means = blocks.mean(axis=(1, 3), keepdims=True)
    mixed = blocks + 0.85 * severity * (means - blocks)
    out = mixed.reshape(padded.shape)[:h, :w]
    return _roundtrip(np.clip(out, 0, 255).astype(np.uint8), "JPEG", quality=90)
