"""All runs of one optimizer on one task, learning-rate grid x seeds, as one compiled program.

The learning rate is a traced value: the optimizer is built inside the vmapped function, so the
grid and the seeds share one compilation. The program advances every run by a chunk of steps per
call (so a progress bar can move) and the test metrics are read when the runs reach the budget.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import tasks
from velo import optimizers
from velo.train import run_steps, start_state
from velo.types import EvalParamsFn

# Name of the optimizer-state field in which line searches count their trial forward passes.
FORWARD_PASSES = "trials"
CHUNKS = 10  # progress-bar updates per budget


class Sweep(NamedTuple):
    """The outcome of `run`.

    Attributes:
      learning_rates: the ``L`` rates of the grid, or ``None`` for an untuned optimizer (``L = 1``).
      losses: ``[L, S, H]`` float32 minibatch training losses of ``S`` seeds over ``H`` steps.
      test: metric name -> ``[L, S]`` test metrics at the budget (empty if the task has none).
      forward_passes: ``[L, S]`` extra forward passes counted by the optimizer state over the
        budget, or ``None`` if the optimizer does not count them.
      seconds_per_step: wall time of one step of one run (the batched program's time per step
        divided by ``L * S``), compilation excluded.
      compile_seconds: time to compile the programs.
    """

    learning_rates: list[float] | None
    losses: np.ndarray
    test: dict[str, np.ndarray]
    forward_passes: np.ndarray | None
    seconds_per_step: float
    compile_seconds: float


def run(
    task: tasks.Task,
    name: str,
    learning_rates: list[float] | None,
    seeds: int,
    budget: int,
    horizon: int,
    *,
    checkpoint: str | None = None,
    hparams: dict[str, Any] | None = None,
    eval_params: EvalParamsFn | None = None,
    on_chunk: Callable[[int], None] = lambda steps: None,
) -> Sweep:
    """Train ``task`` with optimizer ``name`` at every learning rate and seed.

    Args:
      task: the problem; seed ``s`` initialises from and draws batches from ``jax.random.key(s)``
        exactly as `velo.train.train` does, so every optimizer sees the same data.
      name: a `velo.optimizers.names()` entry.
      learning_rates: the grid, or ``None`` to run at the optimizer's defaults.
      seeds: number of seeds ``S``.
      budget: the run length the optimizer is told and the test metrics are taken at.
      horizon: total steps run, a multiple of ``budget`` (longer for the speed-up reference).
      checkpoint: for the learned optimizer.
      hparams: further hyperparameters of the optimizer (``--set``), e.g. ``weight_decay``.
      eval_params: ``(opt_state, params) -> params`` to test at (schedule-free); identity if None.
      on_chunk: called with the number of steps after each chunk, for progress bars.
    """
    tuned = learning_rates is not None
    rates = jnp.asarray(learning_rates if tuned else [0.0], jnp.float32)
    build = _builder(name, budget, checkpoint, tuned, hparams or {})
    params, data_keys = initial_params(task, seeds)

    start = time.perf_counter()
    state = jax.jit(_over_grid(lambda lr, p: start_state(build(lr), p), (False,)))(rates, params)
    chunk = chunk_length(budget)
    advance = jax.jit(
        _over_grid(lambda lr, k, s: run_steps(task, build(lr), k, s, chunk), (False, True)),
        donate_argnums=2,
    ).lower(rates, data_keys, state).compile()
    test = _test_program(task, eval_params, rates, state)
    compile_seconds = time.perf_counter() - start

    losses, metrics, forward, seconds = [], {}, None, 0.0
    for done in range(chunk, horizon + 1, chunk):
        begin = time.perf_counter()
        state, chunk_losses = advance(rates, data_keys, state)
        losses.append(np.asarray(chunk_losses))
        seconds += time.perf_counter() - begin
        on_chunk(chunk)
        if done == budget:
            metrics = {k: np.asarray(v) for k, v in test(rates, state).items()} if test else {}
            forward = optax.tree_utils.tree_get(state.opt_state, FORWARD_PASSES)
            forward = None if forward is None else np.asarray(forward, np.float64)
    return Sweep(learning_rates, np.concatenate(losses, axis=-1), metrics, forward,
                 seconds / horizon / (rates.shape[0] * seeds), compile_seconds)


@functools.lru_cache(maxsize=8)
def initial_params(task: tasks.Task, seeds: int):
    """``[S]`` initial parameters and data keys, split from ``jax.random.key(seed)`` as
    `velo.train.train` does. Computed once per task, not per optimizer: compiling a vmapped
    ``task.init`` costs seconds, running it eagerly a few milliseconds once the data is loaded."""
    keys = jax.vmap(lambda s: jax.random.split(jax.random.key(s)))(jnp.arange(seeds))
    return jax.vmap(task.init)(keys[:, 0]), keys[:, 1]


def _builder(name: str, budget: int, checkpoint: str | None, tuned: bool,
             hparams: dict[str, Any]):
    """``lr -> optimizer``, told the budget (scheduled baselines decay over it). An untuned
    optimizer is built once (its checkpoint read once), not at every trace."""
    if tuned:
        return lambda lr: optimizers.make(name, budget, learning_rate=lr, hparams=hparams)
    opt = optimizers.make(name, budget, checkpoint=checkpoint, hparams=hparams)
    return lambda lr: opt


def _over_grid(fn, per_run: tuple[bool, ...]):
    """Lift ``fn(lr, *args)`` to ``[L]`` rates x ``[S]`` seeds.

    ``per_run[i]`` tells whether ``args[i]`` has leading ``[L, S]`` axes (a train state) or only
    ``[S]`` (initial parameters, data keys: shared by every rate).
    """
    over_seeds = jax.vmap(fn, in_axes=(None, *[0] * len(per_run)))
    return jax.vmap(over_seeds, in_axes=(0, *[0 if r else None for r in per_run]))


def _test_program(task: tasks.Task, eval_params: EvalParamsFn | None, rates, state):
    """Compiled ``(rates, state) -> {metric: [L, S]}``, or None if the task has no test set."""
    if task.test_metrics is None:
        return None
    at = eval_params or (lambda opt_state, params: params)
    grid = _over_grid(lambda lr, s: task.test_metrics(at(s.opt_state, s.params)), (True,))
    return jax.jit(grid).lower(rates, state).compile()


def chunk_length(budget: int, chunks: int = CHUNKS) -> int:
    """The largest divisor of ``budget`` up to ``budget / chunks``, so one program covers every
    chunk of the budget and of any multiple of it; the whole budget if no divisor is near enough."""
    target = max(1, budget // chunks)
    divisor = max(d for d in range(1, target + 1) if budget % d == 0)
    return divisor if divisor * 4 >= target else budget
