"""Detection metrics, defined once so every method is scored the same way.

Conventions: label 1 = fake (positive), scores are P(fake). Accuracy "at t"
calls an image fake when ``p >= t``. A subset with one class has no AP / AUC:
those are reported as ``None`` (JSON null), never as a crash or a made-up 0.5.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve


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


def equal_error_rate(labels: Sequence[int], probs: Sequence[float]) -> float | None:
    """The error rate where the false-positive and false-negative rates meet
    (linear interpolation between ROC points); None with one class."""
    y, p = _arrays(labels, probs)
    if not ((y == 0).any() and (y == 1).any()):
        return None
    fpr, tpr, _ = roc_curve(y, p)
    fnr = 1.0 - tpr
    diff = fpr - fnr  # rises from negative to positive along the curve
    i = int(np.flatnonzero(diff >= 0)[0])
    if i == 0 or diff[i] == 0:
        return float(fpr[i])
    w = -diff[i - 1] / (diff[i] - diff[i - 1])
    return float(fpr[i - 1] + w * (fpr[i] - fpr[i - 1]))


def tpr_at_fpr(labels: Sequence[int], probs: Sequence[float], max_fpr: float) -> float | None:
    """Share of fakes caught when at most ``max_fpr`` of the reals are flagged
    (the best ROC operating point within the budget); None with one class."""
    y, p = _arrays(labels, probs)
    if not ((y == 0).any() and (y == 1).any()):
        return None
    fpr, tpr, _ = roc_curve(y, p)
    return float(tpr[fpr <= max_fpr + 1e-12].max())


def expected_calibration_error(labels: Sequence[int], probs: Sequence[float], bins: int = 15) -> float | None:
    """Mean |P(fake) − observed fake rate| over equal-width probability bins,
    weighted by bin size. Defined for one class too."""
    y, p = _arrays(labels, probs)
    if not len(y):
        return None
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = idx == b
        if mask.any():
            total += mask.sum() / len(y) * abs(p[mask].mean() - y[mask].mean())
    return float(total)


def _resample_indices(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A bootstrap sample that keeps the real/fake counts (stratified)."""
    parts = [rng.choice(np.flatnonzero(y == c), size=int((y == c).sum()), replace=True) for c in (0, 1) if (y == c).any()]
    return np.concatenate(parts)


def _draw_metrics(ys: np.ndarray, ps: np.ndarray, threshold: float | None) -> dict[str, float]:
    out: dict[str, float] = {}
    if (ys == 0).any() and (ys == 1).any():
        out["ap"] = average_precision_score(ys, ps)
        out["auc"] = roc_auc_score(ys, ps)
    out["acc_mean@0.5"] = accuracies(ys, ps, 0.5)["acc_mean"]
    if threshold is not None:
        out["acc_mean@val"] = accuracies(ys, ps, threshold)["acc_mean"]
    return out


def _percentiles(draws: dict[str, list[float]], keys: Sequence[str], level: float) -> dict[str, list[float] | None]:
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    return {f"{k}_ci": ([float(np.percentile(draws[k], lo)), float(np.percentile(draws[k], hi))] if draws.get(k) else None)
            for k in keys}


def bootstrap_ci(labels: Sequence[int], probs: Sequence[float], threshold: float | None, n: int = 1000,
                 seed: int = 0, level: float = 0.95) -> dict[str, list[float] | None]:
    """Percentile confidence intervals of AP, AUC and mean accuracy (at 0.5 and at
    ``threshold``) from ``n`` stratified bootstrap resamples."""
    return bootstrap_mean_ci([(labels, probs)], threshold, n, seed, level)


def bootstrap_mean_ci(groups: Sequence[tuple[Sequence[int], Sequence[float]]], threshold: float | None,
                      n: int = 1000, seed: int = 0, level: float = 0.95) -> dict[str, list[float] | None]:
    """Intervals of the *average over subsets* (mAP, mean accuracy): each draw
    resamples every subset on its own and averages their metrics."""
    arrays = [_arrays(y, p) for y, p in groups]
    rng = np.random.default_rng(seed)
    keys = ["ap", "auc", "acc_mean@0.5"] + (["acc_mean@val"] if threshold is not None else [])
    draws: dict[str, list[float]] = {k: [] for k in keys}
    for _ in range(n if any(len(y) for y, _ in arrays) else 0):
        per = [_draw_metrics(y[idx], p[idx], threshold) for y, p in arrays if len(y)
               for idx in [_resample_indices(y, rng)]]
        for k in keys:
            vals = [m[k] for m in per if k in m]
            if vals:
                draws[k].append(float(np.mean(vals)))
    return _percentiles(draws, keys, level)


def score(labels: Sequence[int], probs: Sequence[float], tuned_threshold: float | None = None,
          bootstrap: int = 0, seed: int = 0) -> dict[str, Any]:
    """Every metric for one set of images.

    ``@0.5``: fixed threshold; ``@val``: the threshold tuned on a validation split
    (passed in, never fitted here); ``@oracle``: the threshold that would be best
    on *these* labels — shown for reference only, it is not a fair number.
    """
    y, p = _arrays(labels, probs)
    both = bool((y == 0).any() and (y == 1).any())
    out: dict[str, Any] = {
        "n": int(len(y)),
        "n_real": int((y == 0).sum()),
        "n_fake": int((y == 1).sum()),
        "ap": float(average_precision_score(y, p)) if both else None,
        "auc": float(roc_auc_score(y, p)) if both else None,
        "eer": equal_error_rate(y, p),
        "tpr@1%fpr": tpr_at_fpr(y, p, 0.01),
        "tpr@5%fpr": tpr_at_fpr(y, p, 0.05),
        "ece": expected_calibration_error(y, p),
    }
    out.update({f"{k}@0.5": v for k, v in accuracies(y, p, 0.5).items()})
    if tuned_threshold is not None:
        out["threshold"] = float(tuned_threshold)
        out.update({f"{k}@val": v for k, v in accuracies(y, p, tuned_threshold).items()})
    if both:
        out["threshold_oracle"] = tune_threshold(y, p)
        out["acc_mean@oracle"] = accuracies(y, p, out["threshold_oracle"])["acc_mean"]
    if bootstrap:
        out.update(bootstrap_ci(y, p, tuned_threshold, n=bootstrap, seed=seed))
    return out


def mean_over(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Average of per-subset metrics (the field's mAP / mAcc), skipping undefined ones."""
    skip = ("n", "n_real", "n_fake", "threshold", "threshold_oracle")
    keys = list(dict.fromkeys(k for r in rows for k in r if k not in skip and not k.endswith("_ci")))
    out: dict[str, Any] = {"n": sum(r["n"] for r in rows), "n_real": sum(r["n_real"] for r in rows),
                           "n_fake": sum(r["n_fake"] for r in rows)}
    for k in keys:
        vals = [r[k] for r in rows if r.get(k) is not None and not (isinstance(r[k], float) and math.isnan(r[k]))]
        out[k] = float(np.mean(vals)) if vals else None
    return out
