"""Split a labelled set's real images in two, to test operating points set on one's own reals.

``set.csv`` holds a share of the reals of every subset (what a team would label as genuine and
give to ``aigi operating-points --data``); ``test.csv`` the other reals and every fake (what
``aigi eval`` then measures the points on). Both are aigi manifests (path,label,subset).

    python scripts/holdout_reals.py /tmp/ext2 --out /tmp/own --fraction 0.5 --seed 0
    aigi operating-points photo-b16 --data /tmp/own/set.csv -o /tmp/own/detector
    aigi eval -d /tmp/own/detector --data /tmp/own/test.csv --bootstrap 0
"""
from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path

from aigi.data.datasets import Sample, load_dataset


def split(samples: list[Sample], fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """(``fraction`` of each subset's reals, the rest with every fake), drawn with ``seed``."""
    rng = random.Random(seed)
    chosen: set[Path] = set()
    for subset in sorted({s.subset for s in samples}):
        reals = sorted(s.path for s in samples if s.subset == subset and s.label == 0)
        chosen.update(rng.sample(reals, round(fraction * len(reals))))
    return [s for s in samples if s.path in chosen], [s for s in samples if s.path not in chosen]


def write(samples: list[Sample], path: Path) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "subset"])
        w.writerows([str(s.path.resolve()), s.label, s.subset] for s in samples)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", help="labelled folder (0_real/1_fake per subset) or manifest")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--fraction", type=float, default=0.5, help="share of each subset's reals in set.csv")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if not 0 < args.fraction < 1:
        ap.error("--fraction must lie between 0 and 1")
    chosen, rest = split(load_dataset(args.data).samples, args.fraction, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    write(chosen, args.out / "set.csv")
    write(rest, args.out / "test.csv")
    print(f"{args.out / 'set.csv'}: {len(chosen)} reals; {args.out / 'test.csv'}: "
          f"{sum(s.label == 0 for s in rest)} reals, {sum(s.label == 1 for s in rest)} fakes")


if __name__ == "__main__":
    main()
