"""Across-task summaries of each optimizer: win rate against tuned Adam, mean rank, IQM speed-up,
and the shares of tasks meeting the quality targets of a shipped learned optimizer."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from velo.evaluation.metrics import TaskMetrics, reaches_adam
from velo.evaluation.protocol import REFERENCE


class Summary(NamedTuple):
    """One optimizer over the suite.

    Attributes:
      tasks: number of tasks.
      win_rate: fraction of tasks with a lower final loss than tuned Adam (``None`` for Adam).
      mean_rank: mean over tasks of the rank by final loss among all optimizers (1 = best; ties
        share the average rank; a diverged run ranks below every finished one).
      speedup_iqm: interquartile mean of the per-task speed-ups.
      speedup_median: median of the per-task speed-ups.
      divergences: number of tasks where it diverged.
      time_vs_adam: geometric mean over tasks of its wall time per step / Adam's.
      beats_default_adam_rate: fraction of tasks with a lower final loss than Adam at its default
        learning rate (`TaskMetrics.beats_default_adam`).
      reaches_adam_rate: fraction of tasks where it reached tuned Adam's final loss within the
        budget (`metrics.reaches_adam`); ``None`` for Adam.
    """

    tasks: int
    win_rate: float | None
    mean_rank: float
    speedup_iqm: float
    speedup_median: float
    divergences: int
    time_vs_adam: float
    beats_default_adam_rate: float
    reaches_adam_rate: float | None


def iqm(values) -> float:
    """Interquartile mean: the mean of the middle half, dropping the lowest and highest quarter
    (``floor(n / 4)`` values each); the plain mean below 4 values."""
    x = np.sort(np.asarray(values, np.float64))
    cut = len(x) // 4
    return float(x[cut:len(x) - cut].mean())


def _score(m: TaskMetrics) -> float:
    return np.inf if m.diverged or not np.isfinite(m.final_loss) else m.final_loss


def ranks(per_optimizer: dict[str, TaskMetrics]) -> dict[str, float]:
    """Rank of each optimizer on one task by final loss (1 = best, average rank on ties)."""
    scores = {name: _score(m) for name, m in per_optimizer.items()}
    values = list(scores.values())
    return {
        name: 1.0 + sum(o < s for o in values) + (sum(o == s for o in values) - 1) / 2
        for name, s in scores.items()
    }


def summarize(results: dict[str, dict[str, TaskMetrics]]) -> dict[str, Summary]:
    """Per optimizer, the summary over ``results`` (task name -> optimizer name -> metrics)."""
    task_ranks = {task: ranks(per_opt) for task, per_opt in results.items()}
    names = list(next(iter(results.values())))
    out = {}
    adam = [per_opt[REFERENCE] for per_opt in results.values()]
    for name in names:
        rows = [per_opt[name] for per_opt in results.values()]
        pairs = list(zip(rows, adam, strict=True))
        speedups = [m.speedup for m in rows]
        out[name] = Summary(
            tasks=len(rows),
            win_rate=(None if name == REFERENCE
                      else float(np.mean([_score(m) < _score(a) for m, a in pairs]))),
            mean_rank=float(np.mean([r[name] for r in task_ranks.values()])),
            speedup_iqm=iqm(speedups),
            speedup_median=float(np.median(speedups)),
            divergences=sum(m.diverged for m in rows),
            time_vs_adam=float(np.exp(np.mean(
                [np.log(m.seconds_per_step / a.seconds_per_step) for m, a in pairs]))),
            beats_default_adam_rate=float(np.mean([m.beats_default_adam for m in rows])),
            reaches_adam_rate=(None if name == REFERENCE
                               else float(np.mean([reaches_adam(m) for m in rows]))),
        )
    return out
