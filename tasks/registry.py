"""Named tasks: ``tasks.get(name)`` builds one, ``tasks.names()`` lists them."""

from __future__ import annotations

import functools
from collections.abc import Callable

from tasks.base import Task
from tasks.classification import classification_task
from tasks.digits import load_digits
from tasks.mlp import MLP


def _digits_mlp() -> Task:
    spec = {"family": "mlp", "dataset": "digits", "hidden": [128], "batch_size": 128, "seed": 0}
    model = MLP(hidden=tuple(spec["hidden"]), num_outputs=10)
    return classification_task("digits_mlp", spec, model, load_digits(spec["seed"]), 128)


_BUILDERS: dict[str, Callable[[], Task]] = {"digits_mlp": _digits_mlp}


def names() -> list[str]:
    """Sorted names of every registered task."""
    return sorted(_BUILDERS)


@functools.cache
def get(name: str) -> Task:
    """The task called ``name``; built once per process and shared, so compiled code is reused."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown task {name!r}; choose one of: {', '.join(names())}")
    return _BUILDERS[name]()
