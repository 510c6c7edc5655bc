"""The soft vote of recipes already run through `aigi loso`, fold by fold, without training again:
each image's P(fake) averaged over the runs given (optionally weighted), then the AUC per fold,
the mean and the worst fold, as `aigi loso` reports them.

A bagged ensemble recipe (`seeds: K`) trains exactly the probes that the single recipes train at
those seeds, so its LOSO at another seed offset is the vote of single runs already made:

    python scripts/loso_vote.py runs/loso-seed1/univfd-layers runs/loso-seed2/univfd-layers \
        runs/loso-seed3/univfd-layers runs/loso-seed1/univfd-layers-thumbs ... [--json out.json]

Each argument is one recipe's folder in an `aigi loso` output (`<fold>/eval/predictions.csv`), or
one detector's `predictions.csv` from `aigi eval` on a set of sources (each source with both classes
is a "fold"), either optionally with `:COLUMN` to read one expert's score from an ensemble's files:

    python scripts/loso_vote.py runs/ext/photo-b16/predictions.csv:p_crops-1 runs/ext/ltd/predictions.csv
    python scripts/loso_vote.py runs/loso-vote/photo-b16:p_crops-1 runs/loso-vote/photo-b16:p_crops-2 ...
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from sklearn.metrics import roc_auc_score


def _rows(path: str | Path, column: str) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if rows and column not in rows[0]:
        raise SystemExit(f"{path}: no column '{column}' (has: {', '.join(rows[0])})")
    return rows


def _predictions(path: Path, column: str = "prob_fake") -> dict[str, tuple[int, float]]:
    return {r["path"]: (int(r["label"]), float(r[column])) for r in _rows(path, column)}


def fold_tables(run: str | Path) -> dict[str, dict[str, tuple[int, float]]]:
    """fold → image → (label, P(fake)): a `aigi loso` recipe folder (`DIR[:COLUMN]`), or an `aigi eval`
    predictions file (`FILE.csv[:COLUMN]`) whose sources with both classes are the folds."""
    text = str(run)
    target, _, column = text.rpartition(":") if ":" in Path(text).name else (text, "", "")
    column = column or "prob_fake"
    if not target.endswith(".csv"):
        return {p.parent.parent.name: _predictions(p, column) for p in Path(target).glob("*/eval/predictions.csv")}
    folds: dict[str, dict[str, tuple[int, float]]] = {}
    for r in _rows(target, column):
        folds.setdefault(r["subset"], {})[r["path"]] = (int(r["label"]), float(r[column]))
    return {f: t for f, t in folds.items() if len({label for label, _ in t.values()}) == 2}


def vote(runs: list[Path], weights: list[float] | None = None) -> dict:
    """Per fold the vote's AUC, with the mean and the worst fold; the folds every run has."""
    weights = weights or [1.0] * len(runs)
    if len(weights) != len(runs):
        raise SystemExit(f"{len(weights)} weights for {len(runs)} runs")
    per_run = [fold_tables(r) for r in runs]
    folds = sorted(set.intersection(*(set(t) for t in per_run)))
    if not folds:
        raise SystemExit("no fold is in every run (each run: <fold>/eval/predictions.csv, or FILE.csv[:COLUMN])")
    rows = {}
    for fold in folds:
        tables = [t[fold] for t in per_run]
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
    ap.add_argument("runs", nargs="+", help="recipe folders of `aigi loso` outputs, or `aigi eval` "
                                            "predictions files (FILE.csv[:COLUMN])")
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
