"""Social-media chains: what an upload pipeline does to an image, in sequence."""
from __future__ import annotations

import numpy as np
from PIL import Image

from .compression import _roundtrip
from .resampling import _down_up
from .table import register

_KERNELS = (Image.Resampling.LANCZOS, Image.Resampling.BILINEAR)  # a platform's down-scale, the viewer's up-scale

def _chain(image: np.ndarray, severity: float, scale: float, quality: tuple[int, int],
           rng: np.random.Generator, sharpen_amount: float = 0.0, again: bool = False) -> np.ndarray:
    out = _down_up(image, 1.0 - scale * severity, *_KERNELS)
    if sharpen_amount:
        from .enhancement import sharpen

        out = sharpen(out, sharpen_amount * severity, rng)
    q = int(round(quality[0] - (quality[0] - quality[1]) * severity))
    out = _roundtrip(np.clip(out, 0, 255).astype(np.uint8), "JPEG", quality=q)
    if again:
        out = _roundtrip(out, "JPEG", quality=max(30, q - 10))
    return out


@register("social_instagram", "social", "resize to 1 − 0.4 · severity, mild sharpening, JPEG 92 → 70")
def social_instagram(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    return _chain(image, severity, 0.4, (92, 70), rng, sharpen_amount=0.3)


@register("social_twitter", "social", "resize to 1 − 0.5 · severity, JPEG 90 → 60")
def social_twitter(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    return _chain(image, severity, 0.5, (90, 60), rng)


@register("social_facebook", "social", "resize to 1 − 0.6 · severity, JPEG 85 → 45")
def social_facebook(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    return _chain(image, severity, 0.6, (85, 45), rng)


@register("social_whatsapp", "social", "resize to 1 − 0.7 · severity, JPEG 80 → 35, forwarded once more (JPEG again)")
def social_whatsapp(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    return _chain(image, severity, 0.7, (80, 35), rng, again=True)
