"""Scale-out on this machine: training on 1 process against 2 under `accelerate launch`,
and scoring with the local engine against Ray Data.

    python benchmarks/scale_out.py [--detector mole] [--images 64] [--epochs 1] [--score 64]

Training: the same recipe (the embedded CLIP B/16, CIFAKE, `--images` per class, one
global batch size) runs as `aigi train` and as `accelerate launch --config_file
configs/accelerate/cpu-2-processes.yaml -m aigi train`, each in fresh processes, after
one warm-up run that fills the feature cache for validation. It prints the wall time of
each whole command and the trainer's own time (`fit_seconds` in metrics.json), and how
far the two runs' weights are apart.

Scoring: `aigi detect` (one process, a decode thread) against `aigi detect --engine ray
--actors 2` on `--score` CIFAKE test images, both into fresh outputs.

On a 2-core machine two processes share the same two cores that one process already
uses through its threads: expect no speed-up there. The figures say what each costs.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CIFAKE = ROOT.parent / "shared" / "data" / "cifake"


def run(cmd: list[str], env: dict | None = None) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return time.perf_counter() - t0


def recipe(args, out: Path) -> dict:
    return {"detector": args.detector, "backbone": "embedded", "output": str(out),
            "params": {"adapted_blocks": 2} if args.detector == "mole" else {},
            "data": {"train": str(CIFAKE / "train"), "val": str(CIFAKE / "val"), "limit_per_class": args.images},
            "train": {"epochs": args.epochs, "batch_size": args.batch, "lr": 1e-4, "from_pixels": True,
                      "checkpoint_every": 0}}


def max_difference(a: Path, b: Path) -> float:
    from safetensors.torch import load_file

    wa, wb = (load_file(str(p / "detector" / "model.safetensors")) for p in (a, b))
    return max(float((wa[k].float() - wb[k].float()).abs().max()) for k in wa)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--detector", default="mole", help="a detector trained through the backbone (mole, univfd ...)")
    ap.add_argument("--images", type=int, default=64, help="training images per class")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=16, help="the global batch")
    ap.add_argument("--score", type=int, default=64, help="CIFAKE test images to score (0: skip scoring)")
    args = ap.parse_args()
    env = {**os.environ}
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        aigi = [sys.executable, "-m", "aigi"]
        launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                  str(ROOT / "configs" / "accelerate" / "cpu-2-processes.yaml"), "-m", "aigi"]
        warm = recipe(args, tmp / "warm")
        warm["train"]["epochs"] = 0
        (tmp / "warm.yaml").write_text(yaml.safe_dump(warm))
        run([*aigi, "train", str(tmp / "warm.yaml")], env)  # validation features into the cache
        rows = []
        for name, prefix in (("1 process", aigi), ("2 processes (accelerate, gloo)", launch)):
            out = tmp / name.split()[0]
            (tmp / f"{out.name}.yaml").write_text(yaml.safe_dump(recipe(args, out)))
            wall = run([*prefix, "train", str(tmp / f"{out.name}.yaml")], env)
            fit = json.loads((out / "metrics.json").read_text())["fit_seconds"]
            rows.append((name, wall, fit, out))
        images = 2 * args.images * args.epochs
        print(f"\ntraining: {args.detector} on embedded B/16, {images} images ({args.images}/class x {args.epochs} "
              f"epoch(s)), global batch {args.batch}")
        print("| launch | wall s | trainer s | trainer images/s |\n|---|---|---|---|")
        for name, wall, fit, _ in rows:
            print(f"| {name} | {wall:.1f} | {fit:.1f} | {images / fit:.2f} |")
        print(f"max |weight difference| between the two runs: {max_difference(rows[0][3], rows[1][3]):.2e}")

        if args.score:
            files = sorted((CIFAKE / "test").rglob("*.jpg"))[: args.score] or sorted((CIFAKE / "test").rglob("*.png"))[: args.score]
            listing = tmp / "score.txt"
            listing.write_text("".join(f"{p}\n" for p in files))
            local = run([*aigi, "detect", str(listing), "--out", str(tmp / "local.jsonl")], env)
            ray = run([*aigi, "detect", str(listing), "--engine", "ray", "--actors", "2", "--out", str(tmp / "ray")], env)
            print(f"\nscoring {len(files)} CIFAKE images with the default detector (whole command, start-up included)")
            print("| engine | wall s | images/s |\n|---|---|---|")
            for name, wall in (("local (1 process, decode thread)", local), ("ray (local runtime, 2 actors)", ray)):
                print(f"| {name} | {wall:.1f} | {len(files) / wall:.2f} |")


if __name__ == "__main__":
    main()
