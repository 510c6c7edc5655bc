"""aigi: detect AI-generated images with CLIP / SigLIP based detectors.

    >>> import aigi
    >>> detector = aigi.load_detector()            # the shipped UnivFD probe
    >>> [p.prob_fake for p in detector.predict(["photo.jpg"])]
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
_API = ("load_detector", "train", "evaluate", "describe", "calibrate", "export", "robustness", "ensemble")
__all__ = ["__version__", "load_backbone", "Detector", "Prediction", *_API]


def __getattr__(name: str) -> Any:  # keep `import aigi` light: torch loads on first use
    if name in _API:
        from . import api

        return getattr(api, name)
    if name == "load_backbone":
        from .backbones import load_backbone

        return load_backbone
    if name in ("Detector", "Prediction"):
        from .detectors import base

        return getattr(base, name)
    raise AttributeError(f"module 'aigi' has no attribute {name!r}")
