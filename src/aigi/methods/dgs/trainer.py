"""DGS-Net's own trainer (``dgs``): per step, the student, the frozen teacher and
the caption's text embedding give three embedding gradients; the student learns
from the surgered one (:mod:`.surgery`), each head from its own loss.

Captions and their text embeddings are computed once: captions per image content
(:mod:`.captions`), embeddings per caption and text tower, on disk in
``<cache>/text-embeddings/<tower>.safetensors``.
"""
from __future__ import annotations

import hashlib
from typing import Any, Sequence

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ...errors import ConfigError
from ...paths import cache_dir
from ...training.loop import SequentialOrders, Task, TrainLoop
from ...training.pixels import PixelDataset, collate
from ...training.trainer import TrainContext
from ...training.validation import ValidationAP, ap_result
from .captions import captions_for
from .model import DGSDetector
from .surgery import per_sample_embedding_grad, surgered_gradient


def cached_text_embeddings(detector: DGSDetector, captions: Sequence[str]) -> dict[str, torch.Tensor]:
    """Caption → embedding, each caption encoded once ever per text tower
    (``<cache>/text-embeddings/<tower>.safetensors``)."""
    key = lambda c: hashlib.sha256(c.encode()).hexdigest()[:24]  # noqa: E731
    tower = hashlib.sha256(detector.text.fingerprint.encode()).hexdigest()[:16]
    path = cache_dir() / "text-embeddings" / f"{tower}.safetensors"
    store = load_file(str(path)) if path.exists() else {}
    todo = sorted({c for c in captions if key(c) not in store})
    for start in range(0, len(todo), 64):
        chunk = todo[start : start + 64]
        for c, e in zip(chunk, detector.text_embeddings(chunk)):
            store[key(c)] = e.contiguous()
    if todo:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(store, str(path.with_suffix(".tmp")))
        path.with_suffix(".tmp").replace(path)
    return {c: store[key(c)] for c in set(captions)}


def dgs_backward(detector: DGSDetector, pixels: torch.Tensor, labels: torch.Tensor, text_embeds: torch.Tensor,
                 weight: float = 1.0) -> dict[str, float]:
    """The gradients of one DGS update, scaled by ``weight`` (a micro-batch's share of the batch):
    heads from their own losses, the student from the surgered gradient."""
    bce = nn.functional.binary_cross_entropy_with_logits
    y = labels.float()
    n = len(y)
    with torch.no_grad():
        f_teacher = detector.teacher.encode(pixels).embed.float()
    f = detector.student.encode(pixels).embed
    t = text_embeds.detach().requires_grad_(True)
    f_t = f_teacher.detach().requires_grad_(True)
    loss_img = bce(detector.head(f).squeeze(-1), y, reduction="none")
    loss_text = bce(detector.text_head(t).squeeze(-1), y, reduction="none")
    loss_teacher = bce(detector.teacher_head(f_t).squeeze(-1), y, reduction="none")
    g_task = per_sample_embedding_grad(loss_img, f) / n  # the mean loss's gradient, per sample
    g_text = per_sample_embedding_grad(loss_text, t) / n
    g_img = per_sample_embedding_grad(loss_teacher, f_t) / n
    if detector.distill == "gradient":
        g = surgered_gradient(g_task, g_text, g_img, beta=detector.beta, suppress=detector.suppress)
    else:  # ablation: global feature distillation ||f − f^T||² instead of gradient alignment
        g = surgered_gradient(g_task, g_text, None, suppress=detector.suppress)
        g = g + detector.feature_weight * 2.0 * (f.detach() - f_teacher) / n
    f.backward(g * weight)
    heads = (bce(detector.head(f.detach()).squeeze(-1), y) + loss_text.mean() + loss_teacher.mean())
    (heads * weight).backward()
    return {"loss_img": float(loss_img.detach().mean()), "loss_text": float(loss_text.detach().mean()),
            "loss_teacher": float(loss_teacher.detach().mean())}


def training_step(detector: DGSDetector, pixels: torch.Tensor, labels: torch.Tensor, text_embeds: torch.Tensor,
                  optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """One whole DGS update on one batch (the trainer's loop splits a batch into micro-batches)."""
    optimizer.zero_grad(set_to_none=True)
    parts = dgs_backward(detector, pixels, labels, text_embeds)
    optimizer.step()
    return parts


class DGSTask(Task):
    """Each image comes with its caption's cached text embedding; no autocast: the surgery's
    per-sample gradients are computed in fp32."""

    def __init__(self, detector: DGSDetector, data: PixelDataset, text: torch.Tensor, validate: ValidationAP,
                 has_val: bool) -> None:
        self.detector, self.data, self.text, self.validate_ap, self.has_val = detector, data, text, validate, has_val
        self.order = SequentialOrders(len(data), data.seed)

    def batches(self, chunks: list[list[int]], epoch: int):
        self.data.epoch = epoch
        for chunk in chunks:
            items = [(i, self.data[i]) for i in chunk]
            batch = collate([item for _, item in items])
            valid = [i for i, item in items if item is not None]  # unreadable files are skipped
            yield None if batch is None else (batch[0], batch[1], self.text[valid])

    def step(self, batch, weight: float, loop: TrainLoop) -> dict[str, float]:
        dev = self.detector.device
        return dgs_backward(self.detector, batch[0].to(dev), batch[1].to(dev), batch[2].to(dev), weight)

    def validate(self) -> tuple[dict[str, Any], tuple | None]:
        return ap_result(self.validate_ap()) if self.has_val else ({}, None)


def train_dgs(detector: DGSDetector, train_samples, val_samples, ctx: TrainContext) -> dict[str, Any]:
    """DGS training: captions and their text embeddings are computed once, then
    every step runs the student, the frozen teacher and the surgery."""
    config, log = ctx.config, ctx.log
    if config.precision != "fp32":
        raise ConfigError(f"train.precision: the dgs trainer computes its per-sample gradients in fp32; "
                          f"got {config.precision}")
    captions = captions_for(train_samples, detector.captions)
    table = cached_text_embeddings(detector, captions)
    text = torch.stack([table[c] for c in captions])
    log(f"captions ({detector.captions}): {len(table)} distinct, text tower {detector.text_spec}")
    data = PixelDataset(train_samples, detector.student.preprocess, ctx.augment, config.seed)
    task = DGSTask(detector, data, text, ctx.validation(detector, val_samples),
                   bool(len(val_samples)))
    return TrainLoop(detector, task, ctx, len(data)).run()
