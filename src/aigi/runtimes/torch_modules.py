"""The default runtime: the detector's own torch modules compute its logits."""
from __future__ import annotations

from pathlib import Path
from typing import Any


def attach(detector: Any, folder: Path) -> None:
    detector.runner = None
