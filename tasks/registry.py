"""Named tasks and tasks by spec: ``get(name)``, ``names()``, ``build(spec)``, all cached."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tasks.base import Task
from tasks.build import DEFAULT_STEPS, make_task
from tasks.heldout import HELDOUT
from tasks.long import LONG
from tasks.spec import TaskSpec

DIGITS_MLP = TaskSpec("mlp", "digits8", {"hidden": [128], "activation": "relu"}, 128)

NAMED: dict[str, tuple[TaskSpec, int]] = {"digits_mlp": (DIGITS_MLP, 2000), **HELDOUT, **LONG}
_NAME_OF = {spec: name for name, (spec, _) in NAMED.items()}


def names() -> list[str]:
    """Sorted names of every named task: ``digits_mlp``, the held-out and the long suite."""
    return sorted(NAMED)


def get(name: str) -> Task:
    """The task called ``name``; built once per process and shared, so compiled code is reused."""
    if name not in NAMED:
        raise ValueError(f"unknown task {name!r}; choose one of: {', '.join(names())}")
    spec, steps = NAMED[name]
    return make_task(spec, name, steps)


def build(spec: TaskSpec | Mapping[str, Any]) -> Task:
    """The task for ``spec`` (a `TaskSpec` or its JSON dict); the same spec gives the same object.

    A spec equal to a named task's gives that task (with its name and step budget); any other
    is named by `TaskSpec.short_name` with a budget of 1,000 steps.
    """
    if not isinstance(spec, TaskSpec):
        spec = TaskSpec.from_dict(spec)
    if spec in _NAME_OF:
        return get(_NAME_OF[spec])
    return make_task(spec, spec.short_name(), DEFAULT_STEPS)
