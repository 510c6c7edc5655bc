"""Labelled real/fake image collections from folder trees or manifests.

The public benchmarks (ForenSynths/CNNSpot, UniversalFakeDetect, GenImage,
CIFAKE, ...) all encode the label as a folder name and the generator as a
parent folder, so one walker with a small alias table covers them; manifests
cover everything else. Results are sorted so that runs, caches and reports
are reproducible regardless of file-system listing order.
"""
from __future__ import annotations

import csv
import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..errors import InputError
from .io import IMAGE_EXTENSIONS

__all__ = ["LABEL_DIRS", "ImageDataset", "Sample", "load_dataset"]

LABEL_DIRS: dict[str, int] = {
    "0_real": 0,
    "1_fake": 1,
    "real": 0,
    "fake": 1,
    "nature": 0,
    "ai": 1,
}

_LABEL_WORDS: dict[str, int] = {"0": 0, "1": 1, "real": 0, "fake": 1, "nature": 0, "ai": 1}
_LABEL_HINT = "use 0/1, real/fake, nature/ai"
_CLASS_NAMES = {0: "real", 1: "fake"}
_JSONL_SUFFIXES = {".jsonl", ".jsonlines", ".json-lines", ".ndjson"}


@dataclass(frozen=True)
class Sample:
    """One image and its ground truth; ``subset`` is usually the generator."""

    path: Path
    label: int  # 0 = real, 1 = fake
    subset: str


@dataclass
class ImageDataset:
    """A named list of samples; metrics are reported per subset."""

    name: str
    samples: list[Sample] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def __getitem__(self, index: int) -> Sample:
        return self.samples[index]

    def subsets(self) -> list[str]:
        return sorted({s.subset for s in self.samples})

    def by_subset(self) -> dict[str, list[Sample]]:
        groups: dict[str, list[Sample]] = {name: [] for name in self.subsets()}
        for sample in self.samples:
            groups[sample.subset].append(sample)
        return groups

    def counts(self) -> dict[str, dict[str, int]]:
        """``{subset: {"real": n, "fake": n}}``: the first thing to check before trusting an AP."""
        table = {name: {"real": 0, "fake": 0} for name in self.subsets()}
        for sample in self.samples:
            table[sample.subset][_CLASS_NAMES[sample.label]] += 1
        return table

    @property
    def labels(self) -> list[int]:
        return [s.label for s in self.samples]

    @property
    def paths(self) -> list[Path]:
        return [s.path for s in self.samples]

    def limit_per_class(self, n: int, seed: int = 0) -> ImageDataset:
        """Keep at most ``n`` real and ``n`` fake images per subset, for quick runs.

        Each (subset, label) group draws from its own RNG seeded by the group's
        name, so the pick for one generator does not change when another is
        added or removed. The original order is preserved.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise InputError(f"n must be a non-negative integer, got {n!r}")
        groups: dict[tuple[str, int], list[int]] = {}
        for index, sample in enumerate(self.samples):
            groups.setdefault((sample.subset, sample.label), []).append(index)
        keep: set[int] = set()
        for (subset, label), indices in groups.items():
            if len(indices) <= n:
                keep.update(indices)
            else:
                rng = random.Random(f"{seed}:{subset}:{label}")
                keep.update(rng.sample(indices, n))
        return ImageDataset(self.name, [s for i, s in enumerate(self.samples) if i in keep])


def _parse_label(value: Any, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value in (0, 1):
        return value
    if isinstance(value, str) and value.strip().lower() in _LABEL_WORDS:
        return _LABEL_WORDS[value.strip().lower()]
    raise InputError(f"{where}: unknown label {value!r} ({_LABEL_HINT})")


def _make_sample(row: dict[str, Any], base: Path, default_subset: str, where: str) -> Sample:
    raw_path = row.get("path")
    if raw_path is None or (isinstance(raw_path, str) and not raw_path.strip()):
        raise InputError(f"{where}: empty path")
    if not isinstance(raw_path, str):
        raise InputError(f"{where}: path must be a string, got {raw_path!r}")
    if "label" not in row or row["label"] is None or row["label"] == "":
        raise InputError(f"{where}: missing label ({_LABEL_HINT})")
    label = _parse_label(row["label"], where)
    subset = row.get("subset")
    if subset is None or (isinstance(subset, str) and not subset.strip()):
        subset = default_subset
    path = Path(raw_path.strip())
    if not path.is_absolute():  # relative to the manifest, so the folder can move as a whole
        path = base / path
    return Sample(path, label, str(subset).strip())


def _read_csv(manifest: Path) -> list[Sample]:
    samples: list[Sample] = []
    # utf-8-sig: spreadsheets often prepend a BOM that would corrupt the first header name.
    with open(manifest, newline="", encoding="utf-8-sig") as fp:
        reader = csv.DictReader(fp)
        if reader.fieldnames is None:
            raise InputError(f"{manifest}: empty manifest (expected a header with path,label)")
        header = [(name or "").strip().lower() for name in reader.fieldnames]
        missing = [c for c in ("path", "label") if c not in header]
        if missing:
            raise InputError(
                f"{manifest}:1: missing required column(s) {', '.join(missing)} "
                f"(header has: {', '.join(header)})"
            )
        reader.fieldnames = header
        for row in reader:
            values = [v for k, v in row.items() if k is not None]
            if all(v is None or not str(v).strip() for v in values):
                continue  # trailing ",,," rows left by spreadsheet exports
            where = f"{manifest}:{reader.line_num}"
            samples.append(_make_sample(row, manifest.parent, manifest.stem, where))
    return samples


def _read_jsonl(manifest: Path) -> list[Sample]:
    samples: list[Sample] = []
    with open(manifest, encoding="utf-8-sig") as fp:
        for number, line in enumerate(fp, start=1):
            if not line.strip():
                continue
            where = f"{manifest}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise InputError(f"{where}: invalid JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise InputError(f"{where}: expected a JSON object with path and label")
            samples.append(_make_sample(row, manifest.parent, manifest.stem, where))
    return samples


def _images_below(folder: str) -> list[Path]:
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                found.append(Path(dirpath, name))
    return found


def _scan_tree(root: Path, subset_depth: int) -> tuple[list[Sample], int]:
    """Samples below every label folder, plus how many label folders were seen."""
    root_name = root.name or root.resolve().name
    samples: list[Sample] = []
    label_dirs = 0
    for dirpath, dirnames, _ in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        labelled = [d for d in dirnames if d.lower() in LABEL_DIRS]
        if not labelled:
            continue
        parts = Path(os.path.relpath(dirpath, root)).parts
        parts = tuple(p for p in parts if p != ".")
        if not parts:
            subset = root_name
        else:
            subset = "/".join(parts if subset_depth == 0 else parts[:subset_depth])
        for name in labelled:
            label_dirs += 1
            label = LABEL_DIRS[name.lower()]
            samples.extend(Sample(p, label, subset) for p in _images_below(os.path.join(dirpath, name)))
        # Everything under a label folder already has its label; a nested
        # "real" inside "1_fake" is content, not a new label.
        dirnames[:] = [d for d in dirnames if d.lower() not in LABEL_DIRS]
    return samples, label_dirs


def load_dataset(path: str | os.PathLike[str], subset_depth: int = 1) -> ImageDataset:
    """Load a folder tree (label folders such as 0_real/1_fake) or a CSV/JSONL manifest.

    ``subset_depth`` picks how many leading folders above a label folder name
    its subset (0 = all of them): ForenSynths nests ``progan/airplane/0_real``
    and is usually reported per generator, not per object class.
    """
    if isinstance(subset_depth, bool) or not isinstance(subset_depth, int) or subset_depth < 0:
        raise InputError(f"subset_depth must be a non-negative integer, got {subset_depth!r}")
    root = Path(path)
    if not root.exists():
        raise InputError(f"dataset path does not exist: {root}")
    if root.is_file():
        suffix = root.suffix.lower()
        if suffix == ".csv":
            samples = _read_csv(root)
        elif suffix in _JSONL_SUFFIXES:
            samples = _read_jsonl(root)
        else:
            raise InputError(f"unsupported manifest type {suffix or root.name!r} for {root} (use .csv or .jsonl)")
        if not samples:
            raise InputError(f"{root}: manifest has no rows")
        name = root.stem
    else:
        samples, label_dirs = _scan_tree(root, subset_depth)
        if label_dirs == 0:
            hint = ""
            if root.resolve().name.lower() in LABEL_DIRS:
                hint = f" ({root} is itself a label folder; pass its parent)"
            raise InputError(f"no 0_real/1_fake (or real/fake, nature/ai) folders found under {root}{hint}")
        if not samples:
            raise InputError(f"no images found in the label folders under {root}")
        name = root.name or root.resolve().name
    samples.sort(key=lambda s: (s.subset, s.label, s.path.as_posix()))
    return ImageDataset(name, samples)
