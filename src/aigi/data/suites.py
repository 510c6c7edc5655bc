"""Readers for the field's benchmark layouts, each a set of named subsets.

Every public benchmark stores its images differently; these readers turn each
on-disk layout into the same :class:`ImageDataset` (subset = generator), so one
evaluation protocol covers them all:

* ``folder``       any tree with ``0_real/1_fake`` (or ``real/fake``, ``nature/ai``) below it
* ``univfd``       ForenSynths / CNNDetection test sets and UnivFD's ``diffusion_datasets``:
                   ``<gen>[/<class>]/{0_real,1_fake}``; wrapper folders are skipped
* ``aigcdetect``   AIGCDetectBenchmark: ``test/<gen>[/<class>]/{0_real,1_fake}``
* ``genimage``     GenImage: ``<gen>/{train,val}/{ai,nature}`` (``val`` is the test split)
* ``drct2m``       DRCT-2M: ``<gen>/val2017/*`` fakes against ``MSCOCO/val2017`` reals
* ``synthbuster``  Synthbuster: ``<gen>/*`` fakes against ``RAISE`` reals
* ``wildrf``       WildRF: ``test/{reddit,twitter,facebook}/{0_real,1_fake}``
* ``chameleon``    Chameleon: ``test/{0_real,1_fake}`` (one subset)

Where a benchmark pairs every generator with one shared set of reals (DRCT-2M,
Synthbuster), each subset holds those reals and that generator's fakes, so
per-generator AP and accuracy are computed as the papers do.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from ..errors import InputError
from ..registry import Registry
from .datasets import LABEL_DIRS, ImageDataset, Sample, load_dataset
from .io import IMAGE_EXTENSIONS

SUITES: Registry[Callable[..., ImageDataset]] = Registry("benchmark suite")
WRAPPERS = {"test", "val", "diffusion_datasets", "cnn_synth_testset", "testset", "test_set"}


def _images(folder: Path) -> list[Path]:
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out += [Path(dirpath) / f for f in sorted(filenames)
                if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_EXTENSIONS]
    return out


def _require_dir(root: Path) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder")
    return root


def _labelled_tree(root: Path, name: str, subset_of: Callable[[tuple[str, ...]], str]) -> ImageDataset:
    """Walk label folders; ``subset_of`` maps the label folder's parent parts to a subset."""
    root = _require_dir(root)
    samples = []
    for dirpath, dirnames, _ in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        label = LABEL_DIRS.get(Path(dirpath).name.lower())
        if label is None or Path(dirpath) == root:
            continue
        dirnames[:] = []  # do not look for label folders inside a label folder
        parts = Path(dirpath).parent.relative_to(root).parts
        samples += [Sample(p, label, subset_of(parts)) for p in _images(Path(dirpath))]
    if not samples:
        raise InputError(f"{root}: no labelled images found for suite '{name}'")
    return ImageDataset(name, sorted(samples, key=lambda s: (s.subset, s.label, str(s.path))))


def _first_meaningful(parts: tuple[str, ...], fallback: str) -> str:
    kept = [p for p in parts if p.lower() not in WRAPPERS]
    return kept[0] if kept else fallback


@SUITES.register("folder")
def folder(root: Path, subset_depth: int = 1) -> ImageDataset:
    return load_dataset(root, subset_depth=subset_depth)


@SUITES.register("univfd")
def univfd(root: Path, **_: object) -> ImageDataset:
    root = Path(root)
    return _labelled_tree(root, "univfd", lambda parts: _first_meaningful(parts, root.name))


SUITES.register("forensynths", univfd)


@SUITES.register("aigcdetect")
def aigcdetect(root: Path, **_: object) -> ImageDataset:
    root = Path(root)
    return _labelled_tree(root, "aigcdetect", lambda parts: _first_meaningful(parts, root.name))


@SUITES.register("wildrf")
def wildrf(root: Path, **_: object) -> ImageDataset:
    root = Path(root)
    return _labelled_tree(root, "wildrf", lambda parts: _first_meaningful(parts, root.name))


@SUITES.register("chameleon")
def chameleon(root: Path, **_: object) -> ImageDataset:
    return _labelled_tree(Path(root), "chameleon", lambda parts: "chameleon")


@SUITES.register("genimage")
def genimage(root: Path, split: str = "val", **_: object) -> ImageDataset:
    """``<gen>/<split>/{ai,nature}``; the subset is ``<gen>``."""
    root = _require_dir(root)
    samples = []
    for gen in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for folder_name, label in (("nature", 0), ("ai", 1)):
            folder = gen / split / folder_name
            if folder.is_dir():
                samples += [Sample(p, label, gen.name) for p in _images(folder)]
    if not samples:
        raise InputError(f"{root}: no <generator>/{split}/{{ai,nature}} folders (GenImage layout)")
    return ImageDataset("genimage", samples)


def _paired(root: Path, name: str, reals_dir: Path, fake_dirs: dict[str, Path]) -> ImageDataset:
    reals = _images(reals_dir) if reals_dir.is_dir() else []
    if not reals:
        raise InputError(f"{reals_dir}: no real images ({name} pairs every generator with these)")
    samples = []
    for gen, folder in sorted(fake_dirs.items()):
        fakes = _images(folder)
        if fakes:
            samples += [Sample(p, 0, gen) for p in reals] + [Sample(p, 1, gen) for p in fakes]
    if not samples:
        raise InputError(f"{root}: no generator folders with images ({name} layout)")
    return ImageDataset(name, samples)


@SUITES.register("drct2m")
def drct2m(root: Path, reals: str | None = None, **_: object) -> ImageDataset:
    """``<gen>/val2017/*`` against ``MSCOCO/val2017`` (or ``reals``)."""
    root = _require_dir(root)
    reals_dir = Path(reals) if reals else root / "MSCOCO" / "val2017"
    fakes = {g.name: g / "val2017" for g in root.iterdir()
             if g.is_dir() and g.resolve() != reals_dir.parent.resolve() and (g / "val2017").is_dir()}
    return _paired(root, "drct2m", reals_dir, fakes)


@SUITES.register("synthbuster")
def synthbuster(root: Path, reals: str | None = None, **_: object) -> ImageDataset:
    """``<gen>/*`` against ``RAISE`` (or ``reals``)."""
    root = _require_dir(root)
    reals_dir = Path(reals) if reals else root / "RAISE"
    fakes = {g.name: g for g in root.iterdir()
             if g.is_dir() and not g.name.startswith(".") and g.resolve() != reals_dir.resolve()}
    return _paired(root, "synthbuster", reals_dir, fakes)


def load_suite(root: str | Path, suite: str = "folder", **options: object) -> ImageDataset:
    """A benchmark tree as named subsets; ``suite`` picks the layout reader."""
    if not Path(root).exists():
        raise InputError(f"{root}: no such file or folder")
    return SUITES.get(suite)(Path(root), **options)
