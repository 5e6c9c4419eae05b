"""Validation: train the fixed validation tasks with the current mean meta-parameters."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from meta_train.config import Config
from meta_train.devices import put, sharded, to_host
from meta_train.population import Runner
from meta_train.sampler import VALIDATION_SEED
from tasks import Task

# Normalised training losses below this count as this in the geometric validation mean.
GEOMETRIC_FLOOR = 1e-3


def validate(meta_params, task_list: list[Task], config: Config, runner: Runner) -> dict:
    """Mean normalised training loss per validation task with ``meta_params``.

    Each task is trained ``config.population`` times from different seeds (the population
    programs are reused: every member is a copy of ``meta_params``) for its `task_steps`; the
    loss is the fitness of those runs.

    Returns:
      ``{task.name: loss, ..., "mean": mean over tasks, "diverged": [task names]}``; the mean is
      geometric with ``config.validation_geometric`` (`mean`). A task with a diverged
      (non-finite) run has loss None, and then the mean is None too, so a diverged validation
      never ranks as best and the log stays standard JSON (no ``Infinity``).
    """
    n = config.population
    pop = jax.device_put(
        jax.tree.map(lambda x: jnp.broadcast_to(x, (n, *x.shape)), meta_params),
        sharded(runner.mesh),
    )
    # Tag 1: the untagged key draws the validation tasks (`sampler.validation_tasks`).
    seeds = jax.random.split(jax.random.fold_in(jax.random.key(VALIDATION_SEED), 1), (n, 2))
    init_keys, data_keys = (put(k, sharded(runner.mesh)) for k in seeds.T)
    result = {}
    for task, steps in zip(task_list, task_steps(config, task_list), strict=True):
        losses = to_host(runner.fitness(task, pop, init_keys, data_keys, steps,
                                        tail_steps(config, steps)))
        result[task.name] = float(np.mean(losses)) if np.all(np.isfinite(losses)) else None
    result["diverged"] = [t.name for t in task_list if result[t.name] is None]
    result["mean"] = None if result["diverged"] else mean([result[t.name] for t in task_list],
                                                          config.validation_geometric)
    return result


def mean(losses: list[float], geometric: bool) -> float:
    """The arithmetic or geometric mean of ``losses``; the geometric one floors each loss at
    `GEOMETRIC_FLOOR`, so a task trained to ~0 (1e-70 happens) cannot outweigh the rest."""
    losses = np.asarray(losses, np.float64)
    if not geometric:
        return float(np.mean(losses))
    return float(np.exp(np.mean(np.log(np.maximum(losses, GEOMETRIC_FLOOR)))))


def task_steps(config: Config, task_list: list[Task]) -> list[int]:
    """Validation steps per task, multiples of ``chunk``: ``validation_steps``, and
    ``validation_long_steps`` for the cheapest task (FLOPs per step) when that is set. A network
    is preferred to a quadratic there (late blow-ups came from weights that keep growing), and
    a dense one to a CNN (XLA's CPU convolutions run 10-20x fewer FLOP/s than its matrix
    products: 5,000 steps of a 2.4e5-FLOP CNN for 8 seeds took minutes)."""
    steps = [config.round_to_chunk(config.validation_steps)] * len(task_list)
    if config.validation_long_steps and task_list:
        cheapest = min(range(len(task_list)), key=lambda i: (
            task_list[i].spec.get("family") == "quadratic",
            task_list[i].spec.get("family") == "cnn", task_list[i].flops_per_step))
        steps[cheapest] = config.round_to_chunk(config.validation_long_steps)
    return steps


def tail_steps(config: Config, horizon: int) -> int:
    """Number of final steps whose loss makes the fitness of a ``horizon``-step run."""
    return max(1, round(config.fitness_tail * horizon))
