"""Fixed task suites for evaluation: the held-out suite, its quick subset and the long suite."""

from __future__ import annotations

from tasks.base import Task
from tasks.heldout import HELDOUT, QUICK
from tasks.long import LONG
from tasks.registry import get

# Suite name -> its task names, in report order.
SUITES: dict[str, tuple[str, ...]] = {"heldout": tuple(HELDOUT), "quick": QUICK,
                                      "long": tuple(LONG)}


def suite(name: str) -> list[Task]:
    """The tasks of suite ``name`` (a `SUITES` key), each with its ``default_steps`` budget."""
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; choose one of: {', '.join(SUITES)}")
    return [get(task) for task in SUITES[name]]


def heldout_suite() -> list[Task]:
    """The 21 held-out tasks (see `tasks.heldout`), each with its ``default_steps`` budget."""
    return suite("heldout")


def quick_suite() -> list[Task]:
    """Five small held-out tasks (300-400 steps each): one optimizer runs them in under a minute."""
    return suite("quick")


def long_suite() -> list[Task]:
    """Ten cheap tasks at 3,000-10,000 steps (see `tasks.long`)."""
    return suite("long")
