"""Pick the photo examples in examples/photos/ from a built pool, by a fixed rule (no cherry-picking):
per (source, class), the files under 800 KB with the smallest sha256. Only sources whose licence
allows redistribution are used. Writes the images and examples/photos/SOURCES.md.

    python scripts/pick_examples.py POOL
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

PLAN = (("kaivalya", "real", 5), ("kaivalya", "fake", 3), ("nanobanana", "fake", 2), ("comfy", "fake", 2))
LICENCE = {"kaivalya": "MIT", "nanobanana": "Apache-2.0", "comfy": "ISC-style (free to use, copy, modify and distribute)"}
MAX_BYTES = 800_000


def main(pool: Path, out: Path = Path(__file__).resolve().parents[1] / "examples" / "photos") -> None:
    rows = list(csv.DictReader(open(pool / "pool.csv")))
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# Photo examples", "", "Picked by `scripts/pick_examples.py` from the public pool (docs/data.md): per source "
             "and class, the files under 800 KB with the smallest sha256. They are excluded from photo-b16's "
             "training (`data.exclude`). Bytes are the repositories' own, except the Nano Banana images: the pool "
             "builder cropped their corner mark off and saved them as PNG.", "",
             "| file | class | repository @ commit | path | licence |", "|---|---|---|---|---|"]
    for source, label, n in PLAN:
        picked = sorted((r for r in rows if r["source"] == source and r["label"] == label
                         and (pool / r["path"]).stat().st_size < MAX_BYTES), key=lambda r: r["sha256"])[:n]
        for i, r in enumerate(picked, 1):
            name = f"{label}_{source}_{i}{Path(r['path']).suffix}"
            (out / name).write_bytes((pool / r["path"]).read_bytes())
            lines.append(f"| {name} | {label} | {r['repo']} @{r['commit'][:7]} | `{r['repo_path']}` | {LICENCE[source]} |")
    (out / "SOURCES.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
