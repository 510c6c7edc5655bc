"""The Python API: ``aigi.load_detector(...)`` and ``detector.predict([...])``."""
from __future__ import annotations

from pathlib import Path

import torch

from .detectors.base import CONFIG_FILE, Detector, load_detector_dir

_WEIGHTS = Path(__file__).parent / "weights"
DEFAULT_DETECTOR = "univfd-cifake"


def pretrained_detectors() -> dict[str, Path]:
    """Detectors shipped inside the package (a few KB each)."""
    return {p.name: p for p in sorted(_WEIGHTS.iterdir()) if (p / CONFIG_FILE).is_file()} if _WEIGHTS.is_dir() else {}


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
    raise FileNotFoundError(f"{name_or_path}: not a shipped detector ({known}), a saved detector folder or a run folder")


def load_detector(name_or_path: str | Path | None = None, device: str | torch.device = "cpu") -> Detector:
    """Load a detector ready for ``predict``; with no argument, the default one."""
    return load_detector_dir(resolve_detector(name_or_path), device=device)
