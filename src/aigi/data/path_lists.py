"""Lists of image paths in a file: what a batch job over an archive is usually handed.

``aigi detect`` takes, next to files, folders and globs, a list of paths as
``.csv`` or ``.jsonl`` (a ``path`` column or key; other columns are ignored, so a
training manifest works), ``.parquet`` (a ``path`` column; needs pyarrow, part of
``aigi[ray]``) or ``.txt`` / ``.lst`` (one path per line). Relative paths are
relative to the list's folder, as in training manifests.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

from ..errors import InputError

LIST_SUFFIXES = (".csv", ".jsonl", ".ndjson", ".parquet", ".txt", ".lst")


def is_path_list(item: str | Path) -> bool:
    path = Path(item)
    return path.suffix.lower() in LIST_SUFFIXES and path.is_file()


def read_path_list(path: str | Path) -> list[Path]:
    """The paths a list names, in its order; a list without a path column is a one-line error."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            names = _parquet(path)
        elif suffix == ".csv":
            with open(path, newline="", encoding="utf-8-sig") as fh:
                reader = csv.DictReader(fh)
                if "path" not in (reader.fieldnames or []):
                    raise InputError(f"{path}: a list of images needs a 'path' column (found: {reader.fieldnames})")
                names = [row["path"] for row in reader if row.get("path")]
        elif suffix in (".jsonl", ".ndjson"):
            names = []
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                record = json.loads(line)
                if not isinstance(record, dict) or "path" not in record:
                    raise InputError(f"{path}:{number}: each line must be an object with a 'path' key")
                names.append(record["path"])
        else:
            names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (UnicodeDecodeError, json.JSONDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: not a readable list of paths ({exc})") from None
    return [p if p.is_absolute() else path.parent / p for p in map(Path, map(str, names))]


def _parquet(path: Path) -> list[str]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(f"{path}: reading Parquet needs pyarrow (pip install 'aigi[ray]')") from None
    try:
        columns = pq.read_schema(path).names
        table = pq.read_table(path, columns=["path"]) if "path" in columns else None
    except Exception as exc:  # pyarrow raises its own error types for a torn or foreign file
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from None
    if table is None:
        raise InputError(f"{path}: a list of images needs a 'path' column (found: {columns})")
    return [p for p in table.column("path").to_pylist() if p]
