"""Building the pool from clones: every file verified against the manifest, the
rejection rules applied and counted, the images written as ``<out>/<source>/
{0_real,1_fake}/<sha256[:16]>.<ext>``.

Rules, in order, each counted in ``report.json``:

- ``missing`` / ``sha_mismatch``: the clone does not hold the manifest's bytes;
- ``too_small``: shorter side below the source's minimum (256 px);
- ``duplicate``: the same bytes already taken (any source);
- ``in_pool`` (the external test set): the same bytes are in the training pool;
- ``near_pool`` (the external test set): the same picture is in the training pool
  (difference hash within 4 bits of a pool image: a resized or re-encoded copy);
- ``placeholder``: the Stable Diffusion safety-checker frame a refused output was
  replaced with (perceptually equal to the repository's own frame), or a black frame;
- ``near_duplicate_across_classes``: a real and a fake image that look the same
  (difference hash within 4 bits): both are dropped, their label is in doubt;
- ``watermark_cropped`` (kept): a visible generator mark in the bottom-right corner
  removed by cropping the bottom 8 % of the image;
- ``card_cropped`` (kept): the image part of a captioned card kept, the caption (which
  may name the answer) cut off.
"""
from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
from PIL import Image

from ...errors import InputError
from ..io import ImageReadError, read_image
from .git import BlobReader, find_clone
from .manifest import DEFAULT_MANIFEST, Held, Row, read
from .perceptual import NEAR_BITS, as_array, dhash, distance, distances
from .sources import SOURCES, Source

PLACEHOLDER_BITS = 6
WATERMARK_STRIP = 0.08


def _crop_corner_mark(image: Image.Image) -> Image.Image:
    return image.crop((0, 0, image.width, int(round(image.height * (1 - WATERMARK_STRIP)))))


def build(clones: Path, out: Path, manifest: Path | Sequence[Path] = DEFAULT_MANIFEST,
          sources: Iterable[Source] | None = None, only: Iterable[str] | None = None,
          log: Callable[[str], None] | None = None, exclude: Held = Held()) -> dict:
    """Write the pool and its report; returns the report. ``manifest``: one, or several read in
    turn into one folder (the ``all`` set). ``exclude``: files and pictures that must not be taken
    (the training pool's, when building the external test set)."""
    clones, out = Path(clones), Path(out)
    manifests = [Path(manifest)] if isinstance(manifest, (str, Path)) else [Path(m) for m in manifest]
    table = {s.name: s for s in (SOURCES if sources is None else sources)}
    rows = []
    for m in manifests:
        part = read(m)
        unknown = sorted({r.source for r in part} - set(table))
        if unknown:
            raise InputError(f"{m}: sources {', '.join(unknown)} are not in aigi's source table")
        rows += part
    wanted = set(only) if only else set(table)
    missing = sorted(wanted - set(table))
    if missing:
        raise InputError(f"unknown source {', '.join(missing)} (known: {', '.join(table)})")
    rows = [r for r in rows if r.source in wanted]
    rejected: dict[str, Counter] = defaultdict(Counter)
    kept: list[tuple[Row, Image.Image | None, bytes, int]] = []  # row, cropped image (or None), bytes, dhash
    seen: set[str] = set()
    by_source: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        by_source[r.source].append(r)
    for name, group in by_source.items():
        source = table[name]
        with BlobReader(find_clone(clones, source.repo)) as reader:
            frame = None
            if source.placeholder:
                raw = reader.read(source.commit, source.placeholder)
                frame = dhash(read_image(raw)) if raw else None
            for row in group:
                data = reader.read(row.commit, row.path)
                rule = _reject(row, data, source, seen) or ("in_pool" if exclude.holds_file(row.sha256) else None)
                image, picture = None, 0
                if rule is None:
                    try:
                        image = read_image(data)
                        picture = dhash(image)  # the file's picture, before any crop
                    except ImageReadError:
                        rule = "unreadable"
                if rule is None and _is_placeholder(image, picture, frame):
                    rule = "placeholder"
                if rule is None and exclude.holds_picture(picture):
                    rule = "near_pool"
                if rule:
                    rejected[name][rule] += 1
                    continue
                seen.add(row.sha256)
                cropped = None
                if source.watermark == "corner":
                    cropped = image = _crop_corner_mark(image)
                    rejected[name]["watermark_cropped"] += 1
                if source.crop:
                    cropped = image = image.crop(source.crop)
                    rejected[name]["card_cropped"] += 1
                kept.append((row, cropped, data, picture if cropped is None else dhash(image)))
        if log:
            log(f"{name}: {sum(1 for k in kept if k[0].source == name)} kept of {len(group)}")
    kept = _drop_near_duplicates(kept, rejected)
    return _write(out, kept, rejected, manifests)


def _reject(row: Row, data: bytes | None, source: Source, seen: set[str]) -> str | None:
    import hashlib

    if data is None:
        return "missing"
    if hashlib.sha256(data).hexdigest() != row.sha256:
        return "sha_mismatch"
    if min(row.width, row.height) < source.min_side:
        return "too_small"
    if row.sha256 in seen:
        return "duplicate"
    return None


def _is_placeholder(image: Image.Image, picture: int, frame: int | None) -> bool:
    if int(np.asarray(image.convert("L").resize((32, 32))).max()) < 8:  # a black frame
        return True
    return frame is not None and distance(picture, frame) <= PLACEHOLDER_BITS


def _drop_near_duplicates(kept, rejected):
    reals = [(i, h) for i, (row, _, _, h) in enumerate(kept) if row.label == "real"]
    fakes = [(i, h) for i, (row, _, _, h) in enumerate(kept) if row.label == "fake"]
    drop: set[int] = set()
    if reals and fakes:
        fake_hashes = as_array(h for _, h in fakes)
        for i, h in reals:
            close = np.nonzero(distances(fake_hashes, h) <= NEAR_BITS)[0]
            if len(close):
                drop.add(i)
                drop.update(fakes[j][0] for j in close)
    for i in drop:
        rejected[kept[i][0].source]["near_duplicate_across_classes"] += 1
    return [k for i, k in enumerate(kept) if i not in drop]


def _write(out: Path, kept, rejected, manifests: list[Path]) -> dict:
    counts: dict[str, Counter] = defaultdict(Counter)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "pool.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "source", "generator", "repo", "commit", "repo_path", "sha256"])
        for row, cropped, data, _ in kept:
            folder = out / row.source / ("1_fake" if row.label == "fake" else "0_real")
            folder.mkdir(parents=True, exist_ok=True)
            if cropped is not None:
                target = folder / f"{row.sha256[:16]}.png"
                cropped.save(target, format="PNG")
            else:
                target = folder / f"{row.sha256[:16]}{Path(row.path).suffix.lower()}"
                target.write_bytes(data)
            counts[row.source][row.label] += 1
            writer.writerow([str(target.relative_to(out)), row.label, row.source, row.generator, row.repo,
                             row.commit, row.path, row.sha256])
    report = {"manifest": ", ".join(map(str, manifests)),
              "kept": {s: dict(c) for s, c in sorted(counts.items())},
              "rules": {s: dict(c) for s, c in sorted(rejected.items())},
              "total": {"real": sum(c["real"] for c in counts.values()),
                        "fake": sum(c["fake"] for c in counts.values())}}
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def add_folder(out: Path, folder: Path, name: str, per_class: int) -> dict:
    """Add a local labelled folder (``0_real``/``1_fake``, e.g. CIFAKE's train split) to a built
    pool as the source ``name``: ``per_class`` files per class, picked by the sha256 of their
    bytes (the same files on every machine, spread over the folder), rows appended to pool.csv
    and counted in report.json. The pool's size rule does not apply: such a source is kept
    for what it is (CIFAKE: 32 px thumbnails of CIFAR-10 and SD 1.4)."""
    import hashlib

    out, folder = Path(out), Path(folder)
    report_path = out / "report.json"
    if not report_path.is_file():
        raise InputError(f"{out}: not a built pool (no report.json); run build-pool first")
    report = json.loads(report_path.read_text())
    if name in report["kept"]:
        raise InputError(f"{out}: the pool already has a source named '{name}'")
    rows = []
    for label, sub in (("real", "0_real"), ("fake", "1_fake")):
        files = sorted(p for p in (folder / sub).glob("*") if p.is_file() and not p.name.startswith("."))
        if not files:
            raise InputError(f"{folder / sub}: no files (a labelled folder has 0_real/ and 1_fake/)")
        hashed = sorted({hashlib.sha256(p.read_bytes()).hexdigest(): p for p in reversed(files)}.items())  # one per content
        target = out / name / sub
        target.mkdir(parents=True, exist_ok=True)
        for sha, p in hashed[:per_class]:
            dest = target / f"{sha[:16]}{p.suffix.lower()}"
            dest.write_bytes(p.read_bytes())
            rows.append([str(dest.relative_to(out)), label, name, "", "", "", str(p), sha])
        report["kept"][name] = {**report["kept"].get(name, {}), label: min(per_class, len(hashed))}
        report["total"][label] += min(per_class, len(hashed))
    with open(out / "pool.csv", "a", newline="") as fh:
        csv.writer(fh).writerows(rows)
    report.setdefault("added", {})[name] = {"folder": str(folder), "per_class": per_class}
    report_path.write_text(json.dumps(report, indent=2) + "\n")
    return report
