"""Perceptual hashes: what "the same picture" means when the bytes differ (a re-encode, a resize).

The builder uses them twice: a real and a fake that look the same have a label in
doubt (both dropped), and an external-set image that looks like a pool image is
not a test of generalisation (left out). The manifest records each file's hash so
that the external build needs no clone of the pool's repositories.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

NEAR_BITS = 4  # hashes this close are the same picture


def dhash(image: Image.Image) -> int:
    """64-bit difference hash: a 9 × 8 greyscale thumbnail, one bit per horizontal step."""
    small = np.asarray(image.convert("L").resize((9, 8), Image.Resampling.LANCZOS), dtype=np.int16)
    bits = (small[:, 1:] > small[:, :-1]).flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


def distance(a: int, b: int) -> int:
    return bin(a ^ b).count("1")


def distances(hashes: np.ndarray, h: int) -> np.ndarray:
    """Bits between ``h`` and each of ``hashes`` (uint64)."""
    x = np.bitwise_xor(hashes, np.uint64(h))
    return np.unpackbits(x.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)


def is_near(hashes: np.ndarray, h: int) -> bool:
    """Whether ``h`` is the same picture as any of ``hashes`` (False for none)."""
    return bool(len(hashes)) and int(distances(hashes, h).min()) <= NEAR_BITS


def as_array(hashes) -> np.ndarray:
    return np.fromiter((int(h) for h in hashes), dtype=np.uint64)


def to_hex(h: int) -> str:
    return f"{h:016x}"
