"""The degradation table: what each algorithm module registers itself into.

Kept apart from the package's ``__init__`` so that the algorithm modules import
this and nothing imports them back (the package loads them on first lookup).
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
