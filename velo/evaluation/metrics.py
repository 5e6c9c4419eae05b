"""Per-task metrics of every optimizer, from its sweep and tuned Adam's.

All losses are training losses smoothed by the protocol's EMA; an optimizer's curve is the
seed-mean at its chosen learning rate, truncated to the budget.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from velo import baselines
from velo.evaluation import protocol as protocol_lib
from velo.evaluation.curves import ema, monotone_envelope, steps_to_reach
from velo.evaluation.speedup import speedup
from velo.evaluation.sweep import Sweep

# A run whose smoothed loss climbs above this multiple of its initial loss has diverged.
EXPLODE_FACTOR = 10.0


class TaskMetrics(NamedTuple):
    """One optimizer on one task.

    Attributes:
      learning_rate: the chosen rate, ``None`` for an untuned optimizer.
      lr_at_edge: the chosen rate is the smallest or largest of the grid (widen it to be sure).
      final_loss: seed-mean smoothed training loss at the budget.
      test: test metric name -> seed-mean value at the chosen rate.
      speedup: tuned Adam's steps to reach ``final_loss`` / budget (`speedup.speedup`).
      speedup_censored: Adam never reached ``final_loss``: ``speedup`` is a lower bound.
      steps_to_adam: steps this optimizer needs to reach tuned Adam's final loss, ``None`` if never.
        Its curve stops at the budget, so a number means it reached that loss within the budget.
      beats_default_adam: its final loss is below Adam's at its default learning rate (1e-3, no
        tuning), both at the budget; never for a diverged run.
      diverged: a seed at the chosen rate went non-finite or exploded.
      seconds_per_step: wall time per step of one run.
      forward_passes_per_step: forward passes per step counting line-search trials (1 + trials /
        budget), ``None`` when the optimizer does not count trials.
    """

    learning_rate: float | None
    lr_at_edge: bool
    final_loss: float
    test: dict[str, float]
    speedup: float
    speedup_censored: bool
    steps_to_adam: float | None
    beats_default_adam: bool
    diverged: bool
    seconds_per_step: float
    forward_passes_per_step: float | None


def reaches_adam(m: TaskMetrics) -> bool:
    """Whether the optimizer got down to tuned Adam's final loss within the budget without
    diverging (issue 8's quality target)."""
    return m.steps_to_adam is not None and not m.diverged


def diverged(losses: np.ndarray, smoothed: np.ndarray) -> np.ndarray:
    """``[...]`` bool per run: a non-finite loss, or a smoothed loss above `EXPLODE_FACTOR` times
    the run's first loss. ``losses`` and ``smoothed`` are ``[..., T]``."""
    finite = np.isfinite(losses).all(axis=-1)
    with np.errstate(invalid="ignore"):
        exploded = (smoothed > EXPLODE_FACTOR * np.abs(smoothed[..., :1])).any(axis=-1)
    return ~finite | exploded


class Chosen(NamedTuple):
    """The run an optimizer is judged by on one task.

    Attributes:
      index: index of the chosen learning rate (0 for an untuned optimizer).
      curve: ``[budget]`` smoothed seed-mean training curve at that rate.
      diverged: a seed at that rate diverged.
    """

    index: int
    curve: np.ndarray
    diverged: bool


def choose(sweep: Sweep, budget: int, decay: float) -> Chosen:
    """The best learning rate of ``sweep`` by `protocol.select`, and its smoothed curve."""
    losses = sweep.losses[..., :budget]
    smoothed_runs = ema(losses, decay)  # [L, S, T]
    curves = ema(losses.mean(axis=1), decay)  # [L, T]
    bad = diverged(losses, smoothed_runs).any(axis=1)  # [L]
    index = protocol_lib.select(curves[:, -1], bad)
    return Chosen(index, curves[index], bool(bad[index]))


def default_final_loss(adam: Sweep, budget: int, decay: float) -> float:
    """Adam's smoothed seed-mean training loss at the budget at its default learning rate, found
    by value in the grid; ``inf`` if that run diverged.

    Raises:
      ValueError: the grid does not hold the default rate.
    """
    default = baselines.defaults(protocol_lib.REFERENCE)["learning_rate"]
    rates = adam.learning_rates or []
    at = [i for i, r in enumerate(rates) if math.isclose(r, default, rel_tol=1e-6)]
    if not at:
        raise ValueError(f"Adam's learning-rate grid {rates} lacks its default {default}: centre "
                         f"the grid on it (`protocol.learning_rates`)")
    run = choose(adam._replace(learning_rates=[default], losses=adam.losses[at[0]][None]),
                 budget, decay)
    return math.inf if run.diverged else float(run.curve[-1])


def reference_envelope(adam: Sweep, decay: float) -> np.ndarray:
    """``[H]`` monotone lower envelope of Adam's smoothed seed-mean curves at every rate."""
    return monotone_envelope(ema(adam.losses.mean(axis=1), decay))


def task_metrics(
    sweeps: dict[str, Sweep], budget: int, decay: float
) -> dict[str, TaskMetrics]:
    """Metrics of every optimizer in ``sweeps`` (which holds `protocol.REFERENCE`) on one task."""
    reference = sweeps[protocol_lib.REFERENCE]
    envelope = reference_envelope(reference, decay)
    adam_final = choose(reference, budget, decay).curve[-1]
    default_final = default_final_loss(reference, budget, decay)
    out = {}
    for name, sweep in sweeps.items():
        chosen = choose(sweep, budget, decay)
        final = float(chosen.curve[-1])
        up = speedup(envelope, final, budget)
        rates = sweep.learning_rates
        forward = sweep.forward_passes
        out[name] = TaskMetrics(
            learning_rate=None if rates is None else rates[chosen.index],
            lr_at_edge=rates is not None and chosen.index in (0, len(rates) - 1),
            final_loss=final,
            test={k: float(np.mean(v[chosen.index])) for k, v in sweep.test.items()},
            speedup=up.value,
            speedup_censored=up.censored,
            steps_to_adam=steps_to_reach(monotone_envelope(chosen.curve), adam_final),
            beats_default_adam=not chosen.diverged and final < default_final,
            diverged=chosen.diverged,
            seconds_per_step=sweep.seconds_per_step,
            forward_passes_per_step=(
                None if forward is None else 1.0 + float(np.mean(forward[chosen.index])) / budget
            ),
        )
    return out
