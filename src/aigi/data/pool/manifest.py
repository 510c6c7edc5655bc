"""The pool's manifest: one CSV row per image, what the builder verifies against.

``scan`` reads clones (git plumbing only) and writes what each source's rules
select; maintainers run it when a source is added (``aigi datasets pool-manifest``),
and the manifest is committed. Reading it needs nothing but the CSV.
"""
from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from PIL import Image

from ...errors import InputError
from ..io import read_image
from .git import BlobReader, find_clone, full_commit, list_blobs
from .perceptual import as_array, dhash, is_near, to_hex
from .sources import SOURCES, Source

DEFAULT_MANIFEST = Path(__file__).resolve().parent / "manifest.csv"  # committed; shipped with the package
EXTERNAL_MANIFEST = DEFAULT_MANIFEST.with_name("external.csv")
# a set's manifests: ``all`` has none of its own, it is the pool's rows and then the external set's
# (which already leaves out the pool's files and near copies of its pictures)
MANIFESTS: dict[str, tuple[Path, ...]] = {"pool": (DEFAULT_MANIFEST,), "external": (EXTERNAL_MANIFEST,),
                                          "all": (DEFAULT_MANIFEST, EXTERNAL_MANIFEST)}


@dataclass
class Row:
    source: str
    repo: str
    commit: str
    path: str
    sha256: str
    label: str  # real / fake
    generator: str
    width: int
    height: int
    format: str
    licence: str
    dhash: str  # the picture's difference hash (16 hex digits; .perceptual): the external set leaves out near copies


def _generator(source: Source, rule, path: str) -> str:
    if rule.generator:
        return rule.generator
    return path.split("/", 1)[0] if source.name == "comfy" else "unknown"


def scan(clones: Path, sources: Iterable[Source] = SOURCES,
         progress: Callable[[str], None] | None = None) -> list[Row]:
    """One row per file each source's rules select, read at the pinned commit."""
    rows: list[Row] = []
    for source in sources:
        git_dir = find_clone(Path(clones), source.repo)
        commit = full_commit(git_dir, source.commit)
        compiled = [(re.compile(r.pattern), r) for r in source.rules]
        picked = []
        for path, _size in list_blobs(git_dir, commit):
            rule = next((r for rx, r in compiled if rx.fullmatch(path)), None)
            if rule is not None:
                picked.append((path, rule))
        with BlobReader(git_dir) as reader:
            for path, rule in sorted(picked):
                data = reader.read(commit, path)
                if data is None:
                    continue
                try:
                    with Image.open(io.BytesIO(data)) as im:
                        width, height, fmt, info = im.width, im.height, im.format or "?", dict(im.info)
                    if rule.needs_png_text and rule.needs_png_text not in info:
                        continue
                    picture = dhash(read_image(data))  # decoded as the builder decodes it
                except Exception:  # noqa: BLE001 - an undecodable file is simply not in the pool
                    continue
                rows.append(Row(source.name, source.repo, commit, path, hashlib.sha256(data).hexdigest(),
                                "fake" if rule.label else "real", _generator(source, rule, path), width, height,
                                fmt.lower(), source.licence, to_hex(picture)))
        if source.per_class is not None:
            rows = _limit(rows, source)
        if progress:
            progress(f"{source.name}: {sum(r.source == source.name for r in rows)} images")
    return rows


@dataclass(frozen=True)
class Held:
    """The files and pictures of a set of rows (the pool's), which a test set must not hold:
    the same bytes, or the same picture resized or re-encoded."""

    shas: frozenset[str] = frozenset()
    pictures: np.ndarray = field(default_factory=lambda: as_array(()))

    @classmethod
    def of(cls, rows: Iterable[Row]) -> "Held":
        rows = list(rows)
        return cls(frozenset(r.sha256 for r in rows), as_array(int(r.dhash, 16) for r in rows))

    def holds_file(self, sha256: str) -> bool:
        return sha256 in self.shas

    def holds_picture(self, picture: int) -> bool:
        return is_near(self.pictures, picture)


def leave_out(rows: list[Row], pool: list[Row]) -> list[Row]:
    """``rows`` without the files of ``pool`` and without near copies of its pictures: an
    external test set must hold nothing the pool trains on, resized or re-encoded included."""
    held = Held.of(pool)
    return [r for r in rows if not (held.holds_file(r.sha256) or held.holds_picture(int(r.dhash, 16)))]


def _limit(rows: list[Row], source: Source) -> list[Row]:
    """At most ``source.per_class`` of its rows per class, the smallest sha256 first."""
    mine = [r for r in rows if r.source == source.name]
    keep = {id(r) for label in ("real", "fake")
            for r in sorted((r for r in mine if r.label == label), key=lambda r: r.sha256)[:source.per_class]}
    return [r for r in rows if r.source != source.name or id(r) in keep]


def write(rows: list[Row], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[f.name for f in fields(Row)])
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)
    return path


def read(path: Path = DEFAULT_MANIFEST) -> list[Row]:
    if not Path(path).is_file():
        raise InputError(f"{path}: no pool manifest")
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        names = [f.name for f in fields(Row)]
        if reader.fieldnames != names:
            raise InputError(f"{path}: not a pool manifest (columns {reader.fieldnames}, expected {names})")
        return [Row(**{**r, "width": int(r["width"]), "height": int(r["height"])}) for r in reader]
