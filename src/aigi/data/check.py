"""``aigi datasets check``: what a benchmark tree holds, before any model runs.

Counts per subset and class, files that cannot be decoded, and duplicates by
content hash — a duplicate across real and fake is label noise, one across
train and test is leakage, and both silently inflate scores.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable

from .datasets import ImageDataset
from .io import ImageReadError, file_sha256, read_image


def check_dataset(ds: ImageDataset, decode: bool = True, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    by_hash: dict[str, set[tuple[str, int]]] = defaultdict(set)
    unreadable: list[dict[str, str]] = []
    seen: dict[str, str | None] = {}
    for s in ds.samples:
        key = str(s.path)
        if key not in seen:
            try:
                if decode:
                    read_image(s.path)
                seen[key] = file_sha256(s.path)
            except ImageReadError as exc:
                seen[key] = None
                unreadable.append({"path": key, "error": exc.cause})
            except OSError as exc:
                seen[key] = None
                unreadable.append({"path": key, "error": exc.strerror or str(exc)})
        if seen[key] is not None:
            by_hash[seen[key]].add((key, s.label))
        if progress:
            progress(1)
    groups = []
    for digest, members in by_hash.items():
        paths = sorted({p for p, _ in members})
        if len(paths) > 1:
            groups.append({"sha256": digest, "paths": paths, "cross_label": len({lab for _, lab in members}) > 1})
    return {
        "name": ds.name,
        "subsets": ds.counts(),
        "images": len(seen),
        "samples": len(ds),
        "unreadable": unreadable,
        "duplicate_groups": sorted(groups, key=lambda g: g["paths"][0]),
        "cross_label_duplicates": sum(g["cross_label"] for g in groups),
    }


def format_check(report: dict[str, Any], show: int = 10) -> str:
    lines = [f"{report['name']}: {report['images']} files, {report['samples']} samples, "
             f"{len(report['subsets'])} subsets"]
    width = max(8, *(len(s) for s in report["subsets"]))
    lines.append(f"{'subset':<{width}} {'real':>7} {'fake':>7}")
    for subset, counts in report["subsets"].items():
        lines.append(f"{subset:<{width}} {counts['real']:>7} {counts['fake']:>7}")
    lines.append(f"unreadable: {len(report['unreadable'])}")
    lines += [f"  {u['path']}: {u['error']}" for u in report["unreadable"][:show]]
    lines.append(f"duplicate groups (same bytes): {len(report['duplicate_groups'])}, "
                 f"of which across real/fake: {report['cross_label_duplicates']}")
    lines += ["  " + " = ".join(g["paths"]) + ("  [real AND fake]" if g["cross_label"] else "")
              for g in report["duplicate_groups"][:show]]
    return "\n".join(lines)
