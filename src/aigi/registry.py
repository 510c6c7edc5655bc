"""Name → implementation tables: detectors, backbone architectures, trainers, method reports.

Entries are registered either eagerly (a decorator on the class) or lazily as a
``"module:attribute"`` string, so that importing :mod:`aigi` never imports an
optional dependency that only one method needs.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable, Generic, Iterator, TypeVar

from .errors import AigiError

T = TypeVar("T")


class RegistryError(AigiError, KeyError):
    """Unknown or duplicate name; the message lists what is available."""

    def __str__(self) -> str:  # KeyError quotes its message; we want plain text
        return str(self.args[0]) if self.args else ""


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T | str] = {}
        self._specs: dict[str, T | str] = {}  # as registered, before a lazy string is resolved

    def register(self, name: str, obj: T | str | None = None) -> Callable[[T], T] | T:
        """Register ``obj`` under ``name``; without ``obj`` acts as a decorator."""

        def add(target: T | str) -> Any:
            known = self._specs.get(name)
            if known is not None and known is not target and not (isinstance(target, str) and known == target):
                raise RegistryError(f"{self.kind} '{name}' is already registered")
            if known is None:
                self._entries[name] = self._specs[name] = target
            return target

        return add(obj) if obj is not None else add

    def get(self, name: str) -> T:
        try:
            entry = self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise RegistryError(f"unknown {self.kind} '{name}' (known: {known})") from None
        if isinstance(entry, str):
            module, _, attr = entry.partition(":")
            entry = getattr(importlib.import_module(module), attr)
            self._entries[name] = entry
        return entry  # type: ignore[return-value]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


DETECTORS: Registry[Any] = Registry("detector")
BACKBONES: Registry[Any] = Registry("backbone architecture")
TRAINERS: Registry[Any] = Registry("trainer")  # name → fn(detector, train samples, val samples, TrainContext) → summary
REPORTS: Registry[Any] = Registry("report")  # detector name → fn(detector, folder, val features, labels, history) → files

# Built-in entries, lazy: a method's module is imported the first time its name is asked for.
# A new method adds its lines here, or registers itself from its own module (see tests/test_extension.py).
DETECTORS.register("univfd", "aigi.methods.univfd:UnivFDProbe")
DETECTORS.register("univfd-knn", "aigi.methods.univfd:UnivFDNearestNeighbour")
DETECTORS.register("univfd-layers", "aigi.methods.univfd:UnivFDLayers")
DETECTORS.register("ltd", "aigi.methods.ltd.model:LTDDetector")
DETECTORS.register("mole", "aigi.methods.mole.model:MoLEDetector")
DETECTORS.register("dgs", "aigi.methods.dgs.model:DGSDetector")
DETECTORS.register("featdistill", "aigi.methods.featdistill.model:FeatDistillExpert")
DETECTORS.register("ensemble", "aigi.detectors.ensemble:EnsembleDetector")

TRAINERS.register("features", "aigi.training.features:train_features")
TRAINERS.register("pixels", "aigi.training.pixels:train_pixels")
TRAINERS.register("bank", "aigi.methods.univfd:fit_bank")
TRAINERS.register("two_stage", "aigi.methods.featdistill.trainer:train_two_stage")
TRAINERS.register("dgs", "aigi.methods.dgs.trainer:train_dgs")

REPORTS.register("ltd", "aigi.methods.ltd.report:write_report")
REPORTS.register("mole", "aigi.methods.mole.report:write_report")

# What computes a loaded detector's logits (aigi.runtimes): name → fn(detector, folder)
RUNTIMES: Registry[Any] = Registry("runtime")
RUNTIMES.register("torch", "aigi.runtimes.torch_modules:attach")
RUNTIMES.register("onnxruntime", "aigi.runtimes.onnx:attach")

# Where `aigi detect --engine NAME` scores beyond one process (aigi.engines): name → fn(paths,
# detector, out, batch_size, address, actors, device, precision, runtime, log) → counts.
# The default engine, "local", is aigi.scoring.
ENGINES: Registry[Any] = Registry("engine")
ENGINES.register("ray", "aigi.engines.ray_data:detect_ray")
