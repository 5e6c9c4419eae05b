"""Fixed task suites for evaluation: the held-out suite and its quick subset."""

from __future__ import annotations

from tasks.base import Task
from tasks.heldout import HELDOUT, QUICK
from tasks.registry import get


def heldout_suite() -> list[Task]:
    """The 21 held-out tasks (see `tasks.heldout`), each with its ``default_steps`` budget."""
    return [get(name) for name in HELDOUT]


def quick_suite() -> list[Task]:
    """Five small held-out tasks (300-400 steps each): one optimizer runs them in under a minute."""
    return [get(name) for name in QUICK]
