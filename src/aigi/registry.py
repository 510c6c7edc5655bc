"""Name → implementation tables for detectors, backbones, datasets and degradations.

Entries are registered either eagerly (a decorator on the class) or lazily as a
``"module:attribute"`` string, so that importing :mod:`aigi` never imports an
optional dependency that only one method needs.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class RegistryError(KeyError):
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

# Lazy entries: the module is imported on first use only.
DETECTORS.register("univfd", "aigi.detectors.univfd:UnivFDProbe")
DETECTORS.register("univfd-knn", "aigi.detectors.univfd:UnivFDNearestNeighbour")
DETECTORS.register("ltd", "aigi.detectors.ltd:LTDDetector")
DETECTORS.register("mole", "aigi.detectors.mole:MoLEDetector")
DETECTORS.register("ensemble", "aigi.detectors.ensemble:EnsembleDetector")
DETECTORS.register("dgs", "aigi.detectors.dgs:DGSDetector")
DETECTORS.register("featdistill", "aigi.detectors.featdistill:FeatDistillExpert")
