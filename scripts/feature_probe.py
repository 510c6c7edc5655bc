"""A quick look at which frozen features carry over to new generators, before a recipe is written:
a logistic probe on the embedded B/16's per-block summaries, trained on a pool and scored on an
external set (per source with both classes, as `aigi eval` does), outside the training loop.

    python scripts/feature_probe.py extract POOL --view crop --copy -o feats/pool-crop.npz
    python scripts/feature_probe.py extract EXT --view crop -o feats/ext-crop.npz
    python scripts/feature_probe.py score POOL EXT feats/pool-crop.npz feats/ext-crop.npz --blocks 6-11 --summary cls

`extract` keeps, for every block, the CLS token and the mean of the patch tokens of each image seen
through a view (`--copy`: the first re-encoded, rescaled training copy of `augment.copies`, as the
photo recipes train on). `score` fits one probe per features file pair given (`--pair` repeats), and
`--late` adds the sum of their logits: a vote of views before any recipe exists. Its numbers are a
guide, not a result: the recipes' own runs (`aigi loso`, `aigi eval`) decide.
"""
from __future__ import annotations

import argparse
import csv
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch


def _extract(args: argparse.Namespace) -> None:
    from aigi.backbones import load_backbone
    from aigi.backbones.views import View
    from aigi.data.augment import FixedCopies
    from aigi.data.io import ImageReadError, read_image

    rows = list(csv.DictReader(open(args.pool / "pool.csv")))
    tower = load_backbone(args.backbone, "cpu", torch.bfloat16).freeze()
    view, copies = View.parse(args.view), FixedCopies(n=1, keep_original=False)
    size = tower.preprocess_spec.output_size

    def load(row: dict) -> object:
        try:
            image = read_image(args.pool / row["path"])
        except ImageReadError as exc:
            print(f"skipped {row['path']}: {exc}")
            return None
        return view.apply(copies.copy(image, row["sha256"], 0) if args.copy else image, size)[0]

    cls, mean, kept = [], [], []
    with ThreadPoolExecutor(2) as pool:
        for start in range(0, len(rows), args.batch_size):
            batch = rows[start:start + args.batch_size]
            images = list(pool.map(load, batch))
            ok = [i for i, im in enumerate(images) if im is not None]
            if not ok:
                continue
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
                hidden = tower.embed_tokens(tower.preprocess([images[i] for i in ok]))
                c, m = [], []
                for block in range(tower.num_layers):
                    hidden = tower.run_block(block, hidden)
                    c.append(hidden[:, 0].float())
                    m.append(hidden[:, 1:].float().mean(1))
            cls.append(torch.stack(c, 1).half().numpy())
            mean.append(torch.stack(m, 1).half().numpy())
            kept += [batch[i]["path"] for i in ok]
            print(f"{len(kept)}/{len(rows)}", end="\r", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, cls=np.concatenate(cls), mean=np.concatenate(mean), path=np.array(kept))
    print(f"\n{len(kept)} images → {args.out}")


def _blocks(text: str) -> list[int]:
    lo, _, hi = text.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def _features(file: Path, root: Path, summary: str,
              blocks: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X, labels, sources, paths): each block's summary layer-normalised (as univfd-layers does),
    concatenated."""
    z = np.load(file)
    meta = {r["path"]: r for r in csv.DictReader(open(root / "pool.csv"))}
    rows = [meta[str(p)] for p in z["path"]]
    parts = [z[s].astype(np.float32)[:, blocks] for s in (("cls", "mean") if summary == "both" else (summary,))]
    parts = [(x - x.mean(-1, keepdims=True)) / (x.std(-1, keepdims=True) + 1e-5) for x in parts]
    x = np.concatenate(parts, 1).reshape(len(rows), -1)
    return x, np.array([r["label"] == "fake" for r in rows], int), np.array([r["source"] for r in rows]), z["path"]


def _score(args: argparse.Namespace) -> dict[str, list[float]]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    pairs = [(args.pool_features, args.ext_features), *[tuple(map(Path, p)) for p in args.pair or []]]
    logits, labels, sources, paths = [], None, None, None
    for pool_file, ext_file in pairs:
        x, y, _, _ = _features(pool_file, args.pool, args.summary, _blocks(args.blocks))
        xe, ye, se, order = _features(ext_file, args.ext, args.summary, _blocks(args.blocks))
        if paths is not None and not np.array_equal(order, paths):
            raise SystemExit(f"{ext_file}: not the images of {pairs[0][1]} in the same order")
        paths, labels, sources = order, ye, se
        weight = np.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean()))  # classes drawn equally, as the recipes
        probe = LogisticRegression(C=args.c, max_iter=3000).fit(x, y, sample_weight=weight)
        logits.append((f"{pool_file.stem}", probe.decision_function(xe)))
    if args.late and len(logits) > 1:
        logits.append(("late (sum)", sum(s for _, s in logits)))
    folds = [s for s in sorted(set(sources)) if len(set(labels[sources == s])) == 2]
    print("probe".ljust(24) + "".join(f"{f[:12]:>13}" for f in folds) + "         mean")
    table = {}
    for name, s in logits:
        table[name] = [roc_auc_score(labels[sources == f], s[sources == f]) for f in folds]
        print(name.ljust(24) + "".join(f"{a:13.3f}" for a in table[name]) + f"{np.mean(table[name]):13.3f}")
    return table


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("extract", help="per-block CLS and patch-token means of a built pool")
    ex.add_argument("pool", type=Path, help="a folder from `aigi datasets build-pool` (its pool.csv)")
    ex.add_argument("--view", default="crop")
    ex.add_argument("--backbone", default="embedded", help="a tower spec (the photo recipes: embedded)")
    ex.add_argument("--copy", action="store_true", help="the first training copy, as the photo recipes")
    ex.add_argument("--batch-size", type=int, default=32)
    ex.add_argument("-o", "--out", type=Path, required=True)
    sc = sub.add_parser("score", help="probe trained on the pool's features, AUC per external source")
    sc.add_argument("pool", type=Path)
    sc.add_argument("ext", type=Path)
    sc.add_argument("pool_features", type=Path)
    sc.add_argument("ext_features", type=Path)
    sc.add_argument("--pair", nargs=2, action="append", metavar=("POOL_NPZ", "EXT_NPZ"),
                    help="another view's features: one more probe")
    sc.add_argument("--late", action="store_true", help="also the sum of the probes' logits")
    sc.add_argument("--summary", choices=("cls", "mean", "both"), default="cls")
    sc.add_argument("--blocks", default="6-11", help="first-last block, 0-based")
    sc.add_argument("-c", type=float, default=1.0, help="inverse L2 strength")
    return ap


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    (_extract if args.command == "extract" else _score)(args)


if __name__ == "__main__":
    main()
