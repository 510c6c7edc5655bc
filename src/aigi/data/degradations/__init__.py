"""Image degradations: ``fn(image uint8 HWC, severity ∈ [0, 1], rng) → image``.

Each algorithm is registered with a name and a category and documents what its
severity means. Severity 0 is the identity for every algorithm here (a codec is
skipped at 0 rather than run at its best quality). The same functions serve as
training augmentation and as test-time robustness sweeps (``aigi robustness``).
"""
from __future__ import annotations

from .table import DEGRADATIONS, Degradation, DegradationFn, register

__all__ = ["CATEGORIES", "DEGRADATIONS", "Degradation", "DegradationFn", "get", "names", "parse_ops", "register"]


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
