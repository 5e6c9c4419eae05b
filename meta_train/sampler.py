"""What each generation trains on: task instances and a horizon; and the fixed validation set.

Horizons are drawn log-uniformly over a range, and tasks from a distribution of families, sizes
and reparameterisations, as in VeLO's meta-training.

References:
  Metz et al., "VeLO: Training Versatile Learned Optimizers by Scaling Up", 2022.
  https://arxiv.org/abs/2211.09760
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

import tasks
from meta_train.config import Config
from tasks import Task, cost
from tasks.heldout import HELDOUT
from tasks.long import LONG

# Validation tasks do not depend on the run's seed, so runs with different seeds compare.
VALIDATION_SEED = 20_261_121
# A single costly family under a FLOPs cap (transformers under 1e7) passes about 1 in 500.
MAX_REDRAWS = 10_000


def task_pool(config: Config, generation: int) -> list[Task]:
    """The pool generations draw from at ``generation``: ``task_pool`` specs of the distribution.

    Slot ``i`` starts as draw ``i``; the ``r``-th refresh (every ``pool_refresh`` generations)
    replaces slot ``(r - 1) % task_pool`` by draw ``task_pool + r``; with ``pool_by_family``
    slot ``i`` holds only family ``families[i % len(families)]``. A pure function of the
    config and the generation, so resumed runs see the same pool.
    """
    key = jax.random.fold_in(jax.random.key(config.seed), 0x9001)
    size = config.task_pool
    refreshes = generation // config.pool_refresh if config.pool_refresh else 0
    draws = []
    for i in range(size):
        # Refreshes i+1, i+1+size, ... hit slot i; the last one up to `refreshes` holds it.
        last = i + 1 + size * ((refreshes - i - 1) // size) if refreshes > i else 0
        draws.append(size + last if last else i)
    families = [(config.families[i % len(config.families)],) if config.pool_by_family
                else config.families for i in range(size)]
    return [_draw(jax.random.fold_in(key, d), config, f)
            for d, f in zip(draws, families, strict=True)]


def generation_tasks(config: Config, key: jax.Array, generation: int) -> list[Task]:
    """``config.tasks_per_generation`` tasks: drawn from the pool, or fresh without a pool."""
    keys = jax.random.split(key, config.tasks_per_generation)
    if not config.task_pool:
        return [_draw(k, config) for k in keys]
    pool = task_pool(config, generation)
    return [pool[int(jax.random.randint(k, (), 0, len(pool)))] for k in keys]


def horizon(config: Config, key: jax.Array) -> int:
    """A horizon drawn from the log-spaced buckets: uniformly (log-uniform, discretised), or
    with probability proportional to 1 / horizon with ``balance_horizons``."""
    buckets = config.horizons
    if config.balance_horizons:
        weights = 1.0 / jnp.asarray(buckets, jnp.float32)
        return buckets[int(jax.random.categorical(key, jnp.log(weights / weights.sum())))]
    return buckets[int(jax.random.randint(key, (), 0, len(buckets)))]


def validation_tasks(config: Config) -> list[Task]:
    """``config.validation_tasks`` distinct tasks of the distribution outside the held-out and
    long suites; task ``i`` is of family ``validation_families[i % len(validation_families)]``
    when those are given, else any of ``families``."""
    # Specs, not built tasks: building the suites loads every dataset.
    heldout = [dict(spec) for spec, _ in (*HELDOUT.values(), *LONG.values())]
    chosen: list[Task] = []
    key = jax.random.key(VALIDATION_SEED)
    for attempt in range(100 * config.validation_tasks):
        names = config.validation_families
        family = (names[len(chosen) % len(names)],) if names else None
        task = _draw(jax.random.fold_in(key, attempt), config, family)
        if dict(task.spec) not in heldout and all(task is not t for t in chosen):
            chosen.append(task)
            if len(chosen) == config.validation_tasks:
                return chosen
    raise ValueError(
        f"distribution {config.distribution!r} yields fewer than {config.validation_tasks} "
        f"distinct tasks outside the held-out suite; lower validation_tasks"
    )


def _draw(key: jax.Array, config: Config, families: tuple[str, ...] | None = None) -> Task:
    """A task of ``config.distribution``, redrawn until it passes ``families`` (default
    ``config.families``), ``max_reparam_exponent`` and ``max_task_flops``."""
    families = config.families if families is None else families
    for attempt in range(MAX_REDRAWS):
        spec = tasks.sample(jax.random.fold_in(key, attempt), config.distribution)
        if families and spec["family"] not in families:
            continue
        if abs(spec["reparam_exponent"]) > config.max_reparam_exponent:
            continue
        if not config.max_task_flops or cost.flops_per_step(spec) <= config.max_task_flops:
            # One cached object per spec: repeated draws share compiled programs.
            return tasks.build(spec)
    raise ValueError(
        f"no task of distribution {config.distribution!r} with families {families or 'any'}"
        f" and max_task_flops {config.max_task_flops or 'unlimited'} in {MAX_REDRAWS} draws; "
        f"check the family names or raise max_task_flops"
    )
