"""``aigi detect``: score many files, write results as they come, resume later.

Results are appended to the output file after every batch (JSONL or CSV, by the
file's extension), so an interrupted run keeps everything it scored; running
again with the same ``--out`` skips paths that already have a record.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Callable, Iterable, Iterator

from .detectors.base import Detector, Prediction
from .errors import InputError

FIELDS = ["path", "prob_fake", "verdict", "error"]


def _output_format(out: Path) -> str:
    suffix = out.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    raise InputError(f"{out}: output must end in .jsonl or .csv")


def read_records(out: Path) -> list[dict]:
    """Records already in an output file (a torn last line is ignored)."""
    if not out.exists():
        return []
    if _output_format(out) == "csv":
        with open(out, newline="") as fh:
            return list(csv.DictReader(fh))
    records = []
    with open(out) as fh:
        for line in fh:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


class ResultWriter:
    """Appends records and flushes after each batch; a CSV takes its columns from its
    header, or from the first record (an ensemble adds one ``p_<expert>`` column each)."""

    def __init__(self, out: Path | None) -> None:
        self.out = out
        self.format = _output_format(out) if out else None
        self._fh = None
        self._csv: csv.DictWriter | None = None
        self._fresh = True
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            self._fresh = not out.exists() or out.stat().st_size == 0
            if self.format == "jsonl" and not self._fresh:
                _end_with_newline(out)
            self._fh = open(out, "a", newline="" if self.format == "csv" else None)

    def _csv_writer(self, first: dict) -> csv.DictWriter:
        if self._csv is None:
            if self._fresh:
                fields = FIELDS + [k for k in first if k not in FIELDS]
            else:
                with open(self.out, newline="") as fh:  # type: ignore[arg-type]
                    fields = next(csv.reader(fh), FIELDS)
            self._csv = csv.DictWriter(self._fh, fieldnames=fields, extrasaction="ignore")
            if self._fresh:
                self._csv.writeheader()
        return self._csv

    def write(self, records: Iterable[dict]) -> None:
        if self._fh is None:
            return
        for rec in records:
            if self.format == "csv":
                self._csv_writer(rec).writerow(rec)
            else:
                self._fh.write(json.dumps(rec) + "\n")
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


def _end_with_newline(path: Path) -> None:
    """A killed run may leave a torn last line; start ours on a fresh one."""
    with open(path, "rb+") as fh:
        fh.seek(-1, 2)
        if fh.read(1) != b"\n":
            fh.write(b"\n")


def run_detect(
    detector: Detector,
    paths: list[Path],
    out: Path | None = None,
    batch_size: int = 16,
    retry_errors: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Iterator[Prediction]:
    """Yield predictions for ``paths`` not already in ``out``, writing each batch."""
    done: set[str] = set()
    if out is not None:
        for rec in read_records(out):
            if retry_errors and rec.get("error"):
                continue
            done.add(rec["path"])
    todo = [p for p in paths if str(p) not in done]
    if progress and len(paths) - len(todo):
        progress(len(paths) - len(todo))
    writer = ResultWriter(out)
    try:
        for start in range(0, len(todo), batch_size):
            batch = detector.predict([str(p) for p in todo[start : start + batch_size]], batch_size=batch_size)
            writer.write(p.as_record() for p in batch)
            if progress:
                progress(len(batch))
            yield from batch
    finally:
        writer.close()
