"""Loading detectors: ``load_detector_dir`` rebuilds one from ``config.json`` +
``model.safetensors`` through the registry; names resolve to folders in
:mod:`.folders`. The Python API and the ensemble both use these, which is why they
live here and not in :mod:`aigi.api`.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from ..errors import DetectorNotFound
from ..registry import DETECTORS
from .base import Detector
from .folders import (
    CONFIG_FILE,
    DEFAULT_DETECTOR,
    WEIGHTS_FILE,
    pretrained_detectors,
    resolve_detector,
)

__all__ = ["CONFIG_FILE", "DEFAULT_DETECTOR", "load_detector", "load_detector_dir", "pretrained_detectors",
           "resolve_detector"]


def load_detector_dir(folder: str | Path, device: str | torch.device = "cpu") -> Detector:
    """Rebuild a detector from ``config.json`` + ``model.safetensors``."""
    folder = Path(folder)
    cfg_path = folder / CONFIG_FILE
    if not cfg_path.is_file():
        raise DetectorNotFound(f"{folder}: no {CONFIG_FILE} (not a saved detector)")
    config = json.loads(cfg_path.read_text())
    cls = DETECTORS.get(config["detector"])
    det = cls.from_config(config)
    det.load_saved_state(load_file(str(folder / WEIGHTS_FILE)))
    det.loaded_from(folder)
    return det.to(device).eval()


def load_detector(name_or_path: str | Path | None = None, device: str | torch.device = "cpu",
                  precision: str = "fp32", runtime: str = "torch") -> Detector:
    """Load a detector ready for ``predict``; with no argument, the default one. ``precision``:
    fp32, bf16 or int8 (:mod:`aigi.detectors.precision`); ``runtime``: torch, or onnxruntime for a
    folder ``aigi export --format onnx`` wrote (:mod:`aigi.runtimes`)."""
    from ..devices import check_device
    from ..registry import RUNTIMES
    from .precision import check_choice, set_precision

    check_device(str(device))
    check_choice(precision, runtime)  # before anything loads
    folder = resolve_detector(name_or_path)
    det = load_detector_dir(folder, device=device)
    RUNTIMES.get(runtime)(det, folder)
    if precision != "fp32":
        set_precision(det, precision)
    return det
