"""Advisory locks: two runs never write the same results file or run folder at once.

The lock is a file beside the target (``.<name>.lock``, or ``.lock`` inside a
folder) held with ``flock`` for the life of the run; the operating system drops
it when the process ends, however it ends, so a killed run never leaves a stale
lock. Where ``fcntl`` does not exist (Windows) runs are not locked.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from .errors import InputError

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None  # type: ignore[assignment]


def lock_path(target: Path) -> Path:
    target = Path(target)
    return target / ".lock" if target.is_dir() else target.with_name(f".{target.name}.lock")


@contextlib.contextmanager
def exclusive(target: str | os.PathLike[str], what: str) -> Iterator[None]:
    """Hold the lock of ``target`` or fail at once, naming it."""
    path = lock_path(Path(target))
    if fcntl is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise InputError(f"{target}: already in use by another aigi {what} ({holder}); wait for it to "
                             "finish or choose another") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        try:
            yield
        finally:
            fh.seek(0)
            fh.truncate()
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
