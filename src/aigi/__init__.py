"""aigi: detect AI-generated images with CLIP / SigLIP based detectors.

    >>> import aigi
    >>> detector = aigi.load_detector()            # the shipped UnivFD probe
    >>> [p.prob_fake for p in detector.predict(["photo.jpg"])]

Every function of :mod:`aigi.api` is here (``aigi.train``, ``aigi.evaluate``,
``aigi.compare``, ``aigi.robustness``, ``aigi.detect``…). Importing aigi stays
light: torch loads on the first call that needs it.
"""
from __future__ import annotations

from typing import Any

from .api import *  # noqa: F403  (light: each function imports what it needs when called)
from .api import __all__ as _API

__version__ = "0.1.0"
__all__ = ["__version__", "load_backbone", "Detector", "Prediction", *_API]  # noqa: F405


def __getattr__(name: str) -> Any:
    if name == "load_backbone":
        from .backbones import load_backbone

        return load_backbone
    if name in ("Detector", "Prediction"):
        from .detectors import base

        return getattr(base, name)
    raise AttributeError(f"module 'aigi' has no attribute {name!r}")
