"""Resumable training state as safetensors + JSON (never a pickle).

A checkpoint is a folder: ``state.safetensors`` holds every tensor (trainable
weights, optimiser moments, a teacher, a negative queue, RNG states) and
``state.json`` everything else (epoch, step, stage, history, optimiser
hyper-parameters). It is written to a temporary folder and renamed into place,
so a run killed while saving keeps its previous checkpoint intact.

A run keeps a series of them (:class:`Checkpoints`): ``<run>/checkpoint/step-<N>``,
the last ``train.keep_checkpoints`` kept, the newest complete one resumed from.
Why not accelerate's ``save_state``: it pickles the optimiser and the RNG
states (``optimizer.bin``, ``random_states_*.pkl``), and loading a pickle runs
code; these files hold only tensors and JSON.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..errors import AigiError

TENSORS_FILE = "state.safetensors"
META_FILE = "state.json"


class CheckpointError(AigiError, RuntimeError):
    """A checkpoint that cannot be resumed from; the message names the folder."""


def save_checkpoint(folder: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp / TENSORS_FILE))
    (tmp / META_FILE).write_text(json.dumps(meta, indent=1) + "\n")
    old = folder.with_name(folder.name + ".old")
    if folder.exists():
        if old.exists():
            shutil.rmtree(old)
        folder.rename(old)
    tmp.rename(folder)
    if old.exists():
        shutil.rmtree(old)
    return folder


def _complete(folder: Path) -> bool:
    """Written to the end: both files, or its previous version (a crash between the two renames)."""
    return (folder / META_FILE).is_file() or (folder.with_name(folder.name + ".old") / META_FILE).is_file()


class Checkpoints:
    """``<root>/step-<N>`` folders; the newest complete one is the run's state."""

    PREFIX = "step-"

    def __init__(self, root: str | Path, keep: int = 2) -> None:
        self.root, self.keep = Path(root), max(1, keep)

    def _steps(self) -> list[tuple[int, Path]]:
        found = []
        for path in self.root.glob(f"{self.PREFIX}*"):
            number = path.name[len(self.PREFIX):].split(".")[0]
            if number.isdigit() and not path.name.endswith(".tmp"):
                found.append((int(number), self.root / f"{self.PREFIX}{number}"))
        return sorted(set(found))

    def latest(self) -> Path | None:
        """The newest complete checkpoint (a save killed half-way left a ``.tmp`` folder, never a step)."""
        for _, path in reversed(self._steps()):
            if _complete(path):
                return path
        return None

    def save(self, step: int, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
        path = save_checkpoint(self.root / f"{self.PREFIX}{step:09d}", tensors, meta)
        complete = [p for _, p in self._steps() if _complete(p)]
        for old in complete[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        for stale in self.root.glob("*.tmp"):  # a save killed half-way, superseded now
            shutil.rmtree(stale, ignore_errors=True)
        return path

    def load(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        latest = self.latest()
        if latest is None:
            raise CheckpointError(f"{self.root}: no checkpoint to resume from")
        return load_checkpoint(latest)


def has_checkpoint(folder: str | Path) -> bool:
    """A run's checkpoint folder holds a complete checkpoint to resume from."""
    return Checkpoints(folder).latest() is not None


def load_checkpoint(folder: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    folder = Path(folder)
    if not (folder / META_FILE).is_file() and folder.with_name(folder.name + ".old").is_dir():
        folder = folder.with_name(folder.name + ".old")  # killed between the two renames
    try:
        meta = json.loads((folder / META_FILE).read_text())
        tensors = load_file(str(folder / TENSORS_FILE))
    except FileNotFoundError as exc:
        raise CheckpointError(f"{folder}: no checkpoint to resume from ({Path(exc.filename).name} missing)") from None
    except (json.JSONDecodeError, OSError, RuntimeError) as exc:
        raise CheckpointError(f"{folder}: unreadable checkpoint ({exc})") from None
    return tensors, meta


def prefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}{k}": v for k, v in tensors.items()}


def unprefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


# ---- optimiser ------------------------------------------------------------------------
def optimizer_state(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors keyed ``<param index>.<name>``; the param groups (numbers only) as JSON."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for index, state in sd["state"].items():
        for name, value in state.items():
            tensors[f"{index}.{name}"] = value if torch.is_tensor(value) else torch.tensor(value)
    return tensors, {"param_groups": sd["param_groups"]}


def load_optimizer_state(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        index, _, name = key.partition(".")
        state.setdefault(int(index), {})[name] = value
    groups = meta["param_groups"]
    if [len(g["params"]) for g in groups] != [len(g["params"]) for g in opt.param_groups]:
        raise CheckpointError("checkpoint optimiser does not match this model's trainable parameters")
    opt.load_state_dict({"state": state, "param_groups": groups})


# ---- random number generators ---------------------------------------------------------
def rng_state() -> dict[str, torch.Tensor]:
    out = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        out.update({f"cuda{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    return out


def load_rng_state(tensors: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted((k for k in tensors if k.startswith("cuda")), key=lambda k: int(k[4:]))]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
