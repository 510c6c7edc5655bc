"""``aigi detect``: score many files into a results file that a crash cannot corrupt.

The results file (``--out``, JSONL or CSV by its extension) holds exactly one
record per image:

- records are appended and flushed after every batch, so a killed run keeps
  everything it scored;
- before appending, the file is checked: a torn last line (a run killed
  mid-write) is cut off and its image scored again; a file that is not an aigi
  results file (no ``path`` column or key) is refused and left untouched;
- ``--retry-errors`` rewrites the file atomically (temporary file + rename)
  without the error records it is about to retry, so a retried image never has
  two records;
- a record matches a file by its resolved absolute path, so ``photos/x.jpg`` and
  ``/home/me/photos/x.jpg`` are the same image (relative paths in a file are
  resolved against the working directory of the run that reads it);
- a lock (``.<name>.lock`` beside the file) refuses a second run on the same file.
"""
from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

from .errors import InputError
from .locks import exclusive

if TYPE_CHECKING:  # checking and repairing a results file imports no torch
    from .detectors import Detector, Prediction

FIELDS = ["path", "prob_fake", "verdict", "error"]


def output_format(out: Path) -> str:
    suffix = out.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    raise InputError(f"{out}: results must go to a .jsonl (.ndjson, .json) or .csv file")


def path_key(path: str | os.PathLike[str]) -> str:
    """What identifies an image across runs: its resolved absolute path."""
    return str(Path(path).expanduser().resolve())


class ResultsFile:
    """An existing or new results file: its complete records, repaired on open."""

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self.format = output_format(self.out)
        self.header: list[str] | None = None
        self.records: list[dict] = []
        self.repaired: list[str] = []  # what was cut off, for the log
        if self.out.exists():
            if not self.out.is_file():
                raise InputError(f"{self.out}: not a regular file")
            self._read()

    # ---- reading and repair -------------------------------------------------------
    def _read(self) -> None:
        data = self.out.read_bytes()
        if not data.strip():
            return
        complete, _, tail = data.rpartition(b"\n")
        if tail.strip():  # the last line has no newline: a run was killed while writing it
            self.repaired.append(tail.decode("utf-8", "replace")[:80])
            data = complete + b"\n" if complete else b""
        text = data.decode("utf-8", "replace")
        if self.format == "jsonl":
            self._read_jsonl(text)
        else:
            self._read_csv(text)
        if self.repaired:
            self._rewrite()

    def _read_jsonl(self, text: str) -> None:
        lines = [line for line in text.splitlines() if line.strip()]
        for n, line in enumerate(lines, start=1):
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                if n == 1:
                    raise InputError(f"{self.out}: not an aigi results file (line 1 is not JSON); "
                                     "choose another --out, this one is left untouched") from None
                self.repaired.append(line[:80])  # torn by an older version, then written after
                continue
            if not isinstance(rec, dict) or "path" not in rec:
                raise InputError(f"{self.out}:{n}: not an aigi results file (a record without 'path'); "
                                 "choose another --out, this one is left untouched")
            self.records.append(rec)

    def _read_csv(self, text: str) -> None:
        rows = list(csv.reader(io.StringIO(text, newline="")))
        if not rows:
            return
        self.header = rows[0]
        if "path" not in self.header:
            raise InputError(f"{self.out}: not an aigi results file (no 'path' column); "
                             "choose another --out, this one is left untouched")
        for row in rows[1:]:
            if len(row) != len(self.header):
                self.repaired.append(",".join(row)[:80])
                continue
            self.records.append(dict(zip(self.header, row)))

    # ---- writing ------------------------------------------------------------------
    def _rewrite(self) -> None:
        """Write the kept records to a temporary file and rename it into place."""
        tmp = self.out.with_name(f".{self.out.name}.tmp")
        with open(tmp, "w", newline="") as fh:
            if self.format == "jsonl":
                fh.writelines(json.dumps(rec) + "\n" for rec in self.records)
            else:
                writer = csv.DictWriter(fh, fieldnames=self.header or FIELDS, extrasaction="ignore")
                writer.writeheader()
                writer.writerows(self.records)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.out)

    def drop(self, keys: set[str]) -> bool:
        """Remove the records of these images (before scoring them again), atomically; whether
        the file was rewritten."""
        kept = [rec for rec in self.records if path_key(rec["path"]) not in keys]
        if len(kept) == len(self.records):
            return False
        self.records = kept
        self._rewrite()
        return True

    def done(self, retry_errors: bool = False) -> set[str]:
        """Images with a final record (an error counts unless it is to be retried)."""
        return {path_key(r["path"]) for r in self.records if not (retry_errors and r.get("error"))}


class ResultWriter:
    """Appends records and flushes after each batch; a CSV takes its columns from its
    header, or from the first record (an ensemble adds one ``p_<expert>`` column each)."""

    def __init__(self, results: ResultsFile) -> None:
        self.results = results
        self.out = results.out
        self.out.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.out.exists() or self.out.stat().st_size == 0
        self._fh = open(self.out, "a", newline="")
        self._csv: csv.DictWriter | None = None
        self._fields = None if fresh else results.header

    def write(self, records: Iterable[dict]) -> None:
        for rec in records:
            if self.results.format == "csv":
                if self._csv is None:
                    header = self._fields is None
                    self._fields = self._fields or FIELDS + [k for k in rec if k not in FIELDS]
                    self._csv = csv.DictWriter(self._fh, fieldnames=self._fields, extrasaction="ignore")
                    if header:
                        self._csv.writeheader()
                self._csv.writerow(rec)
            else:
                self._fh.write(json.dumps(rec) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


STREAM_CHUNK = 4096  # paths taken from the input at a time: any iterable, a stream of lines included


def run_detect(
    detector: Detector | Callable[[], Detector],
    paths: Iterable[Path],
    out: Path | None = None,
    batch_size: int = 16,
    retry_errors: bool = False,
    progress: Callable[[int], None] | None = None,
    log: Callable[[str], None] | None = None,
    threshold: float | None = None,
) -> Iterator[Prediction]:
    """Yield predictions for ``paths`` not already in ``out``, writing each batch. ``paths`` is read
    ``STREAM_CHUNK`` at a time, so a stream is scored as it arrives; the results file is read and
    locked once for the whole run. ``detector`` may be a function that loads it: it is called
    only if something is left to score. ``threshold`` replaces the detector's own for the verdicts
    and is then named in every record."""
    if batch_size < 1:
        raise InputError(f"batch size must be at least 1, got {batch_size}")
    with exclusive(out, "detect") if out is not None else contextlib.nullcontext():
        results = ResultsFile(out) if out is not None else None
        if results is not None and results.repaired and log:
            log(f"{out}: cut {len(results.repaired)} incomplete record(s) left by an interrupted run "
                f"(first: {results.repaired[0]!r}); those images are scored again")
        done = results.done(retry_errors) if results is not None else set()
        det, writer, tag, own_threshold = None, None, {}, None
        stream = iter(paths)
        try:
            while chunk := list(itertools.islice(stream, STREAM_CHUNK)):
                todo = [p for p in chunk if path_key(p) not in done]
                if progress and len(chunk) - len(todo):
                    progress(len(chunk) - len(todo))
                if not todo:
                    continue
                if results is not None and retry_errors and results.drop({path_key(p) for p in todo}) and writer:
                    writer.close()  # the file was replaced: append to the new one
                    writer = ResultWriter(results)
                if det is None:
                    from .detectors.base import Detector

                    det = detector if isinstance(detector, Detector) else detector()
                    det.eval()
                    tag = {"precision": det.precision} if det.precision != "fp32" else {}
                    if tag and log:
                        log(f"scoring in {det.precision} (--precision fp32 or AIGI_PRECISION=fp32 for the reference)")
                    if det.runner is not None:
                        tag["runtime"] = det.runner.name
                    if det.decode != "full":
                        tag["decode"] = det.decode
                    if threshold is not None:  # for this run only: a detector passed in gets its own back
                        own_threshold, det.threshold = det.threshold, threshold
                        tag["threshold"] = threshold
                if writer is None and results is not None:
                    writer = ResultWriter(results)
                for batch in _pipelined(det, [[str(p) for p in todo[s : s + batch_size]]
                                              for s in range(0, len(todo), batch_size)]):
                    if writer:
                        writer.write({**p.as_record(), **tag} for p in batch)
                    if progress:
                        progress(len(batch))
                    yield from batch
                    # what a later chunk must not score again (an error stays retryable, as in the file)
                    done.update(path_key(p.path) for p in batch if not (retry_errors and p.error))
        finally:
            if writer:
                writer.close()
            if own_threshold is not None:
                det.threshold = own_threshold


def _pipelined(det: Detector, chunks: list[list[str]]) -> Iterator[list[Prediction]]:
    """Score ``chunks`` in order while a worker thread reads and pre-processes the next one:
    decoding (Pillow) and the forward pass (torch) both release the GIL, so the two overlap
    and the model rarely waits for a file."""
    from concurrent.futures import ThreadPoolExecutor

    if not chunks:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="aigi-decode") as pool:
        ahead = pool.submit(det.prepare_batch, chunks[0])
        for k in range(len(chunks)):
            prepared = ahead.result()
            if k + 1 < len(chunks):
                ahead = pool.submit(det.prepare_batch, chunks[k + 1])
            yield det.score_batch(prepared)

