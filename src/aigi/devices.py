"""Checking a device name before any work: ``--device banana`` or ``cuda`` on a
CPU-only torch fail with one line naming the value, not deep inside a model."""
from __future__ import annotations

from .errors import InputError


def check_device(name: str) -> str:
    """``name`` if torch can use it here; otherwise an InputError that says why."""
    if name == "cpu":  # the common case costs no torch import
        return name
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise InputError(f"device '{name}': not a device name (cpu, cuda, cuda:1, mps …)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device '{name}': this torch has no usable CUDA GPU (a CPU-only build, or no GPU "
                             "visible); use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(f"device '{name}': only {torch.cuda.device_count()} CUDA device(s) here")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"device '{name}': Apple MPS is not available here; use --device cpu")
    elif device.type not in ("cpu", "cuda", "mps", "xpu"):
        raise InputError(f"device '{name}': aigi runs on cpu, cuda or mps")
    return name
