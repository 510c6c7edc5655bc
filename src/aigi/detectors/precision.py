"""Inference precision: ``fp32`` (the reference), ``bf16`` (the forward pass under autocast, a
frozen tower's Linear weights held in bf16), ``int8`` (dynamic quantisation of the tower's
Linear layers: int8 weights, activations quantised per batch) and ``auto`` (bf16 where it is
native, else fp32), the default of ``detect`` and ``serve`` unless ``$AIGI_PRECISION`` says otherwise.

Which one is fastest depends on the CPU: bf16 pays off with native bf16 units (AVX512-BF16,
AMX) and is emulated, slower than fp32, elsewhere; int8 uses the VNNI dot products where they
exist and AVX2 otherwise. Scores move a little with either: ``benchmarks/throughput.py``
measures the speed and the AUC of each on the same images, so that speed is never bought
with accuracy silently. Training always runs in fp32 (or ``train.precision``).
"""
from __future__ import annotations

import contextlib
import logging
import os
import warnings
from typing import TYPE_CHECKING, Any, ContextManager

from ..errors import InputError

if TYPE_CHECKING:  # torch is imported where it is used: `aigi detect` checks its flags before loading it
    import torch

PRECISIONS = ("fp32", "bf16", "int8", "auto")  # auto: bf16 where the device computes it natively, else fp32
log = logging.getLogger("aigi.precision")


def check_choice(precision: str, runtime: str = "torch") -> None:
    """Refuse an unknown precision or runtime, or a pair that does not go together, before loading."""
    from ..registry import RUNTIMES

    if precision not in PRECISIONS:
        raise InputError(f"unknown precision '{precision}' (valid: {', '.join(PRECISIONS)})")
    if runtime not in RUNTIMES:
        raise InputError(f"unknown runtime '{runtime}' (valid: {', '.join(RUNTIMES.names())})")
    if runtime != "torch" and precision != "fp32":
        raise InputError(f"--precision is for the torch runtime; an {runtime} graph has its precision from "
                         "export (aigi export --format onnx --int8)")


def default_precision(runtime: str = "torch") -> str:
    """What scoring uses when no precision is named: ``$AIGI_PRECISION``, else ``auto`` (the
    fastest path this machine computes without losing AUC: bf16 where it is native, else fp32).
    An exported graph has the precision it was exported with."""
    if runtime != "torch":
        return "fp32"
    value = os.environ.get("AIGI_PRECISION") or "auto"
    if value not in PRECISIONS:
        raise InputError(f"AIGI_PRECISION={value}: unknown precision (valid: {', '.join(PRECISIONS)})")
    return value


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo; empty elsewhere: auto then keeps fp32)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def choose(detector: Any) -> str:
    """What ``auto`` means here: bf16 where it is native (a GPU that has it, a CPU with AMX or
    AVX512-BF16: 2.5x fp32's speed at the same AUC in benchmarks/throughput.py), else fp32.
    Never int8: dynamic quantisation of the tower costs CLIP ViT-B/16 0.2 AUC there (its
    activations have outlier channels that one per-tensor int8 scale cannot hold); for int8
    speed use the exported graph (--runtime onnxruntime, export --int8), which keeps the AUC."""
    import torch

    if detector.device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if {"amx_bf16", "avx512_bf16"} & cpu_flags() and native_bf16():
        return "bf16"
    return "fp32"


def native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (otherwise autocast emulates it, slowly)."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast(precision: str, device: "torch.device") -> ContextManager:
    if precision == "bf16":
        import torch

        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def store_tower_in_bf16(detector: Any) -> None:
    """Hold the frozen tower's Linear weights in bf16. Autocast casts them to bf16 for every
    matmul anyway, so the scores are the same; holding them in bf16 halves the tower's memory
    (CLIP B/16: 328 → 164 MB), the embedded tower is read straight into bf16, and autocast is
    spared its per-call weight copies. Norms and embeddings stay fp32, as autocast computes them.
    One way: the fp32 values are gone (load the detector again for fp32)."""
    import torch

    detector.hold_tower_in(torch.bfloat16)
    object.__setattr__(detector, "_tower_in_bf16", True)


def set_precision(detector: Any, precision: str) -> None:
    """Switch a loaded detector's inference precision (int8 cannot be undone: load it again)."""
    check_choice(precision)
    if precision == "auto":
        precision = choose(detector)
        log.info("precision auto: %s on this machine", precision)
    for member in detector.experts():
        _apply(member, precision)
    detector.precision = precision


def _apply(detector: Any, precision: str) -> None:
    if precision == "bf16" and detector.device.type == "cpu" and not native_bf16():
        log.warning("this CPU has no native bf16: autocast emulates it, slower than fp32 here")
    if getattr(detector, "_tower_in_bf16", False) and precision != "bf16":
        raise InputError(f"'{detector.name}' holds its tower in bf16 now; load it again for {precision}")
    if precision == "bf16" and not detector.embeds_backbone:
        store_tower_in_bf16(detector)
    if precision != "int8" or detector.precision == "int8":
        detector.precision = precision
        return
    if detector.device.type != "cpu":
        raise InputError("int8 is for CPUs (dynamic quantisation); on a GPU use bf16")
    if detector.embeds_backbone:
        raise InputError(f"int8 needs a frozen tower; '{detector.name}' adapts its own (merge and export it, or use bf16)")
    import torch

    log.warning("int8 dynamic quantisation costs CLIP towers accuracy (0.2 AUC for ViT-B/16 in "
                "benchmarks/throughput.py); the exported int8 graph (--runtime onnxruntime) keeps it")
    with warnings.catch_warnings():  # torch.ao.quantization warns that it is moving to torchao
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic

        quantize_dynamic(detector.backbone, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
    detector.precision = precision
