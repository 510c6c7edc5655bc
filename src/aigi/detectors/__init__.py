"""The detector contract: the base class, the shared base for detectors that carry
a tuned backbone, the soft-voting ensemble and the store that loads them.
Methods themselves live in :mod:`aigi.methods`.

Names load lazily: resolving a detector folder (:mod:`.folders`) imports no torch.
"""
from __future__ import annotations

import importlib
from typing import Any

_LAZY = {"Detector": ".base", "Prediction": ".inference", "load_detector": ".store", "load_detector_dir": ".store",
         "resolve_detector": ".folders", "pretrained_detectors": ".folders"}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
