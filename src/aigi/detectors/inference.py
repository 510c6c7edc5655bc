"""Scoring: P(fake) from logits (through the stored calibration), verdicts, and
``predict`` over paths, PIL images, arrays or bytes, one bad input never stopping a batch.

A mixin of :class:`~aigi.detectors.base.Detector`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import torch

from ..data.io import ImageReadError, read_image


@dataclass
class Prediction:
    """One image's result. ``error`` is set (and the score left empty) when the
    image could not be read: a batch never stops for one bad file."""

    path: str
    prob_fake: float | None
    verdict: str | None
    error: str | None = None
    extra: dict[str, float] = field(default_factory=dict)

    def as_record(self) -> dict[str, Any]:
        rec = {"path": self.path, "prob_fake": self.prob_fake, "verdict": self.verdict, "error": self.error}
        rec.update(self.extra)
        return rec


class Inference:
    """P(fake), verdicts and batch prediction on top of the detector's forward pass."""

    def to_probability(self, logits: torch.Tensor) -> torch.Tensor:
        """P(fake) from raw logits, through the stored calibration if any."""
        from .calibration import apply

        return torch.sigmoid(apply(logits.float(), self.calibration))

    @torch.no_grad()
    def logits_from_features(self, features: torch.Tensor, batch_size: int = 256, views: int = 1) -> torch.Tensor:
        """Logits per image; with ``views`` adjacent rows per image (a multi-crop view), their mean."""
        self.eval()
        out = [self.head_from_features(features[i : i + batch_size].to(self.device)).float().cpu()
               for i in range(0, features.shape[0], batch_size)]
        logits = torch.cat(out) if out else torch.empty(0)
        return logits.view(-1, views).mean(1) if views > 1 else logits

    def probabilities_from_features(self, features: torch.Tensor, batch_size: int = 256, views: int = 1) -> torch.Tensor:
        return self.to_probability(self.logits_from_features(features, batch_size, views))

    def verdict(self, prob: float) -> str:
        return "fake" if prob >= self.threshold else "real"

    @torch.no_grad()
    def predict(self, inputs: Iterable[Any] | Any, batch_size: int = 16, progress=None) -> list[Prediction]:
        """Score paths, PIL images, numpy arrays or bytes. An input that cannot be read or
        prepared gets an error record, and a batch that fails as a whole (out of memory) is
        scored image by image: one image never takes its batch with it."""
        items = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        self.eval()
        names = [str(x) if isinstance(x, (str, Path)) else f"<input {i}>" for i, x in enumerate(items)]
        results: list[Prediction | None] = [None] * len(items)
        for start in range(0, len(items), batch_size):
            idx, images = [], []
            for i in range(start, min(start + batch_size, len(items))):
                try:
                    images.append(read_image(items[i]))
                    idx.append(i)
                except ImageReadError as exc:
                    results[i] = Prediction(names[i], None, None, exc.cause)
            for i, p in zip(idx, self._view_probabilities(images)):
                results[i] = Prediction(names[i], None, None, p) if isinstance(p, str) else \
                    Prediction(names[i], p, self.verdict(p))
            if progress:
                progress(min(batch_size, len(items) - start))
        return results  # type: ignore[return-value]

    def _view_probabilities(self, images: list) -> list[float | str]:
        """P(fake) per image through the detector's view (the mean logit of its crops), or why
        the image could not be scored."""
        view = self.view
        size = self.backbone.preprocess_spec.output_size
        crops = [c for image in images for c in view.apply(image, size)]
        pixels, kept, failed = self.backbone.prepare(crops)
        rows: list[float | str] = ["" for _ in crops]
        for j, cause in failed.items():
            rows[j] = cause
        for j, logit in zip(kept, self._logits(pixels)):
            rows[j] = logit
        out: list[float | str] = []
        for start in range(0, len(rows), view.crops):
            group = rows[start : start + view.crops]
            failures = [r for r in group if isinstance(r, str)]
            out.append(failures[0] if failures else
                       float(self.to_probability(torch.tensor([sum(group) / len(group)]))[0]))  # type: ignore[arg-type]
        return out

    def _logits(self, pixels: torch.Tensor) -> list[float | str]:
        """Logit per row; if the batch runs out of memory, row by row (a failure → its cause)."""
        if not len(pixels):
            return []
        try:
            return self(pixels.to(self.device)).float().cpu().tolist()
        except (MemoryError, torch.OutOfMemoryError) as exc:
            if len(pixels) == 1:
                return [f"out of memory while scoring ({type(exc).__name__})"]
            return [p for k in range(len(pixels)) for p in self._logits(pixels[k : k + 1])]
