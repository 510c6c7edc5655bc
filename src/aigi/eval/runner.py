"""``aigi eval``: one protocol for every detector.

Per subset (generator) and overall: AP, ROC AUC, accuracy on real, on fake and
their mean at 0.5 and at the threshold the detector's training run chose on its
validation split (never on these labels). "all" pools every image; "mean" is
the average over subsets, as the field reports mAP / mAcc.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..data.datasets import ImageDataset
from ..detectors.base import Detector
from ..detectors.operating import KEY as OPERATING_KEY
from ..errors import InputError
from ..features import FeatureCache
from .metrics import bootstrap_mean_ci, mean_over, score

TABLE_COLUMNS = [("ap", "AP"), ("auc", "AUC"), ("acc_real@0.5", "real@.5"), ("acc_fake@0.5", "fake@.5"),
                 ("acc_mean@0.5", "mean@.5"), ("acc_real@val", "real@val"), ("acc_fake@val", "fake@val"),
                 ("acc_mean@val", "mean@val")]


@dataclass
class EvalResult:
    rows: dict[str, dict[str, Any]]  # subset name, "all", "mean" → metrics
    predictions: list[dict[str, Any]]  # path, subset, label, prob_fake (+ p_<expert> for ensembles)
    errors: list[tuple[str, str]]
    experts: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # ensemble: expert → rows
    operating: list[dict[str, Any]] = field(default_factory=list)  # the stored operating points, measured here

    def scores(self, column: str = "prob_fake") -> tuple[list[int], list[float]]:
        """Labels and scores of the images that have one (``p_<expert>`` for an expert)."""
        kept = [p for p in self.predictions if p.get(column) is not None]
        return [p["label"] for p in kept], [p[column] for p in kept]

    def expert_views(self, label: str) -> Iterator[tuple[str, str, dict[str, dict[str, Any]], tuple[list[int], list[float]]]]:
        """For an ensemble, per expert: its key in a report (``<label>/<expert>``), its name, its
        metric rows, and its labels and scores."""
        for expert, rows in self.experts.items():
            yield f"{label}/{expert}", expert, rows, self.scores(f"p_{expert}")

    def as_json(self, detector: Detector, data: str) -> dict[str, Any]:
        return {"detector": detector.name, "backbone": detector.backbone_spec, "data": data,
                "threshold_val": detector.threshold, "metrics": self.rows, "operating_points": self.operating,
                "experts": self.experts,
                "unreadable": [{"path": p, "error": e} for p, e in self.errors]}


def cached_logits(detector: Detector, ds: ImageDataset, batch_size: int = 32, progress=None,
                  transform=None, transform_id: str = "", cache_root: str | Path | None = None):
    """Raw logits of the readable images through the feature cache: (logits, kept indices, errors)."""
    key = detector.cache_point()
    res = FeatureCache(detector.backbone, root=cache_root).extract_view(
        ds.paths, detector.view, keys=(key,), batch_size=batch_size, progress=progress, transform=transform,
        transform_id=transform_id)
    return detector.logits_from_features(res.features[key], views=res.views), res.kept, res.errors


def detector_logits(detector: Detector, ds: ImageDataset, batch_size: int = 32,
                    cache_root: str | Path | None = None):
    """Logits and labels of the readable images (what calibration is fitted on)."""
    import torch

    logits, kept, _ = cached_logits(detector, ds, batch_size, cache_root=cache_root)
    return logits, torch.tensor([ds.samples[i].label for i in kept], dtype=torch.float32)


def _probabilities(detector: Detector, ds: ImageDataset, use_cache: bool, batch_size: int, progress,
                   transform=None, transform_id: str = "", cache_root: str | Path | None = None):
    """P(fake) for each readable sample; frozen detectors go through the feature cache, unless
    they compute otherwise than the cache's fp32 torch features (a reduced precision, an
    exported graph): those score from pixels."""
    cached = detector.cache_point() is not None and detector.precision == "fp32" and detector.runner is None
    if use_cache and cached:
        logits, kept, errors = cached_logits(detector, ds, batch_size, progress, transform, transform_id, cache_root)
        return dict(zip(kept, detector.to_probability(logits).tolist())), errors
    inputs = ds.paths if transform is None else [_transformed(p, transform) for p in ds.paths]
    preds = detector.predict(inputs, batch_size=batch_size, progress=progress)
    scores = {i: p.prob_fake for i, p in enumerate(preds) if p.error is None}
    return scores, [(str(ds.paths[i]), p.error) for i, p in enumerate(preds) if p.error is not None]


def _transformed(path, transform):
    from ..data.io import ImageReadError, file_sha256, read_image

    try:
        return transform(read_image(path), file_sha256(path))
    except (ImageReadError, OSError):
        return path  # predict() reports the read error for this path


def _rows(ds: ImageDataset, scores: dict[int, float], threshold: float, bootstrap: int) -> dict[str, dict[str, Any]]:
    """Metrics per subset, pooled ("all") and averaged over subsets ("mean")."""
    per_subset: dict[str, tuple[list[int], list[float]]] = {}
    for i, s in enumerate(ds.samples):
        if i in scores:
            ys, ps = per_subset.setdefault(s.subset, ([], []))
            ys.append(s.label)
            ps.append(float(scores[i]))
    if not per_subset:
        raise InputError(f"{ds.name}: no readable image to evaluate")
    rows = {name: score(ys, ps, threshold, bootstrap=bootstrap) for name, (ys, ps) in sorted(per_subset.items())}
    subset_rows = list(rows.values())
    rows["all"] = score([y for ys, _ in per_subset.values() for y in ys],
                        [p for _, ps in per_subset.values() for p in ps], threshold, bootstrap=bootstrap)
    if len(subset_rows) > 1:
        rows["mean"] = mean_over(subset_rows)
        if bootstrap:
            rows["mean"].update(bootstrap_mean_ci(list(per_subset.values()), threshold, n=bootstrap))
    return rows


def evaluate(detector: Detector, ds: ImageDataset, use_cache: bool = True, batch_size: int = 32,
             progress=None, bootstrap: int = 0, transform=None, transform_id: str = "",
             cache_root: str | Path | None = None) -> EvalResult:
    """Every metric per subset, pooled and averaged; an ensemble also per expert, each expert
    through its own (cached) path."""
    scores, errors, expert_scores = detector.dataset_probabilities(
        lambda member: _probabilities(member, ds, use_cache, batch_size, progress if member is detector else None,
                                      transform, transform_id, cache_root))
    predictions = []
    for i, s in enumerate(ds.samples):
        p = scores.get(i)
        rec = {"path": str(s.path), "subset": s.subset, "label": s.label,
               "prob_fake": None if p is None else round(float(p), 6)}
        rec.update({f"p_{name}": (round(float(e[i]), 6) if i in e else None) for name, e in expert_scores.items()})
        predictions.append(rec)
    rows = _rows(ds, scores, detector.threshold, bootstrap)
    experts = {name: _rows(ds, e, detector.members[name].threshold, bootstrap) for name, e in expert_scores.items()}
    return EvalResult(rows, predictions, errors, experts, _operating(ds, scores, detector.metadata.get(OPERATING_KEY)))


def _operating(ds: ImageDataset, scores: dict[int, float], table: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Each stored operating point (set on validation, or on a user's reals) on these images: the
    share of reals it flags and of fakes it catches, pooled ("all") and per subset."""
    if not table:
        return []
    groups: dict[str, list[tuple[int, float]]] = {"all": []}
    for i, s in enumerate(ds.samples):
        if i in scores:
            groups["all"].append((s.label, scores[i]))
            groups.setdefault(s.subset, []).append((s.label, scores[i]))

    def share(items: list[tuple[int, float]], label: int, t: float) -> float | None:
        hits = [p >= t for y, p in items if y == label]
        return sum(hits) / len(hits) if hits else None

    return [{"max_fpr": pt["max_fpr"], "threshold": pt["threshold"], "fpr_where_set": pt["fpr"],
             "measured": {name: {"fpr": share(items, 0, pt["threshold"]), "tpr": share(items, 1, pt["threshold"])}
                          for name, items in groups.items()}}
            for pt in table.get("points", [])]


def format_operating(points: list[dict[str, Any]]) -> str:
    """The operating points as set (on validation, or a user's reals), beside what they do on this
    data (pooled)."""
    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.1%}"

    lines = ["budget  threshold  reals flagged (where set → here)  fakes caught here"]
    for pt in points:
        here = pt["measured"]["all"]
        lines.append(f"{pt['max_fpr']:>6.1%}  {pt['threshold']:>9.4f}  {pct(pt['fpr_where_set']):>14} → "
                     f"{pct(here['fpr']):<15}  {pct(here['tpr']):>17}")
    return "\n".join(lines)


def format_table(rows: dict[str, dict[str, Any]]) -> str:
    """A fixed-width table a person can read in a terminal."""
    name_w = max(8, *(len(k) for k in rows))
    head = f"{'subset':<{name_w}} {'n':>6} " + " ".join(f"{label:>8}" for _, label in TABLE_COLUMNS)
    lines = [head, "-" * len(head)]
    for name, r in rows.items():
        cells = " ".join(f"{'n/a':>8}" if r.get(k) is None else f"{r[k]:>8.4f}" for k, _ in TABLE_COLUMNS)
        lines.append(f"{name:<{name_w}} {r['n']:>6} {cells}")
    return "\n".join(lines)


def write_outputs(result: EvalResult, detector: Detector, data: str, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "metrics.json", out / "metrics.csv", out / "predictions.csv", out / "metrics.txt"]
    files[0].write_text(json.dumps(result.as_json(detector, data), indent=2) + "\n")
    keys = ["n", "n_real", "n_fake"] + [k for k, _ in TABLE_COLUMNS] + ["acc@0.5", "acc@val", "threshold"]
    with open(files[1], "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["subset"] + keys)
        for name, r in result.rows.items():
            w.writerow([name] + ["" if r.get(k) is None else r.get(k) for k in keys])
    with open(files[2], "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(result.predictions[0]) if result.predictions else ["path"])
        w.writeheader()
        w.writerows(result.predictions)
    files[3].write_text(format_table(result.rows) + "\n"
                        + (f"\noperating points\n{format_operating(result.operating)}\n" if result.operating else ""))
    return files
