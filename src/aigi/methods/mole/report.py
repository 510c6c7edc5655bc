"""CLIPMoLE's run report: which routed expert each adapted block sends real and
fake tokens to (a table and a bar plot per block)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from ...eval.plots import pyplot
from .model import MoLEDetector


def write_report(detector: MoLEDetector, folder: Path, features: torch.Tensor, labels: torch.Tensor,
                 history: list[dict[str, Any]]) -> list[Path]:
    if not detector.expert_ranks:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    rows = detector.routing_shares(features, labels)
    table = folder / "routing.csv"
    keys = list(rows[0])
    table.write_text(",".join(keys) + "\n" + "".join(
        ",".join(f"{r[k]:.6f}" if isinstance(r[k], float) else str(r[k]) for k in keys) + "\n" for r in rows))
    return [table, routing_plot(rows, folder / "routing.png")]


def routing_plot(rows: Sequence[dict[str, Any]], out: Path) -> Path:
    """Per adapted block, the share of tokens each routed expert receives, real vs fake."""
    plt = pyplot()
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
