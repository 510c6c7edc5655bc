"""Image pre-processing for CLIP / SigLIP towers, without torchvision.

The resize runs in Pillow because the models' own processors resize in Pillow
(bicubic, with Pillow's antialiasing): doing the same keeps our pixels equal to
the reference to within one grey level. Crop, rescale and normalisation run on
the whole batch at once as tensor ops.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Literal, Sequence

import numpy as np
import torch
from PIL import Image

_RESAMPLE = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
}

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class PreprocessSpec:
    """How a tower expects its pixels.

    ``resize_mode="shortest_edge"`` scales the shorter side to ``size`` and then
    centre-crops ``crop`` (CLIP); ``"exact"`` resizes straight to
    ``size × size`` without a crop (SigLIP).
    """

    size: int = 224
    crop: int | None = 224
    resize_mode: Literal["shortest_edge", "exact"] = "shortest_edge"
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    resample: str = "bicubic"

    @property
    def output_size(self) -> int:
        return self.crop if (self.crop and self.resize_mode == "shortest_edge") else self.size

    def fingerprint(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    @classmethod
    def from_hf_processor_config(cls, cfg: dict) -> "PreprocessSpec":
        """Read a ``preprocessor_config.json`` dict (CLIP or SigLIP style)."""
        size = cfg.get("size", 224)
        resample = {3: "bicubic", 2: "bilinear", 0: "nearest", 1: "lanczos"}.get(cfg.get("resample", 3), "bicubic")
        mean = tuple(cfg.get("image_mean", CLIP_MEAN))
        std = tuple(cfg.get("image_std", CLIP_STD))
        if isinstance(size, dict) and "shortest_edge" in size:
            crop = cfg.get("crop_size", size["shortest_edge"]) if cfg.get("do_center_crop", True) else None
            if isinstance(crop, dict):
                crop = crop["height"]
            return cls(int(size["shortest_edge"]), crop, "shortest_edge", mean, std, resample)  # type: ignore[arg-type]
        edge = size["height"] if isinstance(size, dict) else int(size)
        return cls(int(edge), None, "exact", mean, std, resample)  # type: ignore[arg-type]


# An intermediate image longer than this many output sizes is never made: a 1 × 10,000 strip
# would otherwise be resized to 224 × 2,240,000 before its centre crop is taken.
_MAX_INTERMEDIATE = 4


def _resize(image: Image.Image, spec: PreprocessSpec) -> Image.Image:
    """Resize as the reference processors do, at a cost bounded by the output size whatever the
    aspect ratio: only the span of the long side that the centre crop keeps is resampled."""
    resample = _RESAMPLE[spec.resample]
    w, h = image.size
    if spec.resize_mode == "exact":
        if max(w, h) > _MAX_INTERMEDIATE * spec.size:  # reduce by whole factors first: bounded memory
            return image.resize((spec.size, spec.size), resample=resample, reducing_gap=2.0)
        return image.resize((spec.size, spec.size), resample=resample)
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(spec.size * long / short)  # same rounding as the HF processors
    if spec.crop and new_long > _MAX_INTERMEDIATE * max(spec.size, spec.crop):
        # the same sampling positions as resizing everything and cropping the centre: the box's
        # scale is long / new_long and it starts where the crop starts
        keep = min(spec.crop, new_long)
        start, step = (new_long - keep) // 2, long / new_long
        if w <= h:
            return image.resize((spec.size, keep), resample=resample, box=(0, start * step, w, (start + keep) * step))
        return image.resize((keep, spec.size), resample=resample, box=(start * step, 0, (start + keep) * step, h))
    new_size = (spec.size, new_long) if w <= h else (new_long, spec.size)
    return image.resize(new_size, resample=resample)


def _centre_crop(batch: torch.Tensor, crop: int) -> torch.Tensor:
    h, w = batch.shape[-2:]
    if h < crop or w < crop:  # pad like the reference processor does, then crop
        pad_h, pad_w = max(crop - h, 0), max(crop - w, 0)
        batch = torch.nn.functional.pad(batch, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
        h, w = batch.shape[-2:]
    top, left = (h - crop) // 2, (w - crop) // 2
    return batch[..., top : top + crop, left : left + crop]


def preprocess_one(image: Image.Image, spec: PreprocessSpec) -> torch.Tensor:
    """One RGB PIL image → its uint8 ``[3, S, S]`` tensor (resized and cropped, not yet normalised).
    Callers that must survive one bad image preprocess image by image with this."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    t = torch.from_numpy(np.asarray(_resize(image, spec), dtype=np.uint8).copy()).permute(2, 0, 1)
    if spec.resize_mode == "shortest_edge" and spec.crop:
        t = _centre_crop(t, spec.crop)
    return t


def normalise(batch: torch.Tensor, spec: PreprocessSpec) -> torch.Tensor:
    """uint8 ``[B, 3, S, S]`` → the tower's normalised float input, in one op."""
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 3, 1, 1)
    return (batch.float().div_(255.0) - mean) / std


def preprocess(images: Sequence[Image.Image], spec: PreprocessSpec) -> torch.Tensor:
    """RGB PIL images → normalised float tensor ``[B, 3, S, S]``.

    Images of different sizes are resized one by one, cropped, then stacked and
    normalised in one op.
    """
    if len(images) == 0:
        return torch.empty(0, 3, spec.output_size, spec.output_size)
    return normalise(torch.stack([preprocess_one(image, spec) for image in images]), spec)


def prepare(images: Sequence[Image.Image], spec: PreprocessSpec) -> tuple[torch.Tensor, list[int], dict[int, str]]:
    """Like :func:`preprocess`, but one image that cannot be prepared (out of memory, a mode
    Pillow cannot resample) is left out instead of failing the batch: returns the pixels of the
    others, their indices, and index → one-line cause for the rest."""
    done, kept, failed = [], [], {}
    for i, image in enumerate(images):
        try:
            done.append(preprocess_one(image, spec))
            kept.append(i)
        except (MemoryError, OSError, ValueError) as exc:
            kind = "out of memory" if isinstance(exc, MemoryError) else "cannot resize"
            failed[i] = f"{kind} while preparing the image ({' '.join(str(exc).split()) or type(exc).__name__})"
    pixels = normalise(torch.stack(done), spec) if done else torch.empty(0, 3, spec.output_size, spec.output_size)
    return pixels, kept, failed
