"""What early exit saves: a full backbone pass vs. one that stops after block k.

LTD only needs the CLS features of its window, so at inference the backbone
stops after the window's last block. This times both on the same batch.

    python benchmarks/early_exit.py --backbone embedded --stop-after 8 --batch 16 --repeats 3
    python benchmarks/early_exit.py --detector runs/ltd-cifake      # the window a trained LTD chose
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default="embedded")
    ap.add_argument("--detector", default=None, help="a trained LTD run: use its backbone and window")
    ap.add_argument("--stop-after", type=int, default=None, help="last block to run (0-based)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    from aigi.backbones import load_backbone

    if args.detector:
        import aigi

        det = aigi.load_detector(args.detector)
        backbone, layers = det.backbone, det.selected_layers()
    else:
        backbone = load_backbone(args.backbone).freeze()
        stop = args.stop_after if args.stop_after is not None else backbone.num_layers * 2 // 3
        layers = [stop]
    size = backbone.preprocess_spec.output_size
    x = torch.randn(args.batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        full = _time(lambda: backbone.encode(x, layers="all"), args.repeats)
        early = _time(lambda: backbone.encode(x, layers=layers, stop_after=layers[-1], embed=False), args.repeats)
    blocks = layers[-1] + 1
    print(f"backbone={backbone.name} blocks={backbone.num_layers} batch={args.batch} threads={torch.get_num_threads()}")
    print(f"{'pass':<34} {'s/batch':>8} {'img/s':>7}")
    print(f"{'full (all blocks)':<34} {full:>8.3f} {args.batch / full:>7.2f}")
    print(f"{f'early exit after block {layers[-1]}':<34} {early:>8.3f} {args.batch / early:>7.2f}")
    print(f"saving: {1 - early / full:.1%} of the time ({backbone.num_layers - blocks} of {backbone.num_layers} blocks skipped)")


if __name__ == "__main__":
    main()
