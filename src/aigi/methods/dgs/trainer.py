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

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ...paths import cache_dir
from ...training.pixels import PixelDataset, collate
from ...training.trainer import TrainContext, make_optimizer
from ...training.validation import KeepBest, ValidationAP, finish, format_row
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


def training_step(detector: DGSDetector, pixels: torch.Tensor, labels: torch.Tensor, text_embeds: torch.Tensor,
                  optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """One DGS update: heads from their own losses, the student from the surgered gradient."""
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
    optimizer.zero_grad(set_to_none=True)
    if detector.distill == "gradient":
        g = surgered_gradient(g_task, g_text, g_img, beta=detector.beta, suppress=detector.suppress)
    else:  # ablation: global feature distillation ||f − f^T||² instead of gradient alignment
        g = surgered_gradient(g_task, g_text, None, suppress=detector.suppress)
        g = g + detector.feature_weight * 2.0 * (f.detach() - f_teacher) / n
    f.backward(g)
    heads = (bce(detector.head(f.detach()).squeeze(-1), y) + loss_text.mean() + loss_teacher.mean())
    heads.backward()
    optimizer.step()
    return {"loss_img": float(loss_img.detach().mean()), "loss_text": float(loss_text.detach().mean()),
            "loss_teacher": float(loss_teacher.detach().mean())}


def train_dgs(detector: DGSDetector, train_samples, val_samples, ctx: TrainContext) -> dict[str, Any]:
    """DGS training: captions and their text embeddings are computed once, then
    every step runs the student, the frozen teacher and the surgery."""
    config, log = ctx.config, ctx.log
    epochs, batch_size, seed = config.epochs, config.batch_size, config.seed
    captions = captions_for(train_samples, detector.captions)
    table = cached_text_embeddings(detector, captions)
    text = torch.stack([table[c] for c in captions])
    log(f"captions ({detector.captions}): {len(table)} distinct, text tower {detector.text_spec}")
    data = PixelDataset(train_samples, detector.student.preprocess, ctx.augment, seed)
    indexed = torch.utils.data.TensorDataset(torch.arange(len(data)))
    loader = torch.utils.data.DataLoader(indexed, batch_size=batch_size, shuffle=True,
                                         generator=torch.Generator().manual_seed(seed))
    opt = make_optimizer(detector, config)
    best, history = KeepBest(), []
    validate = ValidationAP(detector, val_samples, batch_size, ctx.cache_root)
    for epoch in range(1, epochs + 1):
        data.epoch = epoch
        detector.train()
        totals: dict[str, float] = {}
        seen = 0
        for (idx,) in loader:
            items = [(int(i), data[int(i)]) for i in idx]
            valid = [i for i, item in items if item is not None]  # unreadable files are skipped
            batch = collate([item for _, item in items])
            if batch is None:
                continue
            pixels, labels = batch[0].to(detector.device), batch[1].to(detector.device)
            parts = training_step(detector, pixels, labels, text[valid].to(detector.device), opt)
            seen += len(labels)
            for k, v in parts.items():
                totals[k] = totals.get(k, 0.0) + v * len(labels)
        row: dict[str, Any] = {"epoch": epoch, "images": seen, **{k: v / max(1, seen) for k, v in totals.items()}}
        row["val_ap"] = validate()
        best.offer((0.0 if np.isnan(row["val_ap"]) else row["val_ap"],), detector, epoch)
        history.append(row)
        log(format_row(row))
    return finish(best, detector, config.epochs, config.keep_best, log, history)
