"""The processes a run trains on, through Hugging Face accelerate.

``aigi train`` alone is one process; ``accelerate launch --num_processes N -m aigi
train`` is N, on GPUs (NCCL) or CPUs (gloo), on one machine or several. Each
process holds the whole model and computes on its share of every global batch
(:mod:`.loop`); :func:`sum_gradients` then adds the trainable gradients across
processes, which is the all-reduce DDP performs, done once per optimiser step.

Why not DDP's module wrapper: its hooks only see gradients that flow from a
call of the wrapped module's ``forward``. Heads trained on cached features
(``head_from_features``) and DGS-Net's surgery (``f.backward(g)`` with a hand-made
gradient) never make that call, and would silently train unsynchronised.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from ..errors import ConfigError

MIXED_PRECISION = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}  # train.precision → accelerate's name


def make_accelerator(precision: str, device: str) -> Any:
    """The accelerator of this process. accelerate keeps one state per process: a second run
    in the same process (an ensemble's experts, a test) may change the precision only when the
    process is alone."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, PartialState

    mixed = MIXED_PRECISION[precision]
    if AcceleratorState._shared_state and AcceleratorState().mixed_precision != mixed:
        if PartialState().num_processes > 1:
            raise ConfigError(f"train.precision: this launch runs in {AcceleratorState().mixed_precision} on "
                              f"{PartialState().num_processes} processes; a recipe in it cannot ask for {precision}")
        AcceleratorState._reset_state(reset_partial_state=True)
    try:
        return Accelerator(mixed_precision=mixed, cpu=device == "cpu")
    except ValueError as exc:  # fp16 where no device computes it
        raise ConfigError(f"train.precision: {precision} is not available here ({exc})") from None


def device_for(accelerator: Any, requested: str) -> torch.device:
    """The recipe's device on one process; each process's own device under a multi-process launch."""
    return accelerator.device if accelerator.num_processes > 1 else torch.device(requested)


def sum_gradients(accelerator: Any, params: Sequence[torch.nn.Parameter]) -> None:
    """Add every process's gradients of ``params`` (one all-reduce over a flat buffer). A process
    whose share of the batch was unreadable still joins, with zeros."""
    if accelerator.num_processes == 1 or not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1).float() for g in grads])
    torch.distributed.all_reduce(flat, op=torch.distributed.ReduceOp.SUM)
    start = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = flat[start : start + n].view_as(g).to(g.dtype)
        start += n


def gather_list(accelerator: Any, item: Any) -> list[Any]:
    """``[item of process 0, item of process 1, …]`` on every process."""
    if accelerator.num_processes == 1:
        return [item]
    from accelerate.utils import gather_object

    return gather_object([item])
