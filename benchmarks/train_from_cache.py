"""Epoch time from pixels vs. from the feature cache, for any frozen-prefix detector.

From pixels every epoch runs the frozen backbone (or its frozen prefix) on every
image, which augmentation requires; from the cache it ran once, and an epoch only
runs what trains (a head, LTD's block, MoLE's last blocks).

    python benchmarks/train_from_cache.py --detector mole --per-class 16 --epochs 2 params.adapted_blocks=3
    python benchmarks/train_from_cache.py --detector ltd --per-class 64 --epochs 3
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--detector", default="mole")
    ap.add_argument("--backbone", default="embedded")
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "cifake"))
    ap.add_argument("--per-class", type=int, default=16, help="training and validation images per class")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("overrides", nargs="*", help="extra key=value recipe overrides")
    args = ap.parse_args()

    from aigi.config import apply_overrides
    from aigi.training.run import train

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["AIGI_FEATURE_CACHE"] = str(Path(tmp) / "features")
        base = apply_overrides({
            "detector": args.detector, "backbone": args.backbone,
            "data": {"train": f"{args.data}/train", "val": f"{args.data}/val", "limit_per_class": args.per_class},
            "train": {"epochs": args.epochs, "batch_size": args.batch_size},
        }, args.overrides)
        rows = []
        for label, extra in (("from pixels (no cache)", ["train.from_pixels=true"]),
                             ("from cache, cold (encodes once)", []),
                             ("from cache, warm", [])):
            out = Path(tmp) / f"run{len(rows)}"
            t0 = time.perf_counter()
            train(apply_overrides(base, [*extra, f"output={out}"]), echo=None)
            wall = time.perf_counter() - t0
            fit = json.loads((out / "metrics.json").read_text())["fit_seconds"]
            rows.append((label, wall, fit))
    n = 2 * args.per_class
    print(f"detector={args.detector} backbone={args.backbone} train images={n} epochs={args.epochs} "
          f"overrides={args.overrides}")
    print(f"{'run':<34} {'wall s':>8} {'training s':>11} {'s/epoch':>8}")
    for label, wall, fit in rows:
        print(f"{label:<34} {wall:>8.1f} {fit:>11.1f} {fit / args.epochs:>8.2f}")
    print(f"epoch speed-up from the cache: {rows[0][2] / rows[2][2]:.1f}x")


if __name__ == "__main__":
    main()
