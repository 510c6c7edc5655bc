"""Markdown tables from an `aigi loso` output (loso.json): AUC per held-out source for every
recipe beside the metadata shortcut, and each recipe's AUC per generator. Used for docs/data.md
and docs/model-card.md, so that the numbers there are the command's own.

    python scripts/loso_tables.py runs/loso-photo/loso.json [--generators photo-b16] [--ci photo-b16] \
        [--own-reals photo-b16] [--failures photo-b16 --pool POOL]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def folds_table(table: dict, ci: str | None = None) -> str:
    """AUC per held-out source and recipe; with ``ci``, that recipe's 95 % bootstrap interval
    beside it, so that a gap between recipes can be read against the folds' own noise."""
    shortcut = table.get("shortcut", {}).get("folds", {})
    recipes = [k for k in table if k != "shortcut"]
    sources = list(next(iter(table[r]["folds"] for r in recipes)))
    names = [n for r in recipes for n in ([r, f"{r} 95 % CI"] if r == ci else [r])]
    head = "| held-out source | real | fake | " + " | ".join(names) + " | shortcut |"
    lines = [head, "|---" * (len(names) + 4) + "|"]
    for src in sources:
        first = table[recipes[0]]["folds"][src]
        cells = []
        for r in recipes:
            fold = table[r]["folds"][src]
            cells.append(f"{fold['auc']:.3f}")
            if r == ci:
                lo_hi = fold.get("auc_ci")
                cells.append(f"{lo_hi[0]:.3f}–{lo_hi[1]:.3f}" if lo_hi else "-")
        base = shortcut.get(src, {}).get("auc")
        tail = f" | {base:.3f} |" if base is not None else " | - |"
        lines.append(f"| {src} | {first['real']} | {first['fake']} | " + " | ".join(cells) + tail)
    for label, key in (("mean", "mean_auc"), ("worst", "worst_auc")):
        cells = [c for r in recipes for c in ([f"**{table[r][key]:.3f}**"] + ([""] if r == ci else []))]
        base = table.get("shortcut", {}).get(key)
        lines.append(f"| {label} | | | " + " | ".join(cells) + (f" | {base:.3f} |" if base is not None else " | - |"))
    return "\n".join(lines)


def generators_table(table: dict, recipe: str) -> str:
    lines = ["| held-out source | generator | fakes | AUC |", "|---|---|---|---|"]
    for src, fold in table[recipe]["folds"].items():
        for gen, g in fold.get("generators", {}).items():
            lines.append(f"| {src} | {gen} | {g['fake']} | {g['auc']:.3f} |")
    return "\n".join(lines)


def fold_predictions(loso: Path, recipe: str) -> dict[str, list[dict[str, str]]]:
    """fold → its scored test rows (`<recipe>/<fold>/eval/predictions.csv`; unreadable images left out)."""
    import csv

    folds = {}
    for fold in sorted((loso.parent / recipe).iterdir()):
        preds = fold / "eval" / "predictions.csv"
        if preds.is_file():
            with open(preds, newline="") as fh:
                folds[fold.name] = [r for r in csv.DictReader(fh) if r["prob_fake"]]
    return folds


def own_reals_table(loso: Path, recipe: str) -> str:
    """AUC per held-out source on its own reals against its fakes, for the sources that have both.
    A fold's test reals also hold a share of the real-only sources; this leaves them out, so a
    paired source reads as it does in `aigi eval` on an external set (one AUC per source)."""
    from statistics import mean

    from sklearn.metrics import roc_auc_score

    lines = ["| held-out source | own reals | fakes | AUC on its own reals | AUC on the fold |", "|---|---|---|---|---|"]
    own = []
    for fold, rows in fold_predictions(loso, recipe).items():
        mine = [r for r in rows if r["subset"] == fold]
        if len({r["label"] for r in mine}) < 2:
            continue
        auc = roc_auc_score([int(r["label"]) for r in mine], [float(r["prob_fake"]) for r in mine])
        whole = roc_auc_score([int(r["label"]) for r in rows], [float(r["prob_fake"]) for r in rows])
        own.append(auc)
        fakes = sum(r["label"] == "1" for r in mine)
        lines.append(f"| {fold} | {len(mine) - fakes} | {fakes} | {auc:.3f} | {whole:.3f} |")
    if own:
        lines.append(f"| mean | | | **{mean(own):.3f}** | |")
    return "\n".join(lines)


def failures_table(loso: Path, recipe: str, pool: Path, n: int) -> str:
    """The n most confident mistakes of ``recipe`` over all folds: reals scored fake, fakes scored
    real, each back to its repository path (pool.csv)."""
    import csv

    origin = {}
    with open(pool / "pool.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            origin[str((pool / r["path"]).resolve())] = (r["source"], r.get("repo") or "", r["repo_path"])
    rows = [(fold, int(r["label"]), float(r["prob_fake"]), str(Path(r["path"]).resolve()))
            for fold, scored in fold_predictions(loso, recipe).items() for r in scored]
    lines = ["| fold | class | P(fake) | source | repository path |", "|---|---|---|---|---|"]
    worst_real = sorted((r for r in rows if r[1] == 0), key=lambda r: -r[2])[:n]
    worst_fake = sorted((r for r in rows if r[1] == 1), key=lambda r: r[2])[:n]
    for fold, label, prob, path in worst_real + worst_fake:
        source, repo, repo_path = origin.get(path, ("?", "", path))
        lines.append(f"| {fold} | {'real' if label == 0 else 'fake'} | {prob:.3f} | {source} | {repo} `{repo_path}` |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("loso", type=Path)
    ap.add_argument("--generators", help="also the per-generator table of this recipe")
    ap.add_argument("--failures", help="also the most confident mistakes of this recipe (needs --pool)")
    ap.add_argument("--pool", type=Path, help="the pool the LOSO ran on (its pool.csv)")
    ap.add_argument("--ci", help="also the 95 %% bootstrap interval of this recipe's AUC per fold")
    ap.add_argument("--own-reals", help="also this recipe's AUC per paired source on its own reals alone")
    ap.add_argument("-n", type=int, default=5)
    args = ap.parse_args()
    table = json.loads(args.loso.read_text())
    print(folds_table(table, args.ci))
    if args.generators:
        print()
        print(generators_table(table, args.generators))
    if args.own_reals:
        print()
        print(own_reals_table(args.loso, args.own_reals))
    if args.failures:
        print()
        print(failures_table(args.loso, args.failures, args.pool, args.n))


if __name__ == "__main__":
    main()
