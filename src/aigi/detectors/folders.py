"""Where saved detectors are, without loading anything heavy: shipped names, detector
folders and run folders resolve to a folder here, and its ``config.json`` can be read
(``aigi detect`` checks a detector and skips finished files before torch is imported)."""
from __future__ import annotations

from pathlib import Path

from ..errors import DetectorNotFound

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT_VERSION = 1
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_DETECTOR = "photo-b16"


def pretrained_detectors() -> dict[str, Path]:
    """Detectors shipped inside the package (a few KB each)."""
    if not WEIGHTS_DIR.is_dir():
        return {}
    return {p.name: p for p in sorted(WEIGHTS_DIR.iterdir()) if (p / CONFIG_FILE).is_file()}


def is_shipped(folder: Path) -> bool:
    """Whether a detector folder is one of the package's own."""
    return folder.resolve().parent == WEIGHTS_DIR


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
