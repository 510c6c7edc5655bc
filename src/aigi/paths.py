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


def feature_cache_dir(override: str | Path | None = None) -> Path:
    """The one feature-cache root: ``override`` (a recipe's ``features.cache_dir``, ``--cache-dir``),
    else ``$AIGI_FEATURE_CACHE`` (tests point it at a temporary folder), else ``<cache>/features``."""
    if override:
        return Path(override).expanduser()
    explicit = os.environ.get("AIGI_FEATURE_CACHE")
    return Path(explicit).expanduser() if explicit else cache_dir() / "features"
