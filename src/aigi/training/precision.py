"""Mixed precision for a trainer's forward pass (``train.precision``)."""
from __future__ import annotations

from contextlib import nullcontext

import torch

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


def autocast(precision: str, device: torch.device):
    """bf16 autocast (it needs no loss scaling); fp32 is a no-op."""
    dtype = PRECISIONS[precision]
    return torch.autocast(device_type=device.type, dtype=dtype) if dtype else nullcontext()
