"""The soft vote of recipes already run through `aigi loso`, fold by fold, without training again:
each image's P(fake) averaged over the runs given (optionally weighted), then the AUC per fold,
the mean and the worst fold, as `aigi loso` reports them.

A bagged ensemble recipe (`seeds: K`) trains exactly the probes that the single recipes train at
those seeds, so its LOSO at another seed offset is the vote of single runs already made:

    python scripts/loso_vote.py runs/loso-seed1/univfd-layers runs/loso-seed2/univfd-layers \
        runs/loso-seed3/univfd-layers runs/loso-seed1/univfd-layers-thumbs ... [--json out.json]

Each argument is one recipe's folder in an `aigi loso` output (`<fold>/eval/predictions.csv`).
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from sklearn.metrics import roc_auc_score


def _predictions(path: Path) -> dict[str, tuple[int, float]]:
    with open(path, newline="") as fh:
        return {r["path"]: (int(r["label"]), float(r["prob_fake"])) for r in csv.DictReader(fh)}


def vote(runs: list[Path], weights: list[float] | None = None) -> dict:
    """Per fold the vote's AUC, with the mean and the worst fold; the folds every run has."""
    weights = weights or [1.0] * len(runs)
    if len(weights) != len(runs):
        raise SystemExit(f"{len(weights)} weights for {len(runs)} runs")
    folds = sorted(set.intersection(*({p.parent.parent.name for p in Path(r).glob("*/eval/predictions.csv")}
                                      for r in runs)))
    if not folds:
        raise SystemExit("no fold is in every run (each run: <fold>/eval/predictions.csv)")
    rows = {}
    for fold in folds:
        tables = [_predictions(Path(r) / fold / "eval" / "predictions.csv") for r in runs]
        if any(set(t) != set(tables[0]) for t in tables):
            raise SystemExit(f"fold {fold}: the runs were tested on different images")
        paths = sorted(tables[0])
        labels = [tables[0][p][0] for p in paths]
        probs = [sum(w * t[p][1] for w, t in zip(weights, tables)) / sum(weights) for p in paths]
        rows[fold] = {"auc": float(roc_auc_score(labels, probs)), "real": labels.count(0), "fake": labels.count(1)}
    aucs = [r["auc"] for r in rows.values()]
    return {"runs": [str(r) for r in runs], "weights": weights, "folds": rows,
            "mean_auc": sum(aucs) / len(aucs), "worst_auc": min(aucs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="recipe folders of `aigi loso` outputs")
    ap.add_argument("--weights", nargs="+", type=float, help="one per run (default: equal)")
    ap.add_argument("--json", type=Path, help="also write the table here")
    args = ap.parse_args()
    table = vote(args.runs, args.weights)
    for fold, row in table["folds"].items():
        print(f"{fold:<16} {row['real']:>5} {row['fake']:>5} {row['auc']:.4f}")
    worst = min(table["folds"], key=lambda f: table["folds"][f]["auc"])
    print(f"mean {table['mean_auc']:.4f}   worst {table['worst_auc']:.4f} ({worst})")
    if args.json:
        args.json.write_text(json.dumps(table, indent=2) + "\n")


if __name__ == "__main__":
    main()
