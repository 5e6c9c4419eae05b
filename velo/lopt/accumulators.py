"""Per-tensor gradient accumulators: momenta, second moment and Adafactor-factored moments.

The full-size accumulators are kept per shape group of tensors (`TensorMoments`), the small
ones of all tensors on shared buffers (`SharedMoments`). Everything is float32 whatever the
parameter dtype. EMAs are stored raw and bias-corrected when read (`debias`), a scalar factor
per tensor, so early steps are not dominated by the zero init.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from velo.lopt.config import Config


class TensorMoments(NamedTuple):
    """Full-size accumulators of one parameter tensor of shape ``S``.

    Attributes:
      ema: ``[k + 1, *S]``: the EMAs of g at the first k = `Config.full_momenta` of
        `Config.momentum_decays`, then the EMA of g**2 at `Config.second_moment_decay`. One
        array, so that XLA updates them in one kernel that reads g once (as two arrays, two);
        the other momenta are kept at the statistics sample only (`SharedMoments.sampled`).
    """

    ema: jax.Array


class SharedMoments(NamedTuple):
    """The small accumulators of every tensor, each kind on one buffer that concatenates all
    tensors' entries (tensors in group order; `factors.FactorLayout`). XLA on CPU compiles every
    kernel separately: one EMA per buffer compiles to one kernel whatever the model, where one
    per tensor group made the EMAs the largest part of a small model's compile time.

    Attributes:
      rows: ``[3, R]``, EMAs of g**2 at `Config.factored_decays`: for rank >= 2, of g**2
        averaged over the last axis (``prod(S[:-1])`` entries); below rank 2, of g**2 itself.
      cols: ``[3, C]``, the same averaged over axis -2 (``prod(S[:-2]) * S[-1]`` entries; none
        below rank 2); None when no tensor has rank >= 2 (orbax saves no empty array).
      sampled: ``[3 - k, N]``, EMAs of the statistics sample of g (`sampling.take`, N entries
        over all tensors) at the momentum decays not kept in full (the LSTM's statistics read
        them exactly as if they were); None when all are kept in full.
    """

    rows: jax.Array
    cols: jax.Array | None
    sampled: jax.Array | None


def is_factored(shape: tuple[int, ...]) -> bool:
    """Whether a tensor of ``shape`` keeps row/column moments instead of full ones."""
    return len(shape) >= 2


def init_moments(shape: tuple[int, ...], config: Config) -> TensorMoments:
    """Zero full-size accumulators for a tensor of ``shape``."""
    return TensorMoments(jnp.zeros((config.full_momenta + 1, *shape), jnp.float32))


def init_shared(rows: int, cols: int, samples: int, config: Config) -> SharedMoments:
    """Zero `SharedMoments` with ``rows``, ``cols`` and ``samples`` entries over all tensors."""
    n, k = len(config.factored_decays), config.full_momenta
    sampled = len(config.momentum_decays) - k
    return SharedMoments(
        jnp.zeros((n, rows), jnp.float32),
        jnp.zeros((n, cols), jnp.float32) if cols else None,
        jnp.zeros((sampled, samples), jnp.float32) if sampled else None,
    )


def stacked(values: tuple[float, ...], ndim: int) -> jax.Array:
    """``[len(values), 1, ...]`` float32 (``ndim`` trailing unit axes), to broadcast against a
    stack of accumulators."""
    return jnp.asarray(values, jnp.float32).reshape(-1, *(1,) * ndim)


def _ema(old: jax.Array, new: jax.Array, decay, skip=None, weight=None) -> jax.Array:
    """``decay * old + weight * new``, weight ``1 - decay`` by default; ``old`` itself where
    ``skip`` (decay 1, weight 0)."""
    weight = 1.0 - decay if weight is None else weight
    if skip is not None:
        decay, weight = jnp.where(skip, 1.0, decay), jnp.where(skip, 0.0, weight)
    return decay * old + weight * new


def gradient_squares(g: jax.Array) -> tuple[jax.Array, jax.Array | None]:
    """What the factored moments average, from the float32 gradient ``g`` of shape ``S``.

    Returns:
      For rank >= 2, ``g**2`` averaged over the last axis, ``[*S[:-1], 1]``, and over axis -2,
      ``[*S[:-2], 1, S[-1]]``; below rank 2, ``g**2`` itself and None. Every element of ``g``
      enters a row, so a NaN or an infinity in ``g`` (or a square that overflows float32) makes
      a row non-finite.
    """
    g2 = jnp.square(g)
    if not is_factored(g.shape):
        return g2, None
    return jnp.mean(g2, axis=-1, keepdims=True), jnp.mean(g2, axis=-2, keepdims=True)


def update_moments(
    moments: TensorMoments, g: jax.Array, config: Config, skip=None
) -> TensorMoments:
    """Fold the float32 gradient ``g`` into one tensor's full-size moments.

    Where the boolean scalar ``skip`` (None: never) is True every decay is taken as 1, so the
    accumulators come back unchanged provided ``g`` is finite (`scale_by_lopt` zeroes it); the
    EMAs of a step that is not skipped are exactly those without ``skip``.
    """
    k = config.full_momenta
    decays = (*config.momentum_decays[:k], config.second_moment_decay)
    # The weights rounded as when the EMAs were separate arrays: 1 - decay in float32 for the
    # momenta, in float64 for the second moment.
    weights = (*(np.float32(1) - np.float32(d) for d in decays[:k]), 1.0 - decays[k])
    values = jnp.concatenate([jnp.broadcast_to(g, (k, *g.shape)), jnp.square(g)[None]])
    decays, weights = stacked(decays, g.ndim), stacked(weights, g.ndim)
    return TensorMoments(_ema(moments.ema, values, decays, skip, weights))


def update_shared(
    shared: SharedMoments, rows: jax.Array, cols: jax.Array, sample: jax.Array, config: Config,
    skip=None,
) -> SharedMoments:
    """Fold every tensor's `gradient_squares`, concatenated into ``[R]`` ``rows`` and ``[C]``
    ``cols``, and its statistics sample of g, concatenated into ``[N]`` ``sample``, into the
    `SharedMoments` (``skip`` as in `update_moments`)."""
    factored = stacked(config.factored_decays, 1)
    sampled = None
    if shared.sampled is not None:
        decays = stacked(config.momentum_decays[config.full_momenta :], 1)
        sampled = _ema(shared.sampled, sample, decays, skip)
    new_cols = None if shared.cols is None else _ema(shared.cols, cols, factored, skip)
    return SharedMoments(_ema(shared.rows, rows, factored, skip), new_cols, sampled)


def debias(decay, count: jax.Array) -> jax.Array:
    """Bias-correction factor 1 / (1 - decay**count) for an EMA of ``count`` >= 1 values
    (``decay`` a float or an array of them)."""
    return 1.0 / (1.0 - jnp.power(jnp.asarray(decay, jnp.float32), count.astype(jnp.float32)))
