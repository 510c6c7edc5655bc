"""Leave-one-source-out folds over a pool: for each source that has fakes, train on
every other source and test on it.

A pool is a folder of ``<source>/{0_real,1_fake}/`` (``aigi datasets build-pool``),
read with ``subset_depth=1`` so that a sample's subset is its source. A fold's test
set is the held-out source's images, plus, so that every fold has reals, one share
of the images of the real-only sources (each real-only image lands in exactly one
fold's test set, chosen by a hash of its path); its training set is everything
else. No image of the held-out source is ever trained on.
"""
from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from ..data.datasets import ImageDataset, Sample
from ..errors import InputError


@dataclass
class Fold:
    source: str  # the held-out source
    train: list[Sample] = field(default_factory=list)
    test: list[Sample] = field(default_factory=list)

    def counts(self) -> dict[str, dict[str, int]]:
        return {part: {"real": sum(s.label == 0 for s in rows), "fake": sum(s.label == 1 for s in rows)}
                for part, rows in (("train", self.train), ("test", self.test))}


def _share(path: Path, n: int) -> int:
    return int(hashlib.sha256(str(path).encode()).hexdigest()[:8], 16) % n


def make_folds(ds: ImageDataset, only: list[str] | None = None) -> list[Fold]:
    """One fold per source with fakes (or per name in ``only``)."""
    sources = sorted({s.subset for s in ds.samples})
    with_fakes = [src for src in sources if any(s.subset == src and s.label == 1 for s in ds.samples)]
    real_only = [src for src in sources if src not in with_fakes]
    held = only or with_fakes
    unknown = sorted(set(held) - set(with_fakes))
    if unknown:
        raise InputError(f"{ds.name}: no fakes from source(s) {', '.join(unknown)} to hold out "
                         f"(sources with fakes: {', '.join(with_fakes)})")
    if len(with_fakes) < 2:
        raise InputError(f"{ds.name}: leave-one-source-out needs at least two sources with fakes")
    folds = []
    for i, source in enumerate(with_fakes):
        if source not in held:
            continue
        fold = Fold(source)
        for s in ds.samples:
            if s.subset == source or (s.subset in real_only and _share(s.path, len(with_fakes)) == i):
                fold.test.append(s)
            else:
                fold.train.append(s)
        folds.append(fold)
    return folds


def write_manifest(samples: list[Sample], path: Path) -> Path:
    """A CSV manifest (path, label, subset) the training and evaluation commands read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "subset"])
        for s in samples:
            writer.writerow([str(Path(s.path).resolve()), s.label, s.subset])
    return path


def pool_generators(pool: Path) -> dict[str, str]:
    """Resolved image path → generator, from a built pool's pool.csv (empty when there is none)."""
    index = Path(pool) / "pool.csv"
    if not index.is_file():
        return {}
    with open(index, newline="") as fh:
        return {str((Path(pool) / r["path"]).resolve()): r["generator"] for r in csv.DictReader(fh)
                if r["label"] == "fake" and r.get("generator")}


def by_generator(predictions: list[dict], generators: dict[str, str], min_fakes: int = 5) -> dict[str, dict]:
    """AUC of each generator's fakes against all the fold's reals (generators with ``min_fakes`` or more)."""
    from sklearn.metrics import roc_auc_score

    scored = [p for p in predictions if p.get("prob_fake") is not None]
    reals = [float(p["prob_fake"]) for p in scored if int(p["label"]) == 0]
    groups: dict[str, list[float]] = {}
    for p in scored:
        gen = generators.get(str(Path(p["path"]).resolve()))
        if int(p["label"]) == 1 and gen:
            groups.setdefault(gen, []).append(float(p["prob_fake"]))
    out = {}
    for gen, fakes in sorted(groups.items()):
        if len(fakes) >= min_fakes and reals:
            auc = roc_auc_score([0] * len(reals) + [1] * len(fakes), reals + fakes)
            out[gen] = {"auc": float(auc), "fake": len(fakes)}
    return out
