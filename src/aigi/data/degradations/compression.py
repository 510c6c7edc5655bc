"""Compression through real codecs."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from . import register


def jpeg_quality(severity: float) -> int:
    return int(round(95 - 65 * severity))


@register("jpeg", "compression", "JPEG quality 95 → 30 (Pillow's libjpeg); 0 skips the codec")
def jpeg(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=jpeg_quality(severity))
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"))
