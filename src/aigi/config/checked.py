"""Typed, checked configuration: a YAML mapping in, a filled dataclass out.

:func:`build` walks a dataclass's fields (nested dataclasses included) and
checks every key and value against the type hints before any work starts. An
unknown key names its full dotted path, the closest valid key and the valid
keys; a wrong type names the key, what was expected and what was given.
"""
from __future__ import annotations

import collections.abc
import dataclasses
import difflib
import inspect
import types
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from ..errors import ConfigError


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def closest(key: str, valid: list[str]) -> str | None:
    """The valid key a person most likely meant: a near spelling (``epoch`` → ``epochs``),
    initials (``learning_rate`` → ``lr``) or one part of a compound (``lr_rate`` → ``lr``)."""
    key = str(key).lower()
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    if close:
        return close[0]
    parts = [p for p in key.replace("-", "_").split("_") if p]
    for candidate in valid:
        if candidate == "".join(p[0] for p in parts) or candidate in parts:
            return candidate
        if len(key) >= 3 and (candidate.startswith(key) or key.startswith(candidate)):
            return candidate
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.45)
    return close[0] if close else None


def unknown_keys_error(where: str, unknown: list[str], valid: list[str]) -> ConfigError:
    """``unknown config keys: train.learning_rate (did you mean 'lr'?); valid in train: …``."""
    parts = []
    for key in unknown:
        guess = closest(str(key), valid)
        parts.append(_join(where, str(key)) + (f" (did you mean '{guess}'?)" if guess else ""))
    section = f"in {where}" if where else "at the top level"
    return ConfigError(f"unknown config keys: {', '.join(parts)}; valid {section}: {', '.join(valid)}")


def describe(tp: Any) -> str:
    """A type as a person reads it: ``int or null``, ``list of str``, ``one of fp32, bf16``."""
    origin, args = get_origin(tp), get_args(tp)
    if tp is type(None):
        return "null"
    if tp is Any:
        return "anything"
    if origin in (Union, types.UnionType):
        return " or ".join(describe(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(map(str, args))
    if origin in (list, tuple, collections.abc.Sequence):
        inner = [a for a in args if a is not Ellipsis]
        if origin is tuple and inner and Ellipsis not in args:
            return f"a list of {len(inner)} ({', '.join(describe(a) for a in inner)})"
        return f"a list of {describe(inner[0])}" if inner else "a list"
    if origin in (dict, collections.abc.Mapping):
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def _scalar(tp: type, value: Any, where: str) -> Any:
    ok = {bool: isinstance(value, bool),
          int: isinstance(value, int) and not isinstance(value, bool),
          float: isinstance(value, (int, float)) and not isinstance(value, bool),
          str: isinstance(value, str)}.get(tp)
    if ok is None:  # a type we do not check structurally (a class, a tensor): trust the caller
        return value
    if not ok:
        raise ConfigError(f"{where}: expected {describe(tp)}, got {value!r} ({type(value).__name__})")
    return float(value) if tp is float else value


def coerce(tp: Any, value: Any, where: str) -> Any:
    """``value`` checked against ``tp`` (ints widen to floats, lists to tuples where asked)."""
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any or tp is inspect.Parameter.empty:
        return value
    if dataclasses.is_dataclass(tp):
        return build(tp, value, where)
    if origin in (Union, types.UnionType):
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"{where}: expected {describe(tp)}, got null")
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:  # `X | None`: X's own error says more than "expected X or null"
            return coerce(options[0], value, where)
        for option in options:
            try:
                return coerce(option, value, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: expected {describe(tp)}, got {value!r}")
    if value is None:
        raise ConfigError(f"{where}: expected {describe(tp)}, got null")
    if origin is Literal:
        if value in args:
            return value
        guess = closest(str(value), [str(a) for a in args])
        hint = f" (did you mean '{guess}'?)" if guess else ""
        raise ConfigError(f"{where}: must be {describe(tp)}, not {value!r}{hint}")
    if origin in (list, tuple, collections.abc.Sequence):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected {describe(tp)}, got {value!r}")
        if origin is tuple and args and Ellipsis not in args:
            if len(value) != len(args):
                raise ConfigError(f"{where}: expected {describe(tp)}, got {len(value)} values")
            return tuple(coerce(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        inner = args[0] if args else Any
        items = [coerce(inner, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin in (dict, collections.abc.Mapping):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        inner = args[1] if len(args) == 2 else Any
        return {k: coerce(inner, v, _join(where, str(k))) for k, v in value.items()}
    if isinstance(tp, type):
        return _scalar(tp, value, where)
    return value


def build(cls: type, data: Any, where: str = "") -> Any:
    """An instance of dataclass ``cls`` from a mapping; missing keys take the defaults."""
    if isinstance(data, cls):
        return data
    if data is None:
        data = {}
    fields = [f for f in dataclasses.fields(cls) if f.init]
    names = [f.name for f in fields]
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping with keys {', '.join(names)}; got {data!r}")
    unknown = [k for k in data if k not in names]
    if unknown:
        raise unknown_keys_error(where, unknown, names)
    hints = get_type_hints(cls)
    values = {k: coerce(hints.get(k, Any), v, _join(where, k)) for k, v in data.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{where or 'config'}: {exc}") from None


def plain(obj: Any) -> Any:
    """A dataclass (or nested values) as YAML/JSON-ready built-ins: tuples become lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj


def signature_dataclass(func: Any, name: str, skip: tuple[str, ...] = ()) -> type:
    """A dataclass whose fields are ``func``'s keyword parameters, typed by its hints.

    A detector's constructor *is* its params schema: this turns it into a
    dataclass, so ``params:`` is checked like every other section without a second
    list of names and defaults to keep in step.
    """
    hints = get_type_hints(func)
    fields = []
    for pname, param in inspect.signature(func).parameters.items():
        if pname in ("self", *skip) or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        default = param.default
        if default is inspect.Parameter.empty:
            spec = dataclasses.field()
        elif isinstance(default, (list, dict, set)):
            spec = dataclasses.field(default_factory=lambda d=default: type(d)(d))
        else:
            spec = dataclasses.field(default=default)
        fields.append((pname, hints.get(pname, Any), spec))
    return dataclasses.make_dataclass(name, fields)
