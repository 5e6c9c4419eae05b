"""Train one task with one optimizer: the inner loop every velo command shares.

The loop runs as jitted `lax.scan` chunks. Every step calls the optimizer as
``update(grads, state, params, loss=..., loss_fn=...)``, so learned optimizers (which read the loss)
and line searches (which re-evaluate the minibatch) plug in unchanged; plain optax transforms are
wrapped with `optax.with_extra_args_support` and ignore the extra arguments.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from velo.types import EvalParamsFn

if TYPE_CHECKING:  # annotations only: importing velo.train must not load the task zoo
    from tasks import Task


class TrainState(NamedTuple):
    """Carry of the inner loop.

    Attributes:
      params: the model parameters.
      opt_state: the optimizer state.
      step: int32 scalar, number of steps taken.
    """

    params: Any
    opt_state: Any
    step: jax.Array


class TrainResult(NamedTuple):
    """Outcome of `train`.

    Attributes:
      state: the final `TrainState`.
      losses: ``[num_steps]`` float32 minibatch training losses, before each step's update.
      test: final held-out metrics (``{"loss", "accuracy", ...}``), empty if the task has none.
    """

    state: TrainState
    losses: np.ndarray
    test: dict[str, float]


def start_state(opt: optax.GradientTransformation, params) -> TrainState:
    """Step 0 of a run from already-initialised ``params``."""
    return TrainState(params, opt.init(params), jnp.zeros((), jnp.int32))


def init_state(task: Task, opt: optax.GradientTransformation, key: jax.Array) -> TrainState:
    """Fresh parameters from ``key`` and the optimizer state for them."""
    return start_state(opt, task.init(key))


def train_step(
    task: Task, opt: optax.GradientTransformationExtraArgs, data_key: jax.Array, state: TrainState
) -> tuple[TrainState, jax.Array]:
    """One optimizer step on the minibatch drawn for ``state.step``.

    The batch and forward-pass keys are ``fold_in(data_key, step)``, so a run does not depend on
    how its steps are chunked, and two optimizers given the same ``data_key`` see the same data.

    Returns:
      The next state and the scalar minibatch loss at the old parameters.
    """
    batch_key, loss_key = jax.random.split(jax.random.fold_in(data_key, state.step))
    batch = task.sample_batch(batch_key)

    def loss_fn(p):
        return task.loss(p, batch, loss_key)

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    updates, opt_state = opt.update(
        grads, state.opt_state, state.params, loss=loss, loss_fn=loss_fn
    )
    params = optax.apply_updates(state.params, updates)
    return TrainState(params, opt_state, state.step + 1), loss


def run_steps(
    task: Task,
    opt: optax.GradientTransformationExtraArgs,
    data_key: jax.Array,
    state: TrainState,
    num_steps: int,
) -> tuple[TrainState, jax.Array]:
    """``num_steps`` steps in one `lax.scan`; returns the final state and ``[num_steps]`` losses."""
    step = functools.partial(train_step, task, opt, data_key)
    return jax.lax.scan(lambda s, _: step(s), state, length=num_steps)


def train(
    task: Task,
    opt: optax.GradientTransformation,
    num_steps: int,
    seed: int = 0,
    *,
    chunk: int = 250,
    eval_params: EvalParamsFn | None = None,
    progress: bool = False,
) -> TrainResult:
    """Train ``task`` with ``opt`` for ``num_steps`` steps.

    Args:
      task: the problem.
      opt: any optax transform; called with ``loss=`` and ``loss_fn=`` every step.
      num_steps: number of optimizer steps, >= 1.
      seed: seeds initialisation and data order; the same seed gives the same result.
      chunk: steps per compiled `lax.scan`; the last chunk may be shorter (compiled once more).
      eval_params: ``(opt_state, params) -> params`` to evaluate at, for optimizers such as
        schedule-free whose iterate is not the point to test; identity by default.
      progress: show a tqdm progress bar.
    """
    if num_steps < 1 or chunk < 1:
        raise ValueError(f"num_steps and chunk must be >= 1, got {num_steps} and {chunk}")
    opt = optax.with_extra_args_support(opt)
    init_key, data_key = jax.random.split(jax.random.key(seed))
    state = init_state(task, opt, init_key)
    run = jax.jit(functools.partial(run_steps, task, opt), static_argnums=2)
    losses = []
    bar = _progress_bar(num_steps, task.name, progress)
    for start in range(0, num_steps, chunk):
        n = min(chunk, num_steps - start)
        state, chunk_losses = run(data_key, state, n)
        losses.append(chunk_losses)
        if progress:
            bar.update(n)
            bar.set_postfix(loss=f"{float(chunk_losses[-1]):.4f}")
    bar.close()
    test = {}
    if task.test_metrics is not None:
        at = state.params if eval_params is None else eval_params(state.opt_state, state.params)
        test = {k: float(v) for k, v in jax.jit(task.test_metrics)(at).items()}
    return TrainResult(state, np.concatenate([np.asarray(x) for x in losses]), test)


def _progress_bar(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, unit="step", leave=False)
