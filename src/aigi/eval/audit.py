"""The shortcut baseline: how well does file metadata alone tell real from fake?

For each file: width, height, aspect ratio, bytes, bytes per pixel, format, and
whether it carries EXIF, an ICC profile, PNG text chunks or a C2PA/JUMBF manifest.
A gradient-boosted classifier on these alone is scored leave-one-source-out, on the
same folds as the detectors (:mod:`aigi.eval.loso`). A detector must clearly beat
it on every fold, or it may be reading file habits instead of generation traces.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..data.datasets import ImageDataset
from ..errors import InputError
from .loso import make_folds

FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
FEATURES = ("width", "height", "aspect", "bytes", "bytes_per_pixel", *[f"format_{f.lower()}" for f in FORMATS],
            "exif", "icc", "png_text", "c2pa")


def metadata(path: str | Path) -> list[float]:
    data = Path(path).read_bytes()
    try:
        with Image.open(path) as im:
            w, h, fmt, info = im.width, im.height, im.format or "", im.info
            exif = bool(im.getexif())
    except Exception:  # noqa: BLE001 - an unreadable file keeps only its byte count
        w, h, fmt, info, exif = 0, 0, "", {}, False
    text = sum(isinstance(v, str) for v in info.values()) if fmt == "PNG" else 0
    c2pa = b"c2pa" in data or b"jumb" in data
    return [w, h, w / h if h else 0.0, len(data), len(data) / max(1, w * h),
            *[float(fmt == f) for f in FORMATS], float(exif), float("icc_profile" in info), float(text), float(c2pa)]


def _classifier(x: np.ndarray, y: list[int] | np.ndarray, seed: int):
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(max_iter=200, random_state=seed).fit(x, y)


def _report(folds: dict[str, dict]) -> dict:
    aucs = [f["auc"] for f in folds.values()]
    return {"features": list(FEATURES), "folds": folds, "mean_auc": float(np.mean(aucs)), "worst_auc": float(min(aucs))}


def audit(ds: ImageDataset, seed: int = 0) -> dict:
    """Leave-one-source-out AUC of the metadata-only classifier, per held-out source."""
    from sklearn.metrics import roc_auc_score

    table = {str(s.path): metadata(s.path) for s in ds.samples}
    folds = {}
    for fold in make_folds(ds):
        clf = _classifier(np.array([table[str(s.path)] for s in fold.train]), [s.label for s in fold.train], seed)
        scores = clf.predict_proba(np.array([table[str(s.path)] for s in fold.test]))[:, 1]
        folds[fold.source] = {"auc": float(roc_auc_score([s.label for s in fold.test], scores)),
                              **fold.counts()["test"]}
    return _report(folds)


def audit_external(pool: ImageDataset, external: ImageDataset, seed: int = 0) -> dict:
    """The same classifier trained on the whole pool and scored on each source of the external
    test set that has both classes: the shortcut a detector must beat there."""
    from sklearn.metrics import roc_auc_score

    clf = _classifier(np.array([metadata(s.path) for s in pool.samples]), [s.label for s in pool.samples], seed)
    by_source: dict[str, list] = {}
    for s in external.samples:
        by_source.setdefault(s.subset, []).append(s)
    folds = {}
    for name, samples in sorted(by_source.items()):
        labels = [s.label for s in samples]
        if len(set(labels)) < 2:
            continue
        scores = clf.predict_proba(np.array([metadata(s.path) for s in samples]))[:, 1]
        folds[name] = {"auc": float(roc_auc_score(labels, scores)), "real": labels.count(0), "fake": labels.count(1)}
    if not folds:
        raise InputError("the external set has no source with both real and fake images")
    return _report(folds)
