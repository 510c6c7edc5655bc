"""Load on a local `aigi serve`: every request answered, latency percentiles, images/s.

    python benchmarks/serve_load.py [--detector NAME] [--images DIR] [--requests 200]
                                    [--concurrency 200] [--max-seconds 600]

Starts `aigi serve` on a free loopback port, waits until /readyz, then an asyncio
client keeps `--concurrency` connections busy until `--requests` requests (one image
each) are answered or `--max-seconds` pass. Prints answered/errors, p50/p95/p99
latency, the service's images/s, its peak RSS, and beside it `detect`'s images/s on
the same images in one process (the model loaded once, batch 32).
"""
from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def load(base: str, files: list[Path], requests: int, concurrency: int, max_seconds: float):
    import httpx

    payloads = [(f.name, f.read_bytes()) for f in files]
    latencies, errors, answered = [], {}, 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)
    deadline = time.monotonic() + max_seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=max_seconds) as client:
        async def worker():
            nonlocal answered
            while time.monotonic() < deadline:
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                name, data = payloads[i % len(payloads)]
                t0 = time.perf_counter()
                try:
                    res = await client.post("/v1/detect", files=[("files", (name, data, "image/jpeg"))])
                    ok = res.status_code == 200 and res.json()["results"][0]["prob_fake"] is not None
                    key = None if ok else f"HTTP {res.status_code}"
                except httpx.HTTPError as exc:
                    key = type(exc).__name__
                latencies.append(time.perf_counter() - t0)
                answered += 1
                if key:
                    errors[key] = errors.get(key, 0) + 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    return answered, errors, latencies, wall


def detect_rate(detector: str | None, files: list[Path]) -> float:
    import aigi

    det = aigi.load_detector(detector)
    det.predict([str(f) for f in files[:8]], batch_size=8)  # warm-up
    t0 = time.perf_counter()
    det.predict([str(f) for f in files], batch_size=32)
    return len(files) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--detector", default=None)
    ap.add_argument("--images", default=str(ROOT.parent / "shared" / "data" / "cifake" / "test"))
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--max-seconds", type=float, default=600)
    args = ap.parse_args()
    folder = Path(args.images)
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[: args.requests]
    if not files:
        files = sorted((ROOT / "examples" / "cifake").glob("*.jpg"))
    port = free_port()
    cmd = [sys.executable, "-m", "aigi.cli", "serve", "--port", str(port), "--max-batch", "32"]
    if args.detector:
        cmd += ["--detector", args.detector]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        import httpx

        from aigi.serve.ready import wait_ready

        wait_ready(base, server, seconds=150)
        answered, errors, lat, wall = asyncio.run(load(base, files, args.requests, args.concurrency, args.max_seconds))
        rss = peak_rss_mib(server.pid)
        alive = httpx.get(base + "/readyz", timeout=5).status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=30)
    rate = detect_rate(args.detector, files)
    q = statistics.quantiles(lat, n=100) if len(lat) > 1 else [float("nan")] * 99
    print(f"{args.requests} requests of 1 image ({len(files)} distinct, {folder.name}), {args.concurrency} concurrent connections")
    print(f"answered {answered}, errors {sum(errors.values())} {errors or ''}, server alive after: {alive}")
    print(f"latency p50 {q[49]:.2f} s, p95 {q[94]:.2f} s, p99 {q[98]:.2f} s")
    print(f"service {answered / wall:.2f} images/s, peak RSS {rss:.0f} MiB")
    print(f"detect  {rate:.2f} images/s in one process (batch 32): service / detect = {answered / wall / rate:.2f}")


if __name__ == "__main__":
    main()
