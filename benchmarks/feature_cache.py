"""How much the feature cache saves: train the UnivFD probe twice on the same images.

The first run encodes every image with the frozen backbone; the second reads
the cached embeddings and never runs the backbone.

    python benchmarks/feature_cache.py --per-class 50 --backbone embedded
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "cifake"))
    ap.add_argument("--backbone", default="embedded")
    ap.add_argument("--per-class", type=int, default=50, help="images per class in each of train and val")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["AIGI_FEATURE_CACHE"] = str(Path(tmp) / "features")  # start cold
        from aigi.training.run import train

        config = {
            "detector": "univfd", "backbone": args.backbone,
            "data": {"train": f"{args.data}/train", "val": f"{args.data}/val", "limit_per_class": args.per_class},
            "train": {"epochs": 50}, "output": str(Path(tmp) / "run"),
        }
        timings = []
        for label in ("cold cache (backbone runs)", "warm cache (no backbone)"):
            t0 = time.perf_counter()
            train(config, echo=None)
            timings.append((label, time.perf_counter() - t0))
        log = (Path(tmp) / "run" / "train.log").read_text().splitlines()
        encoded = [line.split(": ", 1)[1] for line in log if "encoded now" in line]

    n_images = 2 * args.per_class
    print(f"backbone={args.backbone}  images: {n_images} train + {n_images} val (limit {args.per_class}/class/split)"
          f"  torch threads={torch.get_num_threads()}")
    print(f"{'run':<30} {'seconds':>9}")
    for label, seconds in timings:
        print(f"{label:<30} {seconds:>9.2f}")
    print(f"speed-up: {timings[0][1] / timings[1][1]:.1f}x")
    print("second run, from train.log: " + "; ".join(encoded[-2:]))


if __name__ == "__main__":
    main()
