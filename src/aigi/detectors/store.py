"""Where detectors come from: shipped names, saved folders and run folders.

``resolve_detector`` turns whatever a person typed into a folder holding
``config.json`` + ``model.safetensors``; ``load_detector_dir`` rebuilds the
detector through the registry. Both the Python API and the ensemble use these,
which is why they live here and not in :mod:`aigi.api`.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from ..errors import DetectorNotFound
from ..registry import DETECTORS
from .base import CONFIG_FILE, WEIGHTS_FILE, Detector

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_DETECTOR = "univfd-cifake"


def pretrained_detectors() -> dict[str, Path]:
    """Detectors shipped inside the package (a few KB each)."""
    if not WEIGHTS_DIR.is_dir():
        return {}
    return {p.name: p for p in sorted(WEIGHTS_DIR.iterdir()) if (p / CONFIG_FILE).is_file()}


def resolve_detector(name_or_path: str | Path | None = None) -> Path:
    """A shipped name, a saved detector folder, or a training run folder → folder."""
    if name_or_path in (None, "", "default"):
        name_or_path = DEFAULT_DETECTOR
    shipped = pretrained_detectors()
    if str(name_or_path) in shipped:
        return shipped[str(name_or_path)]
    path = Path(name_or_path)
    if (path / CONFIG_FILE).is_file():
        return path
    if (path / "detector" / CONFIG_FILE).is_file():
        return path / "detector"
    known = ", ".join(shipped) or "none"
    raise DetectorNotFound(f"{name_or_path}: not a shipped detector ({known}), a saved detector folder or a run folder")


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


def load_detector(name_or_path: str | Path | None = None, device: str | torch.device = "cpu") -> Detector:
    """Load a detector ready for ``predict``; with no argument, the default one."""
    return load_detector_dir(resolve_detector(name_or_path), device=device)
