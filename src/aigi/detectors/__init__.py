"""The detector contract: the base class, the shared base for detectors that carry
a tuned backbone, the soft-voting ensemble and the store that loads them.
Methods themselves live in :mod:`aigi.methods`."""
from .base import Detector, Prediction
from .store import load_detector, load_detector_dir, resolve_detector

__all__ = ["Detector", "Prediction", "load_detector", "load_detector_dir", "resolve_detector"]
