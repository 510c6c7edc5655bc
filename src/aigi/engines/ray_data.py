"""``aigi detect --engine ray``: score on a Ray cluster, or a local Ray runtime, into Parquet.

The pipeline is Ray Data's streaming executor:

* paths → **decode** in Ray tasks (``batch_size`` paths each): read, cut the view,
  pre-process (the detector's :meth:`~aigi.detectors.inference.Inference.preparer`,
  which holds no weights);
* → **score** in an actor pool (``actors``), one detector loaded once per actor,
  one forward pass per prepared batch;
* → **write** Parquet files into ``out`` (columns path, prob_fake, verdict, error,
  detector, precision, runtime, threshold), each written whole by its task.

The records are those of ``aigi detect``: an unreadable file is a record with its
error, never a failed job. A rerun with the same ``out`` reads the ``path`` column
of every file there first and scores only what is missing; a file that cannot be
read (a job killed while writing it) is renamed ``*.torn`` and its images are
scored again. A lock file in ``out`` refuses a second job on it at the same time.

Without ``address`` Ray starts on this machine and stops at the end; with one
(``ray://head:10001``, or ``auto`` on a cluster node) the job runs on that cluster,
where every node needs aigi installed and the images at the same paths.
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from ..errors import InputError
from ..locks import exclusive
from ..scoring import path_key


def schema():
    """The columns of every output file, one schema for all (so the folder reads as one table)."""
    import pyarrow as pa

    return pa.schema([("path", pa.string()), ("prob_fake", pa.float64()), ("verdict", pa.string()),
                      ("error", pa.string()), ("detector", pa.string()), ("precision", pa.string()),
                      ("runtime", pa.string()), ("threshold", pa.float64())])


def done_paths(out: Path, log: Callable[[str], None]) -> set[str]:
    """Every image already in ``out``'s Parquet files (by resolved path); torn files set aside."""
    import pyarrow.parquet as pq

    done: set[str] = set()
    for file in sorted(out.glob("*.parquet")):
        try:
            done.update(path_key(p) for p in pq.read_table(file, columns=["path"]).column("path").to_pylist())
        except Exception as exc:  # pyarrow's own errors: a file cut short, or not Parquet at all
            file.rename(file.with_name(file.name + ".torn"))
            log(f"{file}: unreadable ({str(exc)[:80]}); renamed to {file.name}.torn, its images are scored again")
    return done


def decode_batch(batch: dict[str, Any], preparer: Callable) -> dict[str, Any]:
    """A Ray task: one batch of paths → one prepared batch (pixels, rows, errors)."""
    import numpy as np

    prepared = np.empty(1, dtype=object)
    prepared[0] = preparer([str(p) for p in batch["path"]])
    return {"prepared": prepared}


class Scorer:
    """A Ray actor: one detector, loaded once; prepared batches in, records out."""

    def __init__(self, detector: str | None, device: str, precision: str, runtime: str, label: str,
                 threads: int, threshold: float | None = None) -> None:  # ("auto" precision: the actor's own CPU)
        import torch

        from ..api import load_detector

        if device == "cpu":
            torch.set_num_threads(threads)
        self.det = load_detector(detector, device=device, precision=precision, runtime=runtime)
        self.det.eval()
        if threshold is not None:
            self.det.threshold = threshold
        runner = self.det.runner
        self.tag = {"detector": label, "precision": self.det.precision, "runtime": runner.name if runner else "torch",
                    "threshold": self.det.threshold}

    def __call__(self, batch: dict[str, Any]):
        import pyarrow as pa

        rows = [{**p.as_record(), **self.tag} for prepared in batch["prepared"] for p in self.det.score_batch(prepared)]
        # one fixed schema: a file whose every error is empty still types the column as text, so
        # the folder reads as one table; an error's empty score is a Parquet null
        columns = schema()
        return pa.Table.from_pylist([{k: r.get(k) for k in columns.names} for r in rows], schema=columns)


def _start_ray(address: str | None, actors: int, log: Callable[[str], None]) -> bool:
    """Connect, or start a local runtime; True when this call started it (and must stop it)."""
    import ray

    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, log_to_driver=False)
        log(f"ray: connected to {address} ({ray.cluster_resources().get('CPU', 0):.0f} CPUs)")
        return True
    # every actor holds a CPU for its life: a local runtime gets as many more logical CPUs, so the
    # decode tasks always have somewhere to run
    cpus = (os.cpu_count() or 1) + actors
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    log(f"ray: a local runtime with {cpus} logical CPUs")
    return True


def detect_ray(paths: Sequence[Path], detector: str | None, out: str | Path, batch_size: int = 16,
               address: str | None = None, actors: int = 1, device: str = "cpu", precision: str = "fp32",
               runtime: str = "torch", decode: str = "full", threshold: float | None = None,
               log: Callable[[str], None] = lambda m: None) -> dict[str, int]:
    """Score ``paths`` into Parquet files in ``out``; returns counts (scored now, fake, real,
    error, already done). ``threshold`` replaces the detector's own for the verdicts."""
    try:
        import ray
    except ImportError:
        raise InputError("--engine ray needs Ray: pip install 'aigi[ray]'") from None
    from ..api import load_detector

    if batch_size < 1 or actors < 1:
        raise InputError(f"batch size and actors must be at least 1, got {batch_size} and {actors}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: --engine ray writes a folder of Parquet files; this is a file")
    out.mkdir(parents=True, exist_ok=True)
    with exclusive(out, "detect"):
        done = done_paths(out, log)
        todo = [p for p in paths if path_key(p) not in done]
        counts = {"scored": 0, "fake": 0, "real": 0, "error": 0, "already": len(paths) - len(todo)}
        if not todo:
            return counts
        label = str(detector) if detector else "default"
        # loaded here so a bad detector fails before Ray starts; only its weightless preparer is kept
        loaded = load_detector(detector, device="cpu", precision=precision, runtime=runtime)
        loaded.decode = decode
        preparer = loaded.preparer()
        del loaded
        before = set(out.glob("*.parquet"))
        started = _start_ray(address, actors, log)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = sys.stderr.isatty()  # else Ray logs its progress every few seconds
        try:
            ds = ray.data.from_items([{"path": str(p)} for p in todo])
            # half a CPU: a resource request unlike the actors' keeps Ray from fusing decoding into them
            ds = ds.map_batches(decode_batch, fn_kwargs={"preparer": preparer}, batch_size=batch_size, num_cpus=0.5)
            gpu = device.startswith("cuda")
            ds = ds.map_batches(Scorer, batch_size=1, compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=1,
                                num_gpus=1 if gpu else 0,
                                fn_constructor_kwargs={"detector": detector, "device": "cuda" if gpu else device,
                                                       "precision": precision, "runtime": runtime, "label": label,
                                                       "threads": max(1, (os.cpu_count() or 1) // actors),
                                                       "threshold": threshold})
            ds.write_parquet(str(out))
        finally:
            if started:
                ray.shutdown()
        return _count(counts, sorted(set(out.glob("*.parquet")) - before))


def _count(counts: dict[str, int], files: Iterable[Path]) -> dict[str, int]:
    import pyarrow.parquet as pq

    for file in files:
        for verdict in pq.read_table(file, columns=["verdict"]).column("verdict").to_pylist():
            counts["scored"] += 1
            counts[verdict or "error"] += 1
    return counts
