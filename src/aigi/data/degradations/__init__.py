"""Image degradations: ``fn(image uint8 HWC, severity ∈ [0, 1], rng) → image``.

Each algorithm is registered with a name and a category and documents what its
severity means. Severity 0 is the identity for every algorithm here (a codec is
skipped at 0 rather than run at its best quality). The same functions serve as
training augmentation and as test-time robustness sweeps (``aigi robustness``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ...errors import InputError
from ...registry import Registry

DegradationFn = Callable[[np.ndarray, float, np.random.Generator], np.ndarray]


@dataclass(frozen=True)
class Degradation:
    name: str
    category: str
    fn: DegradationFn
    severity: str  # what 0 → 1 means, in words
    monotone: bool = True  # PSNR to the input falls as severity rises (False: documented exception)

    def __call__(self, image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
        if not 0.0 <= severity <= 1.0:
            raise InputError(f"{self.name}: severity {severity} outside [0, 1]")
        if severity == 0:
            return image
        out = self.fn(image, float(severity), rng)
        return np.ascontiguousarray(out, dtype=np.uint8)


DEGRADATIONS: Registry[Degradation] = Registry("degradation")


def register(name: str, category: str, severity: str, monotone: bool = True) -> Callable[[DegradationFn], DegradationFn]:
    def add(fn: DegradationFn) -> DegradationFn:
        DEGRADATIONS.register(name, Degradation(name, category, fn, severity, monotone))
        return fn

    return add


def get(name: str) -> Degradation:
    _load_all()
    return DEGRADATIONS.get(name)


def names() -> list[str]:
    _load_all()
    return DEGRADATIONS.names()


CATEGORIES = ("blur", "noise", "compression", "resampling", "colour", "geometry", "enhancement", "social")


def _load_all() -> None:
    from . import (  # noqa: F401
        blur,
        colour,
        compression,
        enhancement,
        geometry,
        noise,
        resampling,
        social,
    )


def parse_ops(spec: str) -> list[tuple[str, float | None]]:
    """``"jpeg:0.5,gaussian_blur"`` → ``[("jpeg", 0.5), ("gaussian_blur", None)]``."""
    out = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, sev = part.partition(":")
        get(name)  # unknown names fail here, listing the known ones
        out.append((name, float(sev) if sev else None))
    return out
