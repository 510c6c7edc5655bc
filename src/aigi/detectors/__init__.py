"""Detectors, one file per method, each registered by name in :mod:`aigi.registry`."""
from .base import Detector, Prediction, load_detector_dir

__all__ = ["Detector", "Prediction", "load_detector_dir"]
