"""Per-task metrics of every optimizer, from its sweep and tuned Adam's.

All losses are training losses smoothed by the protocol's EMA; an optimizer's curve is the
seed-mean at its chosen learning rate, truncated to the budget. Two references: tuned
constant-rate Adam (VeLO's speed-up, comparable with the papers) and, when it was run, tuned
`protocol.COSINE` (AdamW with warmup and cosine decay, the recipe people train with).

Every run is smoothed once (`smooth`); since the EMA is linear, the smoothed seed-mean of any
multiset of seeds is the mean of their smoothed runs, so `task_metrics` can be recomputed
cheaply on resampled seeds (`resampled_metrics`, what the bootstrap intervals draw from) with
exactly the arithmetic of the reported numbers.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from velo import baselines
from velo.evaluation import bootstrap
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
      cosine_speedup: as ``speedup`` against tuned ``adamw_cosine`` over the budget (its schedule
        is fitted to the budget, so the value is at most 1, censored when it never got there);
        ``None`` when ``adamw_cosine`` was not run.
      cosine_speedup_censored: ``adamw_cosine`` never reached ``final_loss`` within the budget.
      steps_to_cosine: as ``steps_to_adam`` for tuned ``adamw_cosine``'s final loss.
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
    cosine_speedup: float | None = None
    cosine_speedup_censored: bool | None = None
    steps_to_cosine: float | None = None


def reaches_adam(m: TaskMetrics) -> bool:
    """Whether the optimizer got down to tuned Adam's final loss within the budget without
    diverging (issue 8's quality target)."""
    return m.steps_to_adam is not None and not m.diverged


def reaches_cosine(m: TaskMetrics) -> bool:
    """As `reaches_adam` for tuned ``adamw_cosine``'s final loss."""
    return m.steps_to_cosine is not None and not m.diverged


def diverged(losses: np.ndarray, smoothed: np.ndarray) -> np.ndarray:
    """``[...]`` bool per run: a non-finite loss, or a smoothed loss above `EXPLODE_FACTOR` times
    the run's first loss. ``losses`` and ``smoothed`` are ``[..., T]``."""
    finite = np.isfinite(losses).all(axis=-1)
    with np.errstate(invalid="ignore"):
        exploded = (smoothed > EXPLODE_FACTOR * np.abs(smoothed[..., :1])).any(axis=-1)
    return ~finite | exploded


class Smoothed(NamedTuple):
    """A sweep with every run smoothed, once.

    Attributes:
      sweep: the sweep.
      runs: ``[L, S, H]`` float64 EMA-smoothed training curves of every rate and seed.
      bad: ``[L, S]`` bool, the run diverged within the budget (`diverged`).
    """

    sweep: Sweep
    runs: np.ndarray
    bad: np.ndarray


def smooth(sweep: Sweep, budget: int, decay: float) -> Smoothed:
    """`Smoothed` of ``sweep``; divergence is judged on the first ``budget`` steps."""
    runs = ema(sweep.losses, decay)
    return Smoothed(sweep, runs, diverged(sweep.losses[..., :budget], runs[..., :budget]))


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


def _choose(s: Smoothed, budget: int, seeds: np.ndarray) -> Chosen:
    curves = s.runs[:, seeds, :budget].mean(axis=1)  # [L, T]
    bad = s.bad[:, seeds].any(axis=1)  # [L]
    index = protocol_lib.select(curves[:, -1], bad)
    return Chosen(index, curves[index], bool(bad[index]))


def _all_seeds(s: Smoothed) -> np.ndarray:
    return np.arange(s.runs.shape[1])


def choose(sweep: Sweep, budget: int, decay: float) -> Chosen:
    """The best learning rate of ``sweep`` by `protocol.select`, and its smoothed curve."""
    s = smooth(sweep, budget, decay)
    return _choose(s, budget, _all_seeds(s))


def _default_final(adam: Smoothed, budget: int, seeds: np.ndarray) -> float:
    """Adam's smoothed seed-mean training loss at the budget at its default learning rate, found
    by value in the grid; ``inf`` if that run diverged.

    Raises:
      ValueError: the grid does not hold the default rate.
    """
    default = baselines.defaults(protocol_lib.REFERENCE)["learning_rate"]
    rates = adam.sweep.learning_rates or []
    at = [i for i, r in enumerate(rates) if math.isclose(r, default, rel_tol=1e-6)]
    if not at:
        raise ValueError(f"Adam's learning-rate grid {rates} lacks its default {default}: centre "
                         f"the grid on it (`protocol.learning_rates`)")
    if adam.bad[at[0], seeds].any():
        return math.inf
    return float(adam.runs[at[0], seeds, budget - 1].mean())


def _envelope(reference: Smoothed, seeds: np.ndarray) -> np.ndarray:
    """``[H]`` monotone lower envelope of a reference's smoothed seed-mean curves at every rate
    (Adam runs ``reference_factor`` times the budget, ``adamw_cosine`` the budget)."""
    return monotone_envelope(reference.runs[:, seeds].mean(axis=1))


def _versus(reference: Smoothed | None, budget: int, seeds: np.ndarray, chosen: Chosen):
    """``(speedup, censored, steps_to_reference)`` of ``chosen`` against a reference, or
    ``(None,) * 3`` when the reference was not run."""
    if reference is None:
        return None, None, None
    final = float(chosen.curve[-1])
    up = speedup(_envelope(reference, seeds), final, budget)
    reference_final = float(_choose(reference, budget, seeds).curve[-1])
    return up.value, up.censored, steps_to_reach(monotone_envelope(chosen.curve), reference_final)


def _metrics(smoothed: dict[str, Smoothed], budget: int,
             seeds: np.ndarray) -> dict[str, TaskMetrics]:
    """`task_metrics` on the smoothed sweeps, over the seeds (a multiset of indices) ``seeds``."""
    adam = smoothed[protocol_lib.REFERENCE]
    cosine = smoothed.get(protocol_lib.COSINE)
    default_final = _default_final(adam, budget, seeds)
    out = {}
    for name, s in smoothed.items():
        chosen = _choose(s, budget, seeds)
        final = float(chosen.curve[-1])
        up, censored, steps_to_adam = _versus(adam, budget, seeds, chosen)
        c_up, c_censored, steps_to_cosine = _versus(cosine, budget, seeds, chosen)
        rates = s.sweep.learning_rates
        forward = s.sweep.forward_passes
        out[name] = TaskMetrics(
            learning_rate=None if rates is None else rates[chosen.index],
            lr_at_edge=rates is not None and chosen.index in (0, len(rates) - 1),
            final_loss=final,
            test={k: float(np.mean(v[chosen.index][seeds])) for k, v in s.sweep.test.items()},
            speedup=up,
            speedup_censored=censored,
            steps_to_adam=steps_to_adam,
            beats_default_adam=not chosen.diverged and final < default_final,
            diverged=chosen.diverged,
            seconds_per_step=s.sweep.seconds_per_step,
            forward_passes_per_step=(
                None if forward is None
                else 1.0 + float(np.mean(forward[chosen.index][seeds])) / budget
            ),
            cosine_speedup=c_up,
            cosine_speedup_censored=c_censored,
            steps_to_cosine=steps_to_cosine,
        )
    return out


def task_metrics(
    sweeps: dict[str, Sweep], budget: int, decay: float
) -> dict[str, TaskMetrics]:
    """Metrics of every optimizer in ``sweeps`` (which holds `protocol.REFERENCE`, and may hold
    `protocol.COSINE`) on one task, over all seeds."""
    smoothed = {n: smooth(s, budget, decay) for n, s in sweeps.items()}
    return _metrics(smoothed, budget, _all_seeds(smoothed[protocol_lib.REFERENCE]))


class Resampled(NamedTuple):
    """`task_metrics` of one task recomputed on resampled seeds, for the bootstrap.

    Attributes:
      metrics: ``K`` dicts optimizer name -> `TaskMetrics`, one per multiset of seeds, every
        optimizer and reference on the same seeds (paired: same initialisation and batches).
      probabilities: ``[K]`` chance of drawing each multiset when ``S`` seeds are drawn with
        replacement (`bootstrap.seed_multisets`).
    """

    metrics: list[dict[str, TaskMetrics]]
    probabilities: np.ndarray


def resampled_metrics(sweeps: dict[str, Sweep], budget: int, decay: float) -> Resampled:
    """`Resampled` metrics of one task, as `task_metrics` on each multiset of its seeds."""
    smoothed = {n: smooth(s, budget, decay) for n, s in sweeps.items()}
    multisets, probabilities = bootstrap.seed_multisets(
        smoothed[protocol_lib.REFERENCE].runs.shape[1])
    return Resampled([_metrics(smoothed, budget, seeds) for seeds in multisets], probabilities)
