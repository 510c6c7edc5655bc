"""Waiting for a started ``aigi serve`` process to answer ``/readyz``: for scripts, benchmarks
and tests that start the service in a subprocess and must not send work before it is warm."""
from __future__ import annotations

import subprocess
import time


def wait_ready(base: str, proc: subprocess.Popen | None = None, seconds: float = 120.0) -> None:
    """Return once ``base``/readyz answers 200; raise ``RuntimeError`` if ``proc`` exits first
    (with what it printed, when its output is piped) or ``seconds`` pass."""
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc is not None and proc.poll() is not None:
            said = proc.stdout.read() if proc.stdout is not None else ""
            raise RuntimeError(f"aigi serve exited with {proc.returncode} before it was ready: {said}".strip())
        time.sleep(0.2)
    raise RuntimeError(f"{base} was not ready within {seconds:.0f} s")
