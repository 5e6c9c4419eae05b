"""Bootstrap confidence intervals over tasks and seeds: is a difference real or noise?

A two-level (hierarchical) bootstrap: each resample draws the tasks with replacement, then, within
every drawn task, its ``S`` seeds with replacement, and recomputes the statistic (IQM, median or
mean over tasks) of the per-task values on those seeds. A task's values on every multiset of its
seeds are computed beforehand (`metrics.resampled_metrics`), so a resample only picks one per
task, with the multiset's probability. The interval is the 2.5th to 97.5th percentile of the
statistic over the resamples. The generator has a fixed seed, so a report is the same every time
it is written.

References:
  Efron & Tibshirani, "An Introduction to the Bootstrap", 1993 (percentile intervals).
  Agarwal et al., "Deep Reinforcement Learning at the Edge of the Statistical Precipice",
  NeurIPS 2021 (IQM with stratified bootstrap intervals over tasks and runs).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np

RESAMPLES = 2000
SEED = 0
LEVEL = 0.95
# Above this many multisets of seeds (35 for 4 seeds, 126 for 5), a task's resampled values
# come from this many random draws of S seeds with replacement instead of all multisets.
MAX_MULTISETS = 64


def iqm_rows(x: np.ndarray) -> np.ndarray:
    """Interquartile mean of each row of ``[R, T]``: the mean of the middle half, dropping
    ``floor(T / 4)`` values at each end (`aggregate.iqm`, vectorised)."""
    x = np.sort(x, axis=-1)
    cut = x.shape[-1] // 4
    return x[..., cut:x.shape[-1] - cut].mean(axis=-1)


def median_rows(x: np.ndarray) -> np.ndarray:
    return np.median(x, axis=-1)


def mean_rows(x: np.ndarray) -> np.ndarray:
    return x.mean(axis=-1)


def seed_multisets(seeds: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """The multisets of ``seeds`` seed indices drawn with replacement, and their probabilities.

    Returns:
      ``([K, seeds] int indices, [K] probabilities)``; the first multiset is every seed once.
      All ``C(2 seeds - 1, seeds)`` multisets up to `MAX_MULTISETS`, each with its multinomial
      probability; beyond that, `MAX_MULTISETS` random draws of equal probability after the first.
    """
    everyone = tuple(range(seeds))
    if math.comb(2 * seeds - 1, seeds) <= MAX_MULTISETS:
        multisets = [everyone, *(m for m in itertools.combinations_with_replacement(everyone, seeds)
                                 if m != everyone)]
        counts = [np.bincount(m, minlength=seeds) for m in multisets]
        weights = np.array([math.factorial(seeds) / math.prod(math.factorial(c) for c in cs)
                            for cs in counts]) / seeds**seeds
        return np.array(multisets), weights
    rng = np.random.default_rng(seed)
    draws = np.concatenate([[everyone], rng.integers(0, seeds, (MAX_MULTISETS - 1, seeds))])
    return draws, np.full(MAX_MULTISETS, 1.0 / MAX_MULTISETS)


def interval(
    values: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray],
    probabilities: np.ndarray | None = None,
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    level: float = LEVEL,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over tasks and seeds.

    Args:
      values: ``[T, K]``: each task's value on each of the ``K`` multisets of its seeds
        (`seed_multisets`); ``K = 1`` bootstraps over tasks only.
      statistic: ``[R, T] -> [R]``, the statistic over tasks of each resample (`iqm_rows`,
        `median_rows`, `mean_rows`).
      probabilities: ``[K]`` chance of each multiset; uniform when ``None``.
      resamples: number of bootstrap resamples ``R``.
      seed: seed of the NumPy generator.
      level: coverage of the interval.

    Returns:
      ``(low, high)``.
    """
    x = np.asarray(values, np.float64)
    if x.ndim != 2 or 0 in x.shape:
        raise ValueError(f"values must be [tasks, seed multisets] with both > 0, got shape "
                         f"{x.shape}")
    rng = np.random.default_rng(seed)
    tasks, multisets = x.shape
    drawn_tasks = rng.integers(0, tasks, (resamples, tasks))
    drawn_seeds = rng.choice(multisets, (resamples, tasks), p=probabilities)
    stats = statistic(x[drawn_tasks, drawn_seeds])
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(stats, [tail, 100 - tail])
    return float(low), float(high)
