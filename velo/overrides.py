"""``--set key=value`` overrides: parsed from the command line, checked against a config."""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Iterable
from typing import Any


def parse(pairs: Iterable[str]) -> dict[str, Any]:
    """``["lr=3e-4", "name=adam"]`` -> ``{"lr": 3e-4, "name": "adam"}``.

    Values are Python literals where they parse as one (numbers, tuples, booleans), else strings.
    """
    out = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"bad override {pair!r}: expected key=value")
        try:
            out[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            out[key] = raw
    return out


def apply(config, overrides: dict[str, Any]):
    """A copy of the frozen dataclass ``config`` with ``overrides`` applied.

    Each value must have the type of the field it replaces (ints are accepted for floats, lists
    for tuples); an unknown key or a wrong type raises `ValueError` naming the valid fields.
    """
    fields = {f.name: f for f in dataclasses.fields(config)}
    changes = {}
    for key, value in overrides.items():
        if key not in fields:
            raise ValueError(f"unknown config key {key!r}; valid keys: {', '.join(sorted(fields))}")
        changes[key] = _coerce(key, value, getattr(config, key))
    return dataclasses.replace(config, **changes)


def _coerce(key: str, value: Any, current: Any) -> Any:
    if isinstance(current, bool):
        ok = isinstance(value, bool)
    elif isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    elif isinstance(current, tuple) and isinstance(value, (list, tuple)):
        return tuple(value)
    elif current is None:
        ok = True
    else:
        ok = isinstance(value, type(current)) and not isinstance(value, bool)
    if not ok:
        raise ValueError(
            f"bad value for {key!r}: {value!r} is a {type(value).__name__}, "
            f"expected a {type(current).__name__} like {current!r}"
        )
    return value
