"""Detection metrics, defined once so every method is scored the same way.

Conventions: label 1 = fake (positive), scores are P(fake). Accuracy "at t"
calls an image fake when ``p >= t``. A subset with one class has no AP / AUC:
those are reported as ``None`` (JSON null), never as a crash or a made-up 0.5.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score


def _arrays(labels: Sequence[int], probs: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels, dtype=np.int64)
    p = np.asarray(probs, dtype=np.float64)
    if y.shape != p.shape:
        raise ValueError(f"{len(y)} labels but {len(p)} scores")
    return y, p


def accuracies(labels: Sequence[int], probs: Sequence[float], threshold: float) -> dict[str, float | None]:
    """Accuracy on reals, on fakes, their mean, and over all images."""
    y, p = _arrays(labels, probs)
    pred = p >= threshold
    real, fake = y == 0, y == 1
    acc_real = float((~pred[real]).mean()) if real.any() else None
    acc_fake = float(pred[fake].mean()) if fake.any() else None
    present = [a for a in (acc_real, acc_fake) if a is not None]
    return {
        "acc_real": acc_real,
        "acc_fake": acc_fake,
        "acc_mean": float(np.mean(present)) if present else None,
        "acc": float((pred == (y == 1)).mean()) if len(y) else None,
    }


def tune_threshold(labels: Sequence[int], probs: Sequence[float]) -> float:
    """Threshold that maximises the mean of real and fake accuracy.

    Meant for a validation split: the evaluation code never calls it with test
    labels. Candidates are midpoints between consecutive distinct scores (plus
    just outside both ends); ties go to the candidate closest to 0.5.
    """
    y, p = _arrays(labels, probs)
    if not ((y == 0).any() and (y == 1).any()):
        return 0.5
    uniq = np.unique(p)
    cands = np.concatenate([[uniq[0] - 1e-6], (uniq[:-1] + uniq[1:]) / 2, [uniq[-1] + 1e-6]])
    real_sorted, fake_sorted = np.sort(p[y == 0]), np.sort(p[y == 1])
    n_real, n_fake = len(real_sorted), len(fake_sorted)
    right_real = np.searchsorted(real_sorted, cands, side="left")  # reals below t
    right_fake = n_fake - np.searchsorted(fake_sorted, cands, side="left")  # fakes at or above t
    # balanced accuracy × n_real × n_fake, in integers: exact ties, no float noise
    bal = right_real.astype(np.int64) * n_fake + right_fake.astype(np.int64) * n_real
    best = np.flatnonzero(bal == bal.max())
    # not clipped to [0, 1]: "call everything real" may need a threshold just above 1
    return float(cands[best[np.argmin(np.abs(cands[best] - 0.5))]])


def score(labels: Sequence[int], probs: Sequence[float], tuned_threshold: float | None = None) -> dict[str, Any]:
    """Every metric for one set of images."""
    y, p = _arrays(labels, probs)
    both = bool((y == 0).any() and (y == 1).any())
    out: dict[str, Any] = {
        "n": int(len(y)),
        "n_real": int((y == 0).sum()),
        "n_fake": int((y == 1).sum()),
        "ap": float(average_precision_score(y, p)) if both else None,
        "auc": float(roc_auc_score(y, p)) if both else None,
    }
    out.update({f"{k}@0.5": v for k, v in accuracies(y, p, 0.5).items()})
    if tuned_threshold is not None:
        out["threshold"] = float(tuned_threshold)
        out.update({f"{k}@val": v for k, v in accuracies(y, p, tuned_threshold).items()})
    return out


def mean_over(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Average of per-subset metrics (the field's mAP / mAcc), skipping undefined ones."""
    keys = [k for k in rows[0] if k not in ("n", "n_real", "n_fake", "threshold")] if rows else []
    out: dict[str, Any] = {"n": sum(r["n"] for r in rows), "n_real": sum(r["n_real"] for r in rows),
                           "n_fake": sum(r["n_fake"] for r in rows)}
    for k in keys:
        vals = [r[k] for r in rows if r.get(k) is not None and not (isinstance(r[k], float) and math.isnan(r[k]))]
        out[k] = float(np.mean(vals)) if vals else None
    return out
