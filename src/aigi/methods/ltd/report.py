"""LTD's run report: the selected window, the selection distribution over training,
and per-block transition magnitudes for real vs fake (the paper's Fig. 1 view)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ...eval.plots import pyplot
from .model import LTDDetector


def write_report(detector: LTDDetector, folder: Path, features: torch.Tensor, labels: torch.Tensor,
                 history: list[dict[str, Any]]) -> list[Path]:
    """The window, the selection distribution over training, and per-block
    transition magnitudes for real vs fake (the paper's Fig. 1 view)."""
    folder.mkdir(parents=True, exist_ok=True)
    steps = torch.linalg.vector_norm(features[:, 1:] - features[:, :-1], dim=-1)  # [N, L-1]
    cos = nn.functional.cosine_similarity(features[:, 1:], features[:, :-1], dim=-1)
    rows = []
    for k in range(detector.num_layers - 1):
        row = {"transition": f"{k}->{k + 1}"}
        for label, name in ((0, "real"), (1, "fake")):
            mask = labels == label
            row[f"l2_{name}"] = float(steps[mask, k].mean()) if mask.any() else math.nan
            row[f"cos_{name}"] = float(cos[mask, k].mean()) if mask.any() else math.nan
        row["in_window"] = detector.selected_start() <= k < detector.selected_start() + detector.n - 1
        rows.append(row)
    table = folder / "ltd_transitions.csv"
    keys = list(rows[0])
    table.write_text(",".join(keys) + "\n" + "".join(
        ",".join(f"{r[k]:.6f}" if isinstance(r[k], float) else str(r[k]) for k in keys) + "\n" for r in rows))
    selection = folder / "ltd_selection.csv"
    starts = [f"start_{detector.first_block + c}" for c in range(detector.candidates)]
    selection.write_text("epoch,tau," + ",".join(starts) + "\n" + "".join(
        f"{h['epoch']},{h.get('tau', '')}," + ",".join(str(p) for p in h.get("selection", [])) + "\n"
        for h in history if "selection" in h))
    plot = folder / "ltd_report.png"
    transitions_plot(rows, [h.get("selection", []) for h in history if "selection" in h],
                     detector.selected_layers(), detector.first_block, plot)
    end = detector.selected_layers()[-1]
    skipped = detector.num_layers - 1 - end
    (folder / "ltd_window.txt").write_text(
        f"selected window: blocks {detector.selected_layers()[0]}..{end} (0-based, of {detector.num_layers})\n"
        f"early exit: inference stops after block {end}, skipping {skipped} of {detector.num_layers} blocks "
        f"(~{skipped / detector.num_layers:.0%} of the backbone's block compute)\n")
    return [table, selection, plot]


def transitions_plot(rows: Sequence[dict[str, Any]], selection_history: Sequence[Sequence[float]],
                     window: Sequence[int], first_start: int, out: Path) -> Path:
    """Left: mean L2 step between adjacent blocks' CLS features, real vs fake, with
    the selected window shaded. Right: the window-start distribution over epochs."""
    plt = pyplot()
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
