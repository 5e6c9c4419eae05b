"""Across-task summaries of each optimizer: win rates against both references (tuned Adam and
tuned ``adamw_cosine``), mean rank, IQM speed-up with bootstrap intervals, the shares of tasks
meeting the quality targets of a shipped learned optimizer, and the same per model family."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from velo.evaluation import bootstrap
from velo.evaluation.metrics import Resampled, TaskMetrics, reaches_adam, reaches_cosine
from velo.evaluation.protocol import COSINE, REFERENCE

Interval = tuple[float, float]


class Summary(NamedTuple):
    """One optimizer over the suite.

    Intervals are bootstrap 95 % intervals over tasks and seeds (`bootstrap.interval` on
    `metrics.Resampled`): the same statistic recomputed on resampled tasks and seeds, every
    optimizer on the same seeds as the references; ``None`` where the value is ``None``.

    Attributes:
      tasks: number of tasks.
      win_rate: fraction of tasks with a lower final loss than tuned Adam (``None`` for Adam).
      win_rate_ci: its interval.
      mean_rank: mean over tasks of the rank by final loss among all optimizers (1 = best; ties
        share the average rank; a diverged run ranks below every finished one).
      speedup_iqm: interquartile mean of the per-task speed-ups.
      speedup_iqm_ci: its interval.
      speedup_median: median of the per-task speed-ups.
      divergences: number of tasks where it diverged.
      time_vs_adam: geometric mean over tasks of its wall time per step / Adam's.
      beats_default_adam_rate: fraction of tasks with a lower final loss than Adam at its default
        learning rate (`TaskMetrics.beats_default_adam`).
      reaches_adam_rate: fraction of tasks where it reached tuned Adam's final loss within the
        budget (`metrics.reaches_adam`); ``None`` for Adam.
      cosine_win_rate: as ``win_rate`` against tuned ``adamw_cosine`` (``None`` for it, or when
        it was not run), and the fields below likewise.
      cosine_win_rate_ci: its interval.
      cosine_speedup_iqm: IQM of the per-task speed-ups over ``adamw_cosine`` (at most 1).
      cosine_speedup_iqm_ci: its interval.
      cosine_speedup_median: their median.
      reaches_cosine_rate: as ``reaches_adam_rate`` for ``adamw_cosine``'s final loss.
    """

    tasks: int
    win_rate: float | None
    win_rate_ci: Interval | None
    mean_rank: float
    speedup_iqm: float
    speedup_iqm_ci: Interval
    speedup_median: float
    divergences: int
    time_vs_adam: float
    beats_default_adam_rate: float
    reaches_adam_rate: float | None
    cosine_win_rate: float | None
    cosine_win_rate_ci: Interval | None
    cosine_speedup_iqm: float | None
    cosine_speedup_iqm_ci: Interval | None
    cosine_speedup_median: float | None
    reaches_cosine_rate: float | None


class FamilySummary(NamedTuple):
    """One optimizer on the tasks of one model family.

    Attributes:
      tasks: number of tasks of the family.
      win_rate, cosine_win_rate: shares of them won against tuned Adam / ``adamw_cosine``
        (``None`` for the reference itself, or when ``adamw_cosine`` was not run).
      speedup_median, cosine_speedup_median: medians of the per-task speed-ups.
      speedup_median_ci, cosine_speedup_median_ci: their bootstrap 95 % intervals.
    """

    tasks: int
    win_rate: float | None
    cosine_win_rate: float | None
    speedup_median: float
    speedup_median_ci: Interval
    cosine_speedup_median: float | None
    cosine_speedup_median_ci: Interval | None


def iqm(values) -> float:
    """Interquartile mean: the mean of the middle half, dropping the lowest and highest quarter
    (``floor(n / 4)`` values each); the plain mean below 4 values."""
    return float(bootstrap.iqm_rows(np.asarray(values, np.float64)))


def score(m: TaskMetrics) -> float:
    """Final loss for ranking and wins: ``inf`` for a diverged or non-finite run."""
    return np.inf if m.diverged or not np.isfinite(m.final_loss) else m.final_loss


def ranks(per_optimizer: dict[str, TaskMetrics]) -> dict[str, float]:
    """Rank of each optimizer on one task by final loss (1 = best, average rank on ties)."""
    scores = {name: score(m) for name, m in per_optimizer.items()}
    values = list(scores.values())
    return {
        name: 1.0 + sum(o < s for o in values) + (sum(o == s for o in values) - 1) / 2
        for name, s in scores.items()
    }


def stronger_baseline(per_optimizer: dict[str, TaskMetrics]) -> str | None:
    """The reference with the lower final loss on one task (Adam on a tie); ``None`` when
    ``adamw_cosine`` was not run."""
    if COSINE not in per_optimizer:
        return None
    return COSINE if score(per_optimizer[COSINE]) < score(per_optimizer[REFERENCE]) else REFERENCE


def _win_rate(rows: list[TaskMetrics], references: list[TaskMetrics]) -> float:
    return float(np.mean([score(m) < score(r) for m, r in zip(rows, references, strict=True)]))


def _resampled(scores: list[Resampled], value) -> np.ndarray:
    """``[T, K]``: ``value(metrics)`` (metrics: optimizer -> `TaskMetrics`) of each task on each
    multiset of its seeds."""
    return np.array([[value(ms) for ms in r.metrics] for r in scores], np.float64)


def _versus(name: str, reference: str, results, scores, statistic):
    """``(win_rate, win_ci, speedup_values, speedup_ci)`` of ``name`` against ``reference`` over
    the tasks of ``results``, or ``None`` when that reference was not run."""
    tasks = list(results)
    if reference not in results[tasks[0]]:
        return None
    field = "speedup" if reference == REFERENCE else "cosine_speedup"
    speedups = [getattr(results[t][name], field) for t in tasks]
    resampled = [scores[t] for t in tasks]
    probabilities = resampled[0].probabilities
    up_ci = bootstrap.interval(_resampled(resampled, lambda ms: getattr(ms[name], field)),
                               statistic, probabilities)
    if name == reference:
        return None, None, speedups, up_ci
    win = _win_rate([results[t][name] for t in tasks], [results[t][reference] for t in tasks])
    wins = _resampled(resampled, lambda ms: score(ms[name]) < score(ms[reference]))
    return win, bootstrap.interval(wins, bootstrap.mean_rows, probabilities), speedups, up_ci


def summarize(results: dict[str, dict[str, TaskMetrics]],
              scores: dict[str, Resampled]) -> dict[str, Summary]:
    """Per optimizer, the summary over ``results`` (task name -> optimizer name -> metrics), with
    intervals from ``scores`` (task name -> `metrics.Resampled`)."""
    task_ranks = {task: ranks(per_opt) for task, per_opt in results.items()}
    names = list(next(iter(results.values())))
    out = {}
    adam = [per_opt[REFERENCE] for per_opt in results.values()]
    for name in names:
        rows = [per_opt[name] for per_opt in results.values()]
        win, win_ci, speedups, up_ci = _versus(name, REFERENCE, results, scores,
                                               bootstrap.iqm_rows)
        cosine = _versus(name, COSINE, results, scores, bootstrap.iqm_rows)
        c_win, c_win_ci, c_speedups, c_up_ci = cosine or (None,) * 4
        out[name] = Summary(
            tasks=len(rows),
            win_rate=win,
            win_rate_ci=win_ci,
            mean_rank=float(np.mean([r[name] for r in task_ranks.values()])),
            speedup_iqm=iqm(speedups),
            speedup_iqm_ci=up_ci,
            speedup_median=float(np.median(speedups)),
            divergences=sum(m.diverged for m in rows),
            time_vs_adam=float(np.exp(np.mean(
                [np.log(m.seconds_per_step / a.seconds_per_step)
                 for m, a in zip(rows, adam, strict=True)]))),
            beats_default_adam_rate=float(np.mean([m.beats_default_adam for m in rows])),
            reaches_adam_rate=(None if name == REFERENCE
                               else float(np.mean([reaches_adam(m) for m in rows]))),
            cosine_win_rate=c_win,
            cosine_win_rate_ci=c_win_ci,
            cosine_speedup_iqm=None if cosine is None else iqm(c_speedups),
            cosine_speedup_iqm_ci=c_up_ci,
            cosine_speedup_median=None if cosine is None else float(np.median(c_speedups)),
            reaches_cosine_rate=(None if cosine is None or name == COSINE
                                 else float(np.mean([reaches_cosine(m) for m in rows]))),
        )
    return out


def by_family(results: dict[str, dict[str, TaskMetrics]],
              scores: dict[str, Resampled],
              families: dict[str, str]) -> dict[str, dict[str, FamilySummary]]:
    """Family -> optimizer -> `FamilySummary`, families in order of first appearance.

    Args:
      results, scores: as `summarize`.
      families: task name -> model family (``TaskSpec.family``).
    """
    out = {}
    for family in dict.fromkeys(families[t] for t in results):
        subset = {t: ms for t, ms in results.items() if families[t] == family}
        out[family] = {}
        for name in next(iter(subset.values())):
            win, _, speedups, up_ci = _versus(name, REFERENCE, subset, scores,
                                              bootstrap.median_rows)
            cosine = _versus(name, COSINE, subset, scores, bootstrap.median_rows)
            out[family][name] = FamilySummary(
                tasks=len(subset),
                win_rate=win,
                cosine_win_rate=None if cosine is None else cosine[0],
                speedup_median=float(np.median(speedups)),
                speedup_median_ci=up_ci,
                cosine_speedup_median=None if cosine is None else float(np.median(cosine[2])),
                cosine_speedup_median_ci=None if cosine is None else cosine[3],
            )
    return out
