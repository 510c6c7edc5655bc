"""Operating points: thresholds that flag at most a chosen share of real images.

A detector's own threshold balances the real and fake accuracy on validation. A
trust-and-safety team usually works the other way round: "flag at most 1 % of
genuine photos", and catch what it can within that. Each trained detector stores,
in its metadata, the threshold that meets each false-positive budget of
:data:`BUDGETS` on its validation reals, with the share of validation fakes it
still catches. A budget finer than one real image of the split is not stored:
it would be a guess.

The points hold for images like the validation reals. On another kind of real
photo the share flagged differs (the model card measures it), and
``aigi operating-points DETECTOR --data MY_REALS`` sets them on one's own reals.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ..errors import InputError

BUDGETS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2)
KEY = "operating_points"  # the detector metadata entry


def threshold_at_fpr(real_probs: Sequence[float], max_fpr: float) -> float:
    """The lowest threshold that flags at most ``max_fpr`` of these reals (fake when ``p >= t``).

    Meant for the reals of a validation split. The threshold falls midway between the
    highest real score it lets pass and the next higher one (just above the top score when
    none may be flagged), as :func:`aigi.eval.metrics.tune_threshold` places its candidates; reals tied on one
    score are flagged or passed together, so the share flagged may fall below the budget."""
    p = np.sort(np.asarray(real_probs, dtype=np.float64))[::-1]  # highest first
    if not len(p):
        raise ValueError("no real images to set a false-positive budget on")
    if not 0.0 <= max_fpr < 1.0:
        raise ValueError(f"a false-positive budget is a share in [0, 1), got {max_fpr}")
    allowed = int(math.floor(max_fpr * len(p) + 1e-9))  # reals that may be flagged
    passed = p[allowed]  # the highest real that must pass, and every real tied with it
    above = p[p > passed]
    return float((passed + above.min()) / 2 if len(above) else passed + 1e-6)


def operating_points(labels: Sequence[int], probs: Sequence[float], source: str,
                     budgets: Sequence[float] = BUDGETS) -> dict[str, Any]:
    """The stored table: for each budget the threshold, and the share of reals it flags and of
    fakes it catches on these images (None without fakes: a reals-only set). Too few reals give
    no points (training stores that; :func:`require_points` refuses it where a user asked)."""
    reals = [p for y, p in zip(labels, probs) if y == 0]
    fakes = [p for y, p in zip(labels, probs) if y == 1]
    points = []
    for budget in budgets:
        if budget * len(reals) < 1:  # finer than one image of this set
            continue
        t = threshold_at_fpr(reals, budget)
        points.append({"max_fpr": budget, "threshold": t, "fpr": sum(p >= t for p in reals) / len(reals),
                       "tpr": sum(p >= t for p in fakes) / len(fakes) if fakes else None})
    return {"source": source, "n_real": len(reals), "n_fake": len(fakes), "points": points}


def record(metadata: dict[str, Any], labels: Sequence[int], probs: Sequence[float], source: str) -> dict[str, Any]:
    """Set a detector's points (its ``metadata``) on these scores, wherever its threshold is set."""
    metadata[KEY] = operating_points(labels, probs, source)
    return metadata[KEY]


def require_points(table: dict[str, Any], budgets: Sequence[float] = BUDGETS) -> dict[str, Any]:
    """``table``, or a one-line error when its images held too few reals for any budget."""
    if not table["points"]:
        raise InputError(f"{table['source']}: {table['n_real']} real images are too few for any budget "
                         f"(a {max(budgets):.0%} one needs {round(1 / max(budgets))})")
    return table


def parse_budget(text: str | float) -> float:
    """``0.01``, ``1%`` → 0.01; anything else is a one-line error."""
    raw = str(text).strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise InputError(f"false-positive budget '{text}': give a share (0.01) or a percentage (1%)") from None
    if not 0.0 < value < 1.0:
        raise InputError(f"false-positive budget '{text}' must lie between 0 and 1 (or 0% and 100%)")
    return value


def threshold_for(config: dict[str, Any], where: str, threshold: float | None = None,
                  max_fpr: float | str | None = None) -> float:
    """The threshold a scoring run uses, from a detector's saved config: its own (neither option),
    a given one, or the stored point of the largest budget that does not exceed ``max_fpr`` (never
    a looser one)."""
    if threshold is not None and max_fpr is not None:
        raise InputError("give a threshold or a false-positive budget, not both")
    if threshold is not None:
        return float(threshold)
    if max_fpr is None:
        return float(config["threshold"])
    budget = parse_budget(max_fpr)
    table = (config.get("metadata") or {}).get(KEY)
    if not table or not table.get("points"):
        raise InputError(f"{where}: no operating points stored; set them on genuine photos (or labelled data) "
                         f"with `aigi operating-points {where} --reals FOLDER -o OUT`")
    fitting = [pt for pt in table["points"] if pt["max_fpr"] <= budget + 1e-12]
    if not fitting:
        finest = min(pt["max_fpr"] for pt in table["points"])
        raise InputError(f"{where}: the finest stored budget is {finest:.1%} ({table['n_real']} reals in "
                         f"{table['source']}); {budget:.2%} would need more real images")
    return float(max(fitting, key=lambda pt: pt["max_fpr"])["threshold"])


def describe(table: dict[str, Any] | None) -> list[str]:
    """A table of points as lines for the terminal."""
    if not table:
        return ["no operating points stored"]
    lines = [f"set on {table['source']}: {table['n_real']} reals, {table['n_fake']} fakes",
             "max_fpr   threshold   reals flagged   fakes caught"]
    for pt in table["points"]:
        tpr = "-" if pt["tpr"] is None else f"{pt['tpr']:.1%}"
        lines.append(f"{pt['max_fpr']:>7.1%}   {pt['threshold']:>9.4f}   {pt['fpr']:>13.1%}   {tpr:>12}")
    return lines
