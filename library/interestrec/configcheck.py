"""Type and range checks for the frozen config dataclasses, run in each one's ``__post_init__``.

Every field is checked against its annotation (``int``, ``float``, ``bool``, ``str``, ``X | None``,
``tuple[T, ...]``, nested config dataclasses), then against the ranges and choices the dataclass declares;
a failure is a :class:`ConfigError` that names the field as the user writes it (``encode.batch_size``), so
``--set encode.batch_size=abc`` stops with ``encode.batch_size must be an int, got 'abc' (str)``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import types
import typing
from collections.abc import Mapping
from typing import Any

import numpy as np

from interestrec.errors import InterestrecError


class ConfigError(InterestrecError, ValueError):
    """A configuration value or key is invalid."""


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def type_error(tp: Any, value: Any) -> str | None:
    """Why ``value`` is not of type ``tp`` (``None`` when it is). Unknown annotations accept anything."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return None
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = [type_error(a, value) for a in args if a is not type(None)]
        return None if any(e is None for e in errors) else " or ".join(e for e in errors if e)
    if tp is bool:
        return None if isinstance(value, bool) else "a bool"
    if tp is int:  # numpy integers are ints; a bool is not
        return None if isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_) else "an int"
    if tp is float:
        return None if isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_) else "a number"
    if tp is str:
        return None if isinstance(value, str) else "a string"
    if origin is tuple:
        if not isinstance(value, tuple):
            return "a list"
        args = typing.get_args(tp)
        elem = args[0] if len(args) == 2 and args[1] is Ellipsis else None
        if elem is not None:
            ok = all(type_error(elem, v) is None for v in value)
            return None if ok else f"a list of {getattr(elem, '__name__', elem)} values"
        if len(args) != len(value):
            return f"a list of {len(args)} values"
        return next((f"a list whose item {i} is {e}" for i, (a, v) in enumerate(zip(args, value))
                     if (e := type_error(a, v))), None)
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        return None if isinstance(value, Mapping) else "a mapping"
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return None if isinstance(value, tp) else f"a {tp.__name__}"
    return None


def check_config(cfg: Any, section: str, *, ge: Mapping[str, float] | None = None,
                 gt: Mapping[str, float] | None = None, le: Mapping[str, float] | None = None,
                 choices: Mapping[str, tuple] | None = None) -> None:
    """Check every field of the dataclass ``cfg`` against its annotation, then the given bounds.

    Args:
        cfg: a config dataclass instance (called from its ``__post_init__``).
        section: how the user names it: ``encode``, ``ingest.columns``; errors say ``section.field``.
        ge / gt / le: inclusive lower, exclusive lower and inclusive upper bounds by field name (``None``
            values are not bounded; NaN never passes a bound).
        choices: allowed values by field name (for tuple fields: of every element).

    Raises:
        ConfigError: the first field that fails, named, with the value it got.
    """
    hints = _hints(type(cfg))
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        why = type_error(hints.get(f.name, Any), value)
        if why is not None:
            raise ConfigError(f"{section}.{f.name} must be {why}, got {value!r} ({type(value).__name__})")
    for bounds, ok, word in ((ge, lambda v, b: v >= b, "≥"), (gt, lambda v, b: v > b, ">"), (le, lambda v, b: v <= b, "≤")):
        for name, bound in (bounds or {}).items():
            value = getattr(cfg, name)
            if value is None or isinstance(value, str):
                continue
            values = value if isinstance(value, tuple) else (value,)
            if any(math.isnan(v) or not ok(v, bound) for v in values):
                raise ConfigError(f"{section}.{name} must be {word} {bound}, got {value!r}")
    for name, allowed in (choices or {}).items():
        value = getattr(cfg, name)
        values = value if isinstance(value, tuple) else (value,)
        bad = [v for v in values if v not in allowed]
        if bad:
            raise ConfigError(f"{section}.{name} must be one of {list(allowed)}, got {bad[0]!r}")
