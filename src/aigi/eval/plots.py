"""Plots written next to results (matplotlib, no display needed)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def ltd_report_plot(rows: Sequence[dict[str, Any]], selection_history: Sequence[Sequence[float]],
                    window: Sequence[int], first_start: int, out: Path) -> Path:
    """Left: mean L2 step between adjacent blocks' CLS features, real vs fake, with
    the selected window shaded. Right: the window-start distribution over epochs."""
    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    xs = list(range(len(rows)))
    ax1.plot(xs, [r["l2_real"] for r in rows], "o-", label="real", color="#2a7ab9")
    ax1.plot(xs, [r["l2_fake"] for r in rows], "s-", label="fake", color="#d1495b")
    ax1.axvspan(window[0] - 0.5, window[-1] - 0.5, color="#f4d35e", alpha=0.35, label="selected window")
    ax1.set_xticks(xs, [r["transition"] for r in rows], rotation=60, fontsize=7)
    ax1.set_ylabel("mean ||f(k+1) − f(k)||")
    ax1.set_title("Layer transitions of the frozen backbone")
    ax1.legend(fontsize=8)
    if selection_history:
        import numpy as np

        hist = np.asarray(selection_history, dtype=float)
        im = ax2.imshow(hist.T, aspect="auto", origin="lower", cmap="viridis", vmin=0, vmax=1,
                        extent=(0.5, hist.shape[0] + 0.5, first_start - 0.5, first_start + hist.shape[1] - 0.5))
        fig.colorbar(im, ax=ax2, label="P(window start)")
        ax2.set_xlabel("epoch")
        ax2.set_ylabel("window start block")
        ax2.set_title("Dynamic layer selection during training")
    else:
        ax2.text(0.5, 0.5, "fixed window: no selection", ha="center", va="center")
        ax2.set_axis_off()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def routing_plot(rows: Sequence[dict[str, Any]], out: Path) -> Path:
    """Per adapted block, the share of tokens each routed expert receives, real vs fake."""
    plt = _pyplot()
    blocks = sorted({r["block"] for r in rows})
    fig, axes = plt.subplots(1, len(blocks), figsize=(3.2 * len(blocks), 3.2), sharey=True, squeeze=False)
    for ax, block in zip(axes[0], blocks):
        sub = [r for r in rows if r["block"] == block]
        xs = range(len(sub))
        ax.bar([x - 0.2 for x in xs], [r["share_real"] for r in sub], 0.4, label="real", color="#2a7ab9")
        ax.bar([x + 0.2 for x in xs], [r["share_fake"] for r in sub], 0.4, label="fake", color="#d1495b")
        ax.set_xticks(list(xs), [f"E{r['expert']} (r={r['rank']})" for r in sub], fontsize=8)
        ax.set_title(f"block {block}")
    axes[0][0].set_ylabel("share of tokens")
    axes[0][-1].legend(fontsize=8)
    fig.suptitle("Routing of tokens to experts")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


_COLOURS = ["#2a7ab9", "#d1495b", "#edae49", "#00798c", "#66a182", "#8d6a9f", "#30343f"]


def roc_plot(curves: dict[str, tuple[Sequence[int], Sequence[float]]], out: Path) -> Path:
    """ROC curve per detector (all images pooled)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    plt = _pyplot()
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
    plt = _pyplot()
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

    plt = _pyplot()
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
    plt = _pyplot()
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
