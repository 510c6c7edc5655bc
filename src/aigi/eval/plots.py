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
