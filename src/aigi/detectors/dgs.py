"""DGS-Net — LoRA fine-tuning with distillation-guided gradient surgery (seed 001).

Three branches per (image, caption, label): the student image tower with LoRA
(``peft``, rank 8 on attention q, v by default) and its head; the frozen CLIP
text tower on the caption and its head; a frozen copy of the original image
tower (the teacher) and its head. Each head learns from its own BCE. The
student's tower learns from the *surgered* embedding gradient
(:mod:`aigi.training.surgery`): the caption direction suppressed, the teacher's
descent directions added. Inference runs the student and its head alone — the
teacher and the text tower are never loaded for it.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from ..backbones import DEFAULT_BACKBONE, VisionBackbone, load_backbone, load_text_backbone
from ..training.surgery import per_sample_embedding_grad, surgered_gradient
from .base import Detector

DISTILL_MODES = ("gradient", "feature")


class DGSDetector(Detector):
    name = "dgs"
    feature_key = None
    embeds_backbone = True

    def __init__(
        self,
        backbone: str | VisionBackbone = DEFAULT_BACKBONE,
        threshold: float = 0.5,
        lora_rank: int = 8,
        lora_alpha: float = 8.0,
        lora_targets: Sequence[str] = ("q_proj", "v_proj"),
        text_backbone: str = "random:clip-text-b16",
        beta: float = 1.0,
        suppress: bool = True,
        distill: str = "gradient",
        feature_weight: float = 1.0,
        captions: str = "prompt:a photo",
    ) -> None:
        from peft import LoraConfig, inject_adapter_in_model

        model = backbone if isinstance(backbone, VisionBackbone) else load_backbone(backbone)
        super().__init__(model.name if isinstance(backbone, VisionBackbone) else backbone, threshold)
        if distill not in DISTILL_MODES:
            raise ValueError(f"distill must be one of {DISTILL_MODES}, not '{distill}'")
        self.lora_rank, self.lora_alpha, self.lora_targets = int(lora_rank), float(lora_alpha), list(lora_targets)
        self.text_spec, self.beta, self.suppress = text_backbone, float(beta), bool(suppress)
        self.distill, self.feature_weight, self.captions = distill, float(feature_weight), captions
        for p in model.parameters():
            p.requires_grad_(False)
        self.vision_parameters = model.parameter_count()
        inject_adapter_in_model(LoraConfig(r=self.lora_rank, lora_alpha=self.lora_alpha, lora_dropout=0.0,
                                           target_modules=self.lora_targets), model.model)
        model.pristine_blocks = 0  # every block may carry LoRA: nothing after the embeddings is cacheable
        self.student = model
        object.__setattr__(self, "_backbone", model)
        self.head = nn.Linear(model.embed_dim, 1)
        self.text_head = nn.Linear(model.embed_dim, 1)  # image and text share CLIP's joint space
        self.teacher_head = nn.Linear(model.embed_dim, 1)
        for h in (self.head, self.text_head, self.teacher_head):
            nn.init.normal_(h.weight, std=0.02)
            nn.init.zeros_(h.bias)
        # frozen branches for training only: plain attributes, never submodules, never saved
        object.__setattr__(self, "_teacher", None)
        object.__setattr__(self, "_text", None)

    def params(self) -> dict[str, Any]:
        return {"lora_rank": self.lora_rank, "lora_alpha": self.lora_alpha, "lora_targets": self.lora_targets,
                "text_backbone": self.text_spec, "beta": self.beta, "suppress": self.suppress,
                "distill": self.distill, "feature_weight": self.feature_weight, "captions": self.captions}

    # ---- what is saved: LoRA + heads, never the towers ------------------------------
    def state_to_save(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.state_dict().items() if not k.startswith("student.") or "lora_" in k}

    def load_saved_state(self, state: dict[str, torch.Tensor]) -> None:
        missing, unexpected = self.load_state_dict(state, strict=False)
        bad = [k for k in missing if not k.startswith("student.") or "lora_" in k]
        if bad or unexpected:
            raise ValueError(f"saved DGS weights do not match the config: missing {bad[:3]}, unexpected {unexpected[:3]}")

    def parameter_report(self) -> dict[str, Any]:
        trainable = sum(p.numel() for p in self.trainable_parameters())
        total = sum(p.numel() for p in self.parameters())
        return {"total": total, "trainable": trainable, "frozen": total - trainable,
                "vision_tower": self.vision_parameters, "trainable_share_of_vision_tower": trainable / self.vision_parameters}

    # ---- the frozen branches, training only -------------------------------------------
    @property
    def teacher(self) -> VisionBackbone:
        if self._teacher is None:
            object.__setattr__(self, "_teacher", load_backbone(self.backbone_spec, device=self.device).freeze())
        return self._teacher

    @property
    def text(self):
        if self._text is None:
            object.__setattr__(self, "_text", load_text_backbone(self.text_spec, device=self.device))
            for p in self._text.parameters():
                p.requires_grad_(False)
        return self._text

    def loaded_towers(self) -> dict[str, bool]:
        """Which frozen towers are in memory (inference must load neither)."""
        return {"teacher": self._teacher is not None, "text": self._text is not None}

    # ---- computation --------------------------------------------------------------
    def cache_point(self) -> str | None:
        return None

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.head(self.student.encode(pixels).embed).squeeze(-1)

    @torch.no_grad()
    def text_embeddings(self, captions: Sequence[str]) -> torch.Tensor:
        return self.text.encode(list(captions)).float()

    def cached_text_embeddings(self, captions: Sequence[str]) -> dict[str, torch.Tensor]:
        """Caption → embedding, each caption encoded once ever per text tower
        (``<cache>/text-embeddings/<tower>.safetensors``)."""
        import hashlib

        from safetensors.torch import load_file, save_file

        from ..paths import cache_dir

        key = lambda c: hashlib.sha256(c.encode()).hexdigest()[:24]  # noqa: E731
        tower = hashlib.sha256(self.text.fingerprint.encode()).hexdigest()[:16]
        path = cache_dir() / "text-embeddings" / f"{tower}.safetensors"
        store = load_file(str(path)) if path.exists() else {}
        todo = sorted({c for c in captions if key(c) not in store})
        for start in range(0, len(todo), 64):
            chunk = todo[start : start + 64]
            for c, e in zip(chunk, self.text_embeddings(chunk)):
                store[key(c)] = e.contiguous()
        if todo:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_file(store, str(path.with_suffix(".tmp")))
            path.with_suffix(".tmp").replace(path)
        return {c: store[key(c)] for c in set(captions)}

    def training_step(self, pixels: torch.Tensor, labels: torch.Tensor, text_embeds: torch.Tensor,
                      optimizer: torch.optim.Optimizer) -> dict[str, float]:
        """One DGS update: heads from their own losses, the student from the surgered gradient."""
        bce = nn.functional.binary_cross_entropy_with_logits
        y = labels.float()
        n = len(y)
        with torch.no_grad():
            f_teacher = self.teacher.encode(pixels).embed.float()
        f = self.student.encode(pixels).embed
        t = text_embeds.detach().requires_grad_(True)
        f_t = f_teacher.detach().requires_grad_(True)
        loss_img = bce(self.head(f).squeeze(-1), y, reduction="none")
        loss_text = bce(self.text_head(t).squeeze(-1), y, reduction="none")
        loss_teacher = bce(self.teacher_head(f_t).squeeze(-1), y, reduction="none")
        g_task = per_sample_embedding_grad(loss_img, f) / n  # the mean loss's gradient, per sample
        g_text = per_sample_embedding_grad(loss_text, t) / n
        g_img = per_sample_embedding_grad(loss_teacher, f_t) / n
        optimizer.zero_grad(set_to_none=True)
        if self.distill == "gradient":
            g = surgered_gradient(g_task, g_text, g_img, beta=self.beta, suppress=self.suppress)
        else:  # ablation: global feature distillation ||f − f^T||² instead of gradient alignment
            g = surgered_gradient(g_task, g_text, None, suppress=self.suppress)
            g = g + self.feature_weight * 2.0 * (f.detach() - f_teacher) / n
        f.backward(g)
        heads = (bce(self.head(f.detach()).squeeze(-1), y) + loss_text.mean() + loss_teacher.mean())
        heads.backward()
        optimizer.step()
        return {"loss_img": float(loss_img.detach().mean()), "loss_text": float(loss_text.detach().mean()),
                "loss_teacher": float(loss_teacher.detach().mean())}

    def fit_pixels(self, train_samples, val_samples, settings: dict[str, Any], augment, log,
                   progress_factory=None) -> dict[str, Any]:
        """DGS training: captions and their text embeddings are computed once, then
        every step runs the student, the frozen teacher and the surgery."""
        import numpy as np

        from ..data.captions import captions_for
        from ..training.finetune import PixelDataset, _collate
        from ..training.keep_best import KeepBest, ValidationAP, format_row

        epochs, batch_size = int(settings.get("epochs", 1)), int(settings.get("batch_size", 16))
        seed, lr = int(settings.get("seed", 0)), float(settings.get("lr", 1e-4))
        captions = captions_for(train_samples, self.captions)
        table = self.cached_text_embeddings(captions)
        text = torch.stack([table[c] for c in captions])
        log(f"captions ({self.captions}): {len(table)} distinct, text tower {self.text_spec}")
        data = PixelDataset(train_samples, self.student.preprocess, augment, seed)
        indexed = torch.utils.data.TensorDataset(torch.arange(len(data)))
        loader = torch.utils.data.DataLoader(indexed, batch_size=batch_size, shuffle=True,
                                             generator=torch.Generator().manual_seed(seed))
        opt = torch.optim.AdamW(self.param_groups(lr), lr=lr, weight_decay=float(settings.get("weight_decay", 0.0)))
        best, history = KeepBest(), []
        validate = ValidationAP(self, val_samples, batch_size)
        for epoch in range(1, epochs + 1):
            data.epoch = epoch
            self.train()
            totals: dict[str, float] = {}
            seen = 0
            for (idx,) in loader:
                items = [(int(i), data[int(i)]) for i in idx]
                valid = [i for i, item in items if item is not None]  # unreadable files are skipped
                batch = _collate([item for _, item in items])
                if batch is None:
                    continue
                pixels, labels = batch[0].to(self.device), batch[1].to(self.device)
                parts = self.training_step(pixels, labels, text[valid].to(self.device), opt)
                seen += len(labels)
                for k, v in parts.items():
                    totals[k] = totals.get(k, 0.0) + v * len(labels)
            row: dict[str, Any] = {"epoch": epoch, "images": seen, **{k: v / max(1, seen) for k, v in totals.items()}}
            row["val_ap"] = validate()
            best.offer((0.0 if np.isnan(row["val_ap"]) else row["val_ap"],), self, epoch)
            history.append(row)
            log(format_row(row))
        best.restore(self, log)
        return {"epochs": epochs, "best_epoch": best.epoch, "history": history}
