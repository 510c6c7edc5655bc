"""What a person waits for before the first score: start-up of the `aigi` command.

    python benchmarks/startup.py [--repeats 3] [--image examples/cifake/real_01.jpg]

Each row runs a fresh `aigi` process (the weights already converted), median of
the repeats: the CLI alone, a resumed `detect` with nothing left to score (the
detector is never loaded), and `detect` of one image (imports, model load, one
forward pass), with the torch modules and through the default detector's
exported ONNX graph (`--runtime onnxruntime`: no transformers, no tower build).
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(cmd: list[str], repeats: int) -> float:
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--image", default=str(ROOT / "examples" / "cifake" / "real_01.jpg"))
    args = ap.parse_args()
    aigi = [sys.executable, "-m", "aigi.cli"]
    subprocess.run([*aigi, "backbones", "prepare"], check=True, capture_output=True, cwd=ROOT)  # converted once
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "done.jsonl"
        subprocess.run([*aigi, "detect", args.image, "-o", str(out)], check=True, capture_output=True, cwd=ROOT)
        rows = [("aigi --help", timed([*aigi, "--help"], args.repeats)),
                ("detect, resumed, nothing left", timed([*aigi, "detect", args.image, "-o", str(out)], args.repeats)),
                ("detect one image", timed([*aigi, "detect", args.image], args.repeats))]
        graph = Path(tmp) / "graph"
        subprocess.run([*aigi, "export", "default", "-o", str(graph), "--format", "onnx"], check=True,
                       capture_output=True, cwd=ROOT)
        rows.append(("detect one image, onnxruntime",
                     timed([*aigi, "detect", args.image, "-d", str(graph), "--runtime", "onnxruntime"], args.repeats)))
    width = max(len(r) for r, _ in rows)
    print(f"python {sys.version.split()[0]}, median of {args.repeats} fresh processes each")
    print(f"{'run':<{width}}  seconds")
    for name, seconds in rows:
        print(f"{name:<{width}}  {seconds:7.2f}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
