"""Where aigi keeps converted weights and cached features."""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$AIGI_CACHE_DIR``, else ``$XDG_CACHE_HOME/aigi``, else ``~/.cache/aigi``."""
    explicit = os.environ.get("AIGI_CACHE_DIR")
    if explicit:
        root = Path(explicit).expanduser()
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser() / "aigi"
    root.mkdir(parents=True, exist_ok=True)
    return root


def feature_cache_dir() -> Path:
    """``$AIGI_FEATURE_CACHE`` if set (tests point it at a temporary folder), else ``<cache>/features``."""
    explicit = os.environ.get("AIGI_FEATURE_CACHE")
    return Path(explicit).expanduser() if explicit else cache_dir() / "features"
