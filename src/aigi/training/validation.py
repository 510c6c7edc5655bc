"""What every trainer shares: the validation score, keeping the best state, the log line."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from sklearn.metrics import average_precision_score

from ..features import FeatureCache


def validation_ap(labels: torch.Tensor, scores: torch.Tensor) -> float:
    """AP on the validation split; NaN when it holds only one class."""
    if not 0 < int(labels.sum()) < len(labels):
        return float("nan")
    return float(average_precision_score(labels.numpy(), scores.float().numpy()))


def ap_result(ap: float, *tiebreak: float) -> tuple[dict[str, Any], tuple]:
    """An epoch's validation fields and the key its best epoch is chosen by: a NaN AP (a
    one-class split) ranks as 0, the tie-breakers after it."""
    return {"val_ap": ap}, (0.0 if math.isnan(ap) else ap, *tiebreak)


def format_row(row: dict[str, Any]) -> str:
    return "epoch " + " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                               for k, v in row.items() if not isinstance(v, list))


class KeepBest:
    """A copy of the saved (trainable) state from the epoch with the best key."""

    def __init__(self) -> None:
        self.key: tuple | None = None
        self.state: dict[str, torch.Tensor] | None = None
        self.epoch = -1

    def offer(self, key: tuple, detector, epoch: int) -> None:
        if self.key is None or key > self.key:
            self.key, self.epoch = key, epoch
            self.state = {k: v.detach().clone() for k, v in detector.state_to_save().items()}

    def restore(self, detector, log: Callable[[str], None]) -> None:
        if self.state is not None:
            detector.load_saved_state(self.state)
            log(f"kept epoch {self.epoch} (best validation AP)")


def finish(best: KeepBest, detector, epochs: int, keep_best: bool, log: Callable[[str], None],
           history: list[dict[str, Any]]) -> dict[str, Any]:
    """What every epoch-based trainer ends with: the best epoch restored (``train.keep_best``) and
    the summary the run records."""
    if keep_best:
        best.restore(detector, log)
    return {"epochs": epochs, "best_epoch": best.epoch if keep_best else epochs, "history": history}


class ValidationAP:
    """Validation AP per epoch: through the cached frozen part when there is one, else from pixels
    (unreadable images are left out)."""

    def __init__(self, detector, samples: Sequence, batch_size: int, cache_root: str | Path | None = None) -> None:
        self.detector, self.samples, self.batch_size = detector, list(samples), batch_size
        self.features, self.views = None, 1
        self.labels = torch.tensor([s.label for s in self.samples], dtype=torch.float32)
        key = detector.cache_point()
        if key is not None and self.samples:
            res = FeatureCache(detector.backbone, root=cache_root).extract_view(
                [s.path for s in self.samples], detector.view, keys=(key,), batch_size=batch_size)
            self.features, self.labels, self.views = res.features[key], self.labels[res.kept], res.views

    def __call__(self) -> float:
        if not self.samples:
            return float("nan")
        if self.features is not None:
            return validation_ap(self.labels, self.detector.probabilities_from_features(self.features, self.batch_size,
                                                                                        self.views))
        preds = self.detector.predict([str(s.path) for s in self.samples], batch_size=self.batch_size)
        ok = [i for i, p in enumerate(preds) if p.error is None]
        return validation_ap(self.labels[ok], torch.tensor([preds[i].prob_fake for i in ok]))
