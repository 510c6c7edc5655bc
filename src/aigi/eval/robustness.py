"""Robustness sweeps: the same evaluation under each degradation and severity.

Degraded images are seeded by their content, so a sweep is reproducible and its
features are cached like clean ones: a second detector on the same backbone, or
a rerun, does not encode the degraded images again.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from ..data import degradations
from ..data.datasets import ImageDataset
from ..detectors.base import Detector
from .runner import evaluate


def degradation_transform(name: str, severity: float, seed: int = 0):
    """PIL image + its file hash → the degraded image (deterministic per image)."""
    op = degradations.get(name)

    def transform(image: Image.Image, file_hash: str) -> Image.Image:
        rng = np.random.default_rng([seed, int(file_hash[:15], 16)])
        return Image.fromarray(op(np.asarray(image), severity, rng))

    return transform


def sweep(detector: Detector, ds: ImageDataset, ops: Sequence[str], severities: Sequence[float], seed: int = 0,
          batch_size: int = 32, use_cache: bool = True, progress_factory=None,
          cache_root: str | Path | None = None) -> tuple[list[dict[str, Any]], Any]:
    """One row per (operation, severity, subset) with every metric, and the clean
    evaluation (severity 0 is always run: it is every curve's reference)."""
    severities = sorted({0.0, *map(float, severities)})
    for name in ops:
        degradations.get(name)  # fail before any work on an unknown name
    rows: list[dict[str, Any]] = []
    clean = None
    for name in ops:
        for severity in severities:
            if severity == 0 and clean is not None:
                result = clean  # severity 0 is the identity: the clean run serves every operation
            else:
                bar = progress_factory(len(ds), f"{name}@{severity:g}") if progress_factory else None
                result = evaluate(detector, ds, use_cache=use_cache, batch_size=batch_size,
                                  progress=bar.update if bar else None,
                                  transform=None if severity == 0 else degradation_transform(name, severity, seed),
                                  transform_id=f"{name}:{severity:g}:{seed}", cache_root=cache_root)
                if bar:
                    bar.close()
                if severity == 0:
                    clean = result
            for subset, metrics in result.rows.items():
                rows.append({"op": name, "severity": float(severity), "subset": subset, **metrics})
            for expert, expert_rows in result.experts.items():  # an ensemble's experts, beside the vote
                for subset, metrics in expert_rows.items():
                    rows.append({"op": name, "severity": float(severity), "subset": subset, "expert": expert,
                                 **metrics})
    return rows, clean


def format_sweep(rows: Sequence[dict[str, Any]], subset: str = "all") -> str:
    head = f"{'op':<16} {'severity':>8} {'AP':>8} {'AUC':>8} {'mean@val':>9} {'fake@val':>9}"
    lines = [head, "-" * len(head)]
    for r in rows:
        if r["subset"] != subset or "expert" in r:
            continue
        cells = [r.get("ap"), r.get("auc"), r.get("acc_mean@val"), r.get("acc_fake@val")]
        text = " ".join(f"{'n/a':>8}" if v is None else f"{v:>8.4f}" for v in cells[:2])
        text += " " + " ".join(f"{'n/a':>9}" if v is None else f"{v:>9.4f}" for v in cells[2:])
        lines.append(f"{r['op']:<16} {r['severity']:>8.2f} {text}")
    return "\n".join(lines)
