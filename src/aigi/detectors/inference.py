"""Scoring: P(fake) from logits (through the stored calibration), verdicts, and
``predict`` over paths, PIL images, arrays or bytes, one bad input never stopping a batch.

A mixin of :class:`~aigi.detectors.base.Detector`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from ..backbones.preprocess import prepare
from ..data.io import ImageReadError, read_image
from .decoding import draft_side
from .precision import autocast


@dataclass
class PreparedBatch:
    """Inputs read and pre-processed, ready for the model: ``pixels`` holds every crop of every
    readable input, ``rows[k]`` the input row k belongs to, ``errors`` input → why it was not."""

    names: list[str]
    pixels: Any
    rows: list[int]
    errors: dict[int, str] = field(default_factory=dict)


def input_names(items: list[Any]) -> list[str]:
    """A path names its record; any other input is ``<input i>``."""
    return [str(x) if isinstance(x, (str, Path)) else f"<input {i}>" for i, x in enumerate(items)]


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


@dataclass(frozen=True)
class ViewPreparer:
    """Read each input, cut the view's crops and pre-process them into one pixel tensor.
    ``decode="draft"`` lets a large JPEG be decoded at a DCT scale (Pillow's draft mode) when
    the view resizes it anyway; a native-resolution view always decodes in full."""

    view: Any  # aigi.backbones.views.View
    spec: Any  # aigi.backbones.preprocess.PreprocessSpec
    decode: str = "full"

    def __call__(self, items: list[Any], names: list[str] | None = None) -> PreparedBatch:
        read = ImageReader(draft_side(self.decode, not self.view.native, self.spec.output_size))(items, names)
        errors = dict(read.errors)
        crops, owner = [], []
        for i, image in zip(read.rows, read.pixels):
            for crop in self.view.apply(image, self.spec.output_size):
                crops.append(crop)
                owner.append(i)
        pixels, kept, failed = prepare(crops, self.spec)
        for j, cause in failed.items():
            errors.setdefault(owner[j], cause)
        return PreparedBatch(read.names, pixels, [owner[j] for j in kept], errors)


@dataclass(frozen=True)
class ViewsPreparer:
    """Several one-crop views of each input, pre-processed and stacked ``[N, views, 3, S, S]``:
    the pixels of an ensemble whose members see the image differently (a native crop, the whole
    picture) through one tower, cut once in the reading thread. An input any view cannot prepare
    gets an error record."""

    views: tuple[Any, ...]  # aigi.backbones.views.View, each cutting one crop
    spec: Any
    decode: str = "full"

    def __call__(self, items: list[Any], names: list[str] | None = None) -> PreparedBatch:
        read = ImageReader(draft_side(self.decode, not any(v.native for v in self.views),
                                      self.spec.output_size))(items, names)
        errors = dict(read.errors)
        per_view = []
        for view in self.views:
            pixels, kept, failed = prepare([view.apply(image, self.spec.output_size)[0] for image in read.pixels],
                                           self.spec)
            for j, cause in failed.items():
                errors.setdefault(read.rows[j], cause)
            per_view.append(dict(zip(kept, pixels)))
        ready = [j for j in range(len(read.rows)) if all(j in rows for rows in per_view)]
        size = self.spec.output_size
        stacked = (torch.stack([torch.stack([rows[j] for rows in per_view]) for j in ready]) if ready
                   else torch.empty(0, len(self.views), 3, size, size))
        return PreparedBatch(read.names, stacked, [read.rows[j] for j in ready], errors)


@dataclass(frozen=True)
class ImageReader:
    """Read each input, nothing more (an ensemble's members each cut their own view); JPEGs
    at a DCT scale keeping the short side ≥ ``min_side`` when that is set."""

    min_side: int | None = None

    def __call__(self, items: list[Any], names: list[str] | None = None) -> PreparedBatch:
        names = names or input_names(items)
        images, rows, errors = [], [], {}
        for i, item in enumerate(items):
            try:
                images.append(read_image(item, min_side=self.min_side))
                rows.append(i)
            except ImageReadError as exc:
                errors[i] = exc.cause
        return PreparedBatch(list(names), images, rows, errors)


class Inference:
    """P(fake), verdicts and batch prediction on top of the detector's forward pass."""

    decode = "full"  # or "draft" (aigi.detectors.decoding): set per loaded detector by aigi.detect(decode=...)

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

    @property
    def preprocess_spec(self):
        """How inputs become pixels: the runner's (an exported graph's) or the tower's."""
        return self.runner.preprocess_spec if self.runner is not None else self.backbone.preprocess_spec

    def input_views(self) -> list[Any]:
        """The views in the forward pass's pixels: ``[B, 3, S, S]`` crops of one view (an
        ensemble of several views stacks them, ``[B, views, 3, S, S]``)."""
        return [self.view]

    def verdict(self, prob: float) -> str:
        return "fake" if prob >= self.threshold else "real"

    @torch.no_grad()
    def predict(self, inputs: Iterable[Any] | Any, batch_size: int = 16, progress=None,
                names: list[str] | None = None) -> list[Prediction]:
        """Score paths, PIL images, numpy arrays or bytes (``names`` label the records of inputs
        that are not paths). An input that cannot be read or prepared gets an error record, and a
        batch that fails as a whole (out of memory) is scored image by image: one image never
        takes its batch with it."""
        items = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        names = names or input_names(items)
        results: list[Prediction] = []
        for start in range(0, len(items), batch_size):
            stop = min(start + batch_size, len(items))
            results.extend(self.score_batch(self.prepare_batch(items[start:stop], names[start:stop])))
            if progress:
                progress(stop - start)
        return results

    def preparer(self) -> "ViewPreparer":
        """The CPU half of scoring as a small picklable object (no weights), so that reading and
        pre-processing can run in another thread, process or machine (:mod:`aigi.engines`)."""
        return ViewPreparer(self.view, self.preprocess_spec, self.decode)

    def prepare_batch(self, items: list[Any], names: list[str] | None = None) -> PreparedBatch:
        """The CPU half of scoring, without the model: read each input, cut the detector's view
        and pre-process the crops. It touches no module state, so a worker thread can prepare the
        next batch while the model scores this one (:mod:`aigi.scoring`)."""
        return self.preparer()(items, names)

    @torch.no_grad()
    def score_batch(self, batch: PreparedBatch) -> list[Prediction]:
        """The model half: one forward pass over the prepared crops; an image's logit is the
        mean of its crops', calibrated into P(fake)."""
        self.eval()
        return self.predictions_from_logits(batch, self._logits(batch.pixels))

    def predictions_from_logits(self, batch: PreparedBatch, logits: list[float | str]) -> list[Prediction]:
        """One record per input from the logit (or failure) of each crop row in ``batch.rows``."""
        per_image: dict[int, list[float | str]] = {}
        for i, logit in zip(batch.rows, logits):
            per_image.setdefault(i, []).append(logit)
        out = []
        for i, name in enumerate(batch.names):
            logits = per_image.get(i, [])
            failures = [x for x in logits if isinstance(x, str)]
            cause = batch.errors.get(i) or (failures[0] if failures else None) or (None if logits else "not scored")
            if cause:
                out.append(Prediction(name, None, None, cause))
                continue
            p = float(self.to_probability(torch.tensor([sum(logits) / len(logits)]))[0])  # type: ignore[arg-type]
            out.append(Prediction(name, p, self.verdict(p)))
        return out

    def _logits(self, pixels: torch.Tensor, forward: Callable[[torch.Tensor], torch.Tensor] | None = None) -> list[Any]:
        """Output row per row of ``forward`` (the detector itself by default); if the batch runs
        out of memory, row by row (a failure → its cause)."""
        if not len(pixels):
            return []
        try:
            if forward is None and self.runner is not None:  # an exported graph (aigi.runtimes) instead of the torch modules
                return self.runner.logits(pixels)
            with autocast(self.precision, self.device):
                return (forward or self)(pixels.to(self.device)).float().cpu().tolist()
        except (MemoryError, torch.OutOfMemoryError) as exc:
            if len(pixels) == 1:
                return [f"out of memory while scoring ({type(exc).__name__})"]
            return [p for k in range(len(pixels)) for p in self._logits(pixels[k : k + 1], forward)]
