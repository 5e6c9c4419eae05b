"""Lookahead (Zhang et al., 2019) keeping the slow weights in the optimizer state.

Unlike `optax.lookahead`, whose params become a ``LookaheadParams(fast, slow)`` pair, this wrapper
leaves the params pytree alone (params are the fast weights) and passes ``loss=``/``loss_fn=``
through to the inner optimizer, so it wraps any velo optimizer, line searches included.

Every ``sync_period`` steps, after the inner step ``fast' = fast + u``, the slow weights move
``slow' = slow + alpha * (fast' - slow)`` and the fast weights are reset to them: the returned
update is ``slow' - fast``. Evaluate at the slow weights (`slow_params`).
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from velo.baselines.radam import radam


class LookaheadState(NamedTuple):
    """State of `lookahead`.

    Attributes:
      inner: the fast optimizer's state.
      slow: the slow weights, like params.
      count: int32 scalar, steps taken.
    """

    inner: optax.OptState
    slow: optax.Params
    count: jax.Array


def lookahead(
    opt: optax.GradientTransformation, sync_period: int = 5, slow_step_size: float = 0.5
) -> optax.GradientTransformationExtraArgs:
    """Wrap ``opt`` (the fast optimizer) in Lookahead.

    References:
      Zhang, Lucas, Hinton, Ba, "Lookahead Optimizer: k steps forward, 1 step back", NeurIPS 2019.

    Args:
      opt: the fast optimizer; any optax transform, extra ``update`` arguments pass through.
      sync_period: k, fast steps between synchronisations.
      slow_step_size: alpha, the slow weights' interpolation factor in (0, 1].
    """
    if not isinstance(sync_period, int) or isinstance(sync_period, bool) or sync_period < 1:
        raise ValueError(f"lookahead: sync_period must be an int >= 1, got {sync_period!r}")
    if isinstance(slow_step_size, numbers.Real) and not 0 < slow_step_size <= 1:
        raise ValueError(f"lookahead: slow_step_size must be in (0, 1], got {slow_step_size}")
    opt = optax.with_extra_args_support(opt)

    def init_fn(params):
        return LookaheadState(opt.init(params), params, jnp.zeros((), jnp.int32))

    def update_fn(grads, state, params=None, **extra_args):
        if params is None:
            raise ValueError("lookahead's update needs params (the fast weights)")
        updates, inner = opt.update(grads, state.inner, params, **extra_args)
        count = optax.safe_increment(state.count)
        sync = count % sync_period == 0

        moved = jax.tree.map(lambda p, u, s: s + slow_step_size * (p + u - s),
                             params, updates, state.slow)
        updates = jax.tree.map(lambda p, u, m: jnp.where(sync, m - p, u), params, updates, moved)
        slow = jax.tree.map(lambda m, s: jnp.where(sync, m, s), moved, state.slow)
        return updates, LookaheadState(inner, slow, count)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def slow_params(state: LookaheadState, params: optax.Params) -> optax.Params:
    """The slow weights, the point to evaluate a Lookahead run at."""
    del params
    return state.slow


def ranger(
    learning_rate: optax.ScalarOrSchedule = 1e-3,
    sync_period: int = 5,
    slow_step_size: float = 0.5,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    threshold: float = 5.0,
    before_threshold: str = "sgd",
) -> optax.GradientTransformationExtraArgs:
    """Lookahead over RAdam (the "Ranger" combination), Lookahead's k=5, alpha=0.5 defaults."""
    fast = radam(learning_rate, b1, b2, eps, threshold=threshold,
                 before_threshold=before_threshold)
    return lookahead(fast, sync_period, slow_step_size)
