"""The evaluation protocol: which runs are made, and how a baseline's learning rate is chosen.

Every hand-designed optimizer is tuned over a log-spaced learning-rate grid centred on its default
and judged at the rate with the lowest smoothed final training loss (mean over seeds); the learned
optimizer and the learning-rate-free methods run once per seed at their defaults. Adam is always
run: it is the reference of the speed-up, over a horizon ``reference_factor`` times the budget.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

import tasks
from velo import baselines, optimizers

REFERENCE = "adam"
# The second reference, when run: the warmup + cosine recipe people train with.
COSINE = "adamw_cosine"
REFERENCES = (REFERENCE, COSINE)
MIN_GRID = 7
# Methods that set their own step size: run at their defaults, as the learned optimizer is.
LEARNING_RATE_FREE = frozenset({"cocob", "dadapt_adamw", "dog", "mechanic", "prodigy"})
# The fields under which sweeps are comparable: a results directory holds sweeps of one setting.
COMPARABLE = ("steps", "seeds", "grid_size", "grid_ratio", "ema_decay", "reference_factor")
# A budget must hold this many smoothing windows (1 / (1 - ema_decay) steps each), or the final
# smoothed loss would still remember the first steps of the run.
MIN_WINDOWS = 5


@dataclasses.dataclass(frozen=True)
class Protocol:
    """What one evaluation runs. Only the `COMPARABLE` fields are the identity of a results
    directory: the suite, the optimizers and the checkpoint may change between runs into it.

    Attributes:
      suite: a `tasks.SUITES` name (``"heldout"``, ``"quick"``, ``"long"``), or comma-separated
        task names (``tasks.names()``).
      optimizers: names from `velo.optimizers.names()`; ``"adam"`` is added first if missing.
      steps: step budget of every task; ``None`` uses each task's ``default_steps``.
      seeds: runs per optimizer and learning rate, with seeds ``0..seeds-1``.
      grid_size: learning rates per tuned optimizer, at least 7.
      grid_ratio: factor between neighbouring learning rates of the grid.
      ema_decay: EMA factor smoothing the training curves (VeLO: 0.95).
      reference_factor: Adam runs this many times the budget, so speed-ups up to this are measured.
      checkpoint: learned-optimizer checkpoint (path, shipped name, ``"init"`` or
        ``"init:PRESET"``); the default when ``None``.
      hparams: optimizer name -> further hyperparameters it is built with (``--set
        adamw_cosine.weight_decay=0.1``); part of that optimizer's sweep identity.
    """

    suite: str
    optimizers: tuple[str, ...]
    steps: int | None = None
    seeds: int = 3
    grid_size: int = 9
    grid_ratio: float = math.sqrt(10.0)
    ema_decay: float = 0.95
    reference_factor: int = 2
    checkpoint: str | None = None
    hparams: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        names = tuple(dict.fromkeys(self.optimizers))  # drop repeats, keep order
        if REFERENCE not in names:
            names = (REFERENCE, *names)
        object.__setattr__(self, "optimizers", names)

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "optimizers": list(self.optimizers)}

    def comparable(self) -> dict:
        """The `COMPARABLE` fields: what a results directory's sweeps were all made under."""
        return {k: getattr(self, k) for k in COMPARABLE}


def check(protocol: Protocol) -> None:
    """Raise ValueError naming the first bad field of ``protocol`` and how to fix it."""
    known = optimizers.names()
    unknown = [n for n in protocol.optimizers if n not in known]
    if unknown:
        raise ValueError(f"unknown optimizer {unknown[0]!r}; choose from: {', '.join(known)}")
    if protocol.checkpoint is not None and optimizers.LEARNED not in protocol.optimizers:
        raise ValueError(f"--checkpoint is for the learned optimizer: add "
                         f"{optimizers.LEARNED!r} to --optimizers or drop --checkpoint")
    for name, hparams in protocol.hparams.items():
        check_hparams(name, hparams, protocol)
    if protocol.seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {protocol.seeds}")
    if protocol.grid_size < MIN_GRID:
        raise ValueError(f"grid_size must be >= {MIN_GRID} for a fair tuning, got "
                         f"{protocol.grid_size}")
    if not protocol.grid_ratio > 1.0:
        raise ValueError(f"grid_ratio must be > 1, got {protocol.grid_ratio}")
    if not 0.0 <= protocol.ema_decay < 1.0:
        raise ValueError(f"ema_decay must be in [0, 1), got {protocol.ema_decay}")
    if protocol.reference_factor < 1:
        raise ValueError(f"reference_factor must be >= 1, got {protocol.reference_factor}")
    if protocol.steps is not None:
        check_budget(protocol.steps, protocol.ema_decay)


def check_hparams(name: str, hparams: dict[str, Any], protocol: Protocol) -> None:
    """Raise ValueError when ``--set`` hyperparameters of ``name`` do not apply: another
    optimizer, the tuned learning rate, or a key or value the optimizer rejects."""
    if name not in protocol.optimizers:
        raise ValueError(f"--set {name}.KEY=VALUE: {name!r} is not among --optimizers "
                         f"({', '.join(protocol.optimizers)})")
    if "learning_rate" in hparams and is_tuned(name):
        raise ValueError(f"--set {name}.learning_rate: {name}'s learning rate is tuned over the "
                         f"grid; drop it")
    optimizers.make(name, 100, hparams=hparams)  # the optimizer validates its own settings


def check_budget(steps: int, ema_decay: float) -> None:
    """Raise ValueError when ``steps`` is too short for the smoothing window of ``ema_decay``."""
    window = 1.0 / (1.0 - ema_decay)
    needed = math.ceil(MIN_WINDOWS * window)
    if steps < needed:
        raise ValueError(
            f"a budget of {steps} steps is too small for the EMA smoothing (decay {ema_decay}, "
            f"a window of ~{window:.0f} steps): use --steps >= {needed}"
        )


def suite_tasks(suite: str) -> list[tasks.Task]:
    """The tasks of ``suite``: a named suite or comma-separated task names."""
    if suite in tasks.SUITES:
        return tasks.suite(suite)
    names = [n.strip() for n in suite.split(",") if n.strip()]
    known = tasks.names()
    bad = [n for n in names if n not in known]
    if bad or not names:
        raise ValueError(
            f"unknown suite {suite!r}; use {', '.join(tasks.SUITES)}, or task names from "
            f"`velo tasks list` separated by commas"
        )
    return [tasks.get(n) for n in names]


def budget(protocol: Protocol, task: tasks.Task) -> int:
    """The step budget of ``task`` under ``protocol``."""
    return protocol.steps if protocol.steps is not None else task.default_steps


def is_tuned(name: str) -> bool:
    """Whether optimizer ``name`` gets a learning-rate grid: hand-designed and not one of the
    learning-rate-free methods (whose ``learning_rate``, if any, is a multiplier left at 1)."""
    if name == optimizers.LEARNED or name in LEARNING_RATE_FREE:
        return False
    return "learning_rate" in baselines.defaults(name)


def learning_rates(name: str, protocol: Protocol) -> list[float] | None:
    """The ``grid_size`` log-spaced learning rates of ``name`` around its default; None if untuned.

    The default sits in the middle of the grid (one above the middle when the size is even).
    """
    if not is_tuned(name):
        return None
    centre = baselines.defaults(name)["learning_rate"]
    offsets = np.arange(protocol.grid_size) - protocol.grid_size // 2
    return [float(centre * protocol.grid_ratio**k) for k in offsets]


def baseline_identity(name: str, protocol: Protocol) -> str:
    """What a hand-designed optimizer's sweep was run with: its name, learning-rate grid and
    ``--set`` hyperparameters (`settings`); the budget a schedule decays over is the task's."""
    rates = learning_rates(name, protocol)
    run = f"{name} untuned" if rates is None else f"{name} at learning rates {rates}"
    return run + settings(name, protocol)


def settings(name: str, protocol: Protocol) -> str:
    """``" with weight_decay=0.1"`` for ``--set`` hyperparameters of ``name``, else ``""``."""
    hparams = protocol.hparams.get(name)
    if not hparams:
        return ""
    return " with " + ", ".join(f"{k}={v!r}" for k, v in sorted(hparams.items()))


def select(final_losses: np.ndarray, diverged: np.ndarray) -> int:
    """Index of the best learning rate: lowest smoothed final loss among the runs that did not
    diverge (ties go to the smaller rate); the lowest loss overall if every rate diverged.

    Args:
      final_losses: ``[L]`` seed-mean smoothed final training loss per learning rate.
      diverged: ``[L]`` bool, any seed of that learning rate diverged.
    """
    loss = np.where(np.isfinite(final_losses), final_losses, np.inf)
    if not diverged.all():
        loss = np.where(diverged, np.inf, loss)
    return int(np.argmin(loss))

