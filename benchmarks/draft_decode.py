"""What `--decode draft` buys and costs: decode time, pixel difference and AUC.

    python benchmarks/draft_decode.py --data POOL/lab [--n 200] [--detector univfd-cifake] [--precision fp32]

On `--n` JPEGs of a folder with 0_real/ and 1_fake/ (half of each), it measures
the time to read and pre-process each image for a detector whose view resizes
(full decode, then draft decode at a DCT scale that keeps the short side at
least twice the tower's input), the difference of the pre-processed pixels in
grey levels, and the detector's ROC AUC both ways (`aigi.detect`).
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

import aigi
from aigi.detectors.inference import ViewPreparer


def jpegs(folder: Path, n: int) -> tuple[list[str], list[int]]:
    files, labels = [], []
    for label, sub in ((0, "0_real"), (1, "1_fake")):
        found = sorted(p for p in (folder / sub).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))[: n // 2]
        files += [str(p) for p in found]
        labels += [label] * len(found)
    return files, labels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--detector", default="univfd-cifake", help="a detector whose view resizes")
    ap.add_argument("--precision", default="fp32")
    args = ap.parse_args()
    files, labels = jpegs(args.data, args.n)
    det = aigi.load_detector(args.detector, precision=args.precision)
    if det.view.native:
        raise SystemExit(f"{args.detector} crops at native resolution: draft decoding never applies to it")
    spec = det.preprocess_spec
    times: dict[str, list[float]] = {"full": [], "draft": []}
    worst, mean = [], []
    for f in files:
        pixels = {}
        for decode in ("full", "draft"):
            t0 = time.perf_counter()
            pixels[decode] = ViewPreparer(det.view, spec, decode)([f]).pixels
            times[decode].append(time.perf_counter() - t0)
        # normalised pixels back to grey levels: times the spec's std, times 255
        std = np.asarray(spec.std, dtype=np.float32)[:, None, None] * 255
        diff = np.abs((pixels["full"] - pixels["draft"]).numpy()[0]) * std
        worst.append(float(diff.max()))
        mean.append(float(diff.mean()))
    print(f"{len(files)} JPEGs from {args.data}; {args.detector} ({det.view} view, input {spec.output_size})")
    for decode in ("full", "draft"):
        print(f"  read + pre-process, {decode:5}: {1000 * statistics.median(times[decode]):6.1f} ms/image (median)")
    print(f"  pixel difference: mean {statistics.mean(mean):.2f} grey levels; per image max: "
          f"median {statistics.median(worst):.1f}, worst {max(worst):.1f}")
    for decode in ("full", "draft"):
        t0 = time.perf_counter()
        probs = [p.prob_fake for p in aigi.detect(files, det, decode=decode, precision=args.precision)]
        print(f"  AUC, {decode:5}: {roc_auc_score(labels, probs):.4f}  ({len(files) / (time.perf_counter() - t0):.2f} "
              "images/s end to end)")


if __name__ == "__main__":
    main()
