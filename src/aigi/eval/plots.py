"""Plots written next to results (matplotlib, no display needed)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


_COLOURS = ["#2a7ab9", "#d1495b", "#edae49", "#00798c", "#66a182", "#8d6a9f", "#30343f"]


def roc_plot(curves: dict[str, tuple[Sequence[int], Sequence[float]]], out: Path) -> Path:
    """ROC curve per detector (all images pooled)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    for i, (name, (y, p)) in enumerate(curves.items()):
        if len(set(y)) < 2:
            continue
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, color=_COLOURS[i % len(_COLOURS)], label=f"{name} (AUC {roc_auc_score(y, p):.3f})")
    ax.plot([0, 1], [0, 1], ":", color="grey", lw=1)
    ax.set_xlabel("false-positive rate (reals flagged)")
    ax.set_ylabel("true-positive rate (fakes caught)")
    ax.set_title("ROC")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def subset_bars(table: dict[str, dict[str, dict[str, Any]]], metric: str, out: Path) -> Path:
    """``metric`` per subset, one bar per detector."""
    plt = pyplot()
    subsets = sorted({s for rows in table.values() for s in rows if s not in ("all", "mean")}) or ["all"]
    fig, ax = plt.subplots(figsize=(max(4.6, 1.1 * len(subsets) * max(1, len(table)) * 0.6 + 2), 3.6))
    width = 0.8 / max(1, len(table))
    for i, (name, rows) in enumerate(table.items()):
        vals = [rows.get(s, {}).get(metric) or 0.0 for s in subsets]
        ax.bar([x + i * width for x in range(len(subsets))], vals, width, label=name, color=_COLOURS[i % len(_COLOURS)])
    ax.set_xticks([x + width * (len(table) - 1) / 2 for x in range(len(subsets))], subsets, rotation=30, fontsize=8)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} per subset")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def score_histograms(scores: dict[str, tuple[Sequence[int], Sequence[float]]], out: Path) -> Path:
    """Distribution of P(fake) for real and fake images, one panel per detector."""
    import numpy as np

    plt = pyplot()
    fig, axes = plt.subplots(1, len(scores), figsize=(3.6 * len(scores), 3.0), squeeze=False)
    bins = np.linspace(0, 1, 26)
    for ax, (name, (y, p)) in zip(axes[0], scores.items()):
        y, p = np.asarray(y), np.asarray(p)
        ax.hist(p[y == 0], bins=bins, alpha=0.7, label="real", color=_COLOURS[0])
        ax.hist(p[y == 1], bins=bins, alpha=0.7, label="fake", color=_COLOURS[1])
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("P(fake)")
    axes[0][0].set_ylabel("images")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def robustness_plot(sweeps: dict[str, Sequence[dict[str, Any]]], metric: str, out: Path) -> Path:
    """``metric`` (pooled over subsets) against severity, one panel per operation."""
    plt = pyplot()
    ops = sorted({r["op"] for rows in sweeps.values() for r in rows})
    fig, axes = plt.subplots(1, len(ops), figsize=(3.6 * len(ops), 3.2), squeeze=False, sharey=True)
    for ax, op in zip(axes[0], ops):
        for i, (name, rows) in enumerate(sweeps.items()):
            pts = sorted((r["severity"], r.get(metric)) for r in rows if r["op"] == op and r["subset"] == "all")
            ax.plot([s for s, _ in pts], [v if v is not None else float("nan") for _, v in pts], "o-",
                    color=_COLOURS[i % len(_COLOURS)], label=name)
        ax.set_title(op)
        ax.set_xlabel("severity")
    axes[0][0].set_ylabel(metric)
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
