"""Reading recipes: YAML files with ``base:`` inheritance, and ``a.b=value`` overrides.

Paths that name another recipe (``base:``, ``experts:``) are relative to the
recipe file that names them; every other path in a recipe is relative to the
working directory (see :mod:`aigi.config.recipe`).

Values on the command line are parsed as YAML scalars, so ``train.lr=1e-4`` is a
float, ``data.limit=null`` is None and ``params.k=5`` an int.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Sequence

import yaml

from ..errors import ConfigError


class _Loader(yaml.SafeLoader):
    """PyYAML follows YAML 1.1, where ``1e-4`` (no dot) is a string; recipes mean a float."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)?(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def parse_yaml(text: str):
    return yaml.load(text, Loader=_Loader)


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Deep merge: mappings merge key by key, anything else is replaced."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def inherit(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """A recipe on top of its base. ``params`` belong to a detector: a recipe that names another
    detector than its base starts from none of the base's params (its data, view and training
    recipe are still inherited)."""
    if "detector" in update and update["detector"] != base.get("detector"):
        base = {k: v for k, v in base.items() if k != "params"}
    return merge(base, update)


def load_yaml(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read a recipe. ``base: other.yaml`` (relative to this file) inherits from
    another recipe, so an ablation is a few lines on top of the main one."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = parse_yaml(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    if isinstance(data.get("experts"), dict):  # an ensemble recipe: expert recipes by path, relative to this file
        data["experts"] = {name: _expert(path, r, _seen) for name, r in data["experts"].items()}
    base = data.pop("base", None)
    if base is None:
        return data
    base_path = (path.parent / str(base)).resolve()
    if base_path in _seen:
        raise ConfigError(f"{path}: 'base' chain loops back to {base_path}")
    return inherit(load_yaml(base_path, (*_seen, path.resolve())), data)


def _expert(path: Path, recipe: Any, seen: tuple[Path, ...]) -> Any:
    """An ensemble member: a recipe path, or an inline recipe that may name a ``base``."""
    if isinstance(recipe, str):
        return load_yaml(path.parent / recipe, (*seen, path.resolve()))
    if isinstance(recipe, dict) and "base" in recipe:
        inline = dict(recipe)
        return inherit(load_yaml(path.parent / str(inline.pop("base")), (*seen, path.resolve())), inline)
    return recipe


def apply_overrides(config: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``config`` with ``dotted.key=value`` assignments applied."""
    out = copy.deepcopy(config)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override '{item}' is not of the form key=value")
        try:
            value = parse_yaml(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override '{item}': '{part}' is not a section")
            node = child
        node[parts[-1]] = value
    return out


ENSEMBLE_KEYS = ("experts", "weights", "seeds", "output", "detector")  # an ensemble recipe's own keys: never shared with experts


def apply_recipe_overrides(config: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """:func:`apply_overrides`; in an ensemble recipe an override of a shared key
    (``train.epochs=1``) also reaches every expert, over the expert's own value."""
    out = apply_overrides(config, overrides)
    if isinstance(out.get("experts"), dict):
        shared = [o for o in overrides if o.partition("=")[0].strip().split(".")[0] not in ENSEMBLE_KEYS]
        out["experts"] = {name: apply_overrides(r, shared) if isinstance(r, dict) else r
                          for name, r in out["experts"].items()}
    return out


def resolve(path: str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    return apply_recipe_overrides(load_yaml(path), overrides)
