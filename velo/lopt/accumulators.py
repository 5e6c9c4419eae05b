"""Per-tensor gradient accumulators: momenta, second moment and Adafactor-factored moments.

Everything is float32 whatever the parameter dtype. EMAs are stored raw and bias-corrected when
read (`debias`), a scalar factor per tensor, so early steps are not dominated by the zero init.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from velo.lopt.config import Config


class TensorMoments(NamedTuple):
    """Accumulators of one parameter tensor of shape ``S``; the 3 decays of each kind are stacked
    on a leading axis, so every kind is updated by one array op (few ops compile fast).

    Attributes:
      momenta: ``[3, *S]``, EMAs of g at `Config.momentum_decays`.
      second: ``S``, EMA of g**2 at `Config.second_moment_decay`.
      rows: at `Config.factored_decays`: for rank >= 2, ``[3, *S[:-1], 1]``, EMAs of g**2
        averaged over the last axis; below rank 2, ``[3, *S]``, the full EMAs of g**2.
      cols: for rank >= 2, ``[3, *S[:-2], 1, S[-1]]``, EMAs of g**2 averaged over axis -2;
        below rank 2, None.
    """

    momenta: jax.Array
    second: jax.Array
    rows: jax.Array
    cols: jax.Array | None


def is_factored(shape: tuple[int, ...]) -> bool:
    """Whether a tensor of ``shape`` keeps row/column moments instead of full ones."""
    return len(shape) >= 2


def init_moments(shape: tuple[int, ...], config: Config) -> TensorMoments:
    """Zero accumulators for a tensor of ``shape``."""
    zeros = functools.partial(jnp.zeros, dtype=jnp.float32)
    n = len(config.factored_decays)
    if is_factored(shape):
        rows, cols = zeros((n, *shape[:-1], 1)), zeros((n, *shape[:-2], 1, shape[-1]))
    else:
        rows, cols = zeros((n, *shape)), None
    return TensorMoments(zeros((len(config.momentum_decays), *shape)), zeros(shape), rows, cols)


def stacked(values: tuple[float, ...], ndim: int) -> jax.Array:
    """``[len(values), 1, ...]`` float32 (``ndim`` trailing unit axes), to broadcast against a
    stack of accumulators."""
    return jnp.asarray(values, jnp.float32).reshape(-1, *(1,) * ndim)


def _ema(old: jax.Array, new: jax.Array, decay) -> jax.Array:
    return decay * old + (1.0 - decay) * new


def update_moments(moments: TensorMoments, g: jax.Array, config: Config) -> TensorMoments:
    """Fold the float32 gradient ``g`` into every accumulator."""
    g2 = jnp.square(g)
    factored = stacked(config.factored_decays, g.ndim)
    momenta = _ema(moments.momenta, g, stacked(config.momentum_decays, g.ndim))
    second = _ema(moments.second, g2, config.second_moment_decay)
    if moments.cols is None:
        return TensorMoments(momenta, second, _ema(moments.rows, g2, factored), None)
    rows = _ema(moments.rows, jnp.mean(g2, axis=-1, keepdims=True), factored)
    cols = _ema(moments.cols, jnp.mean(g2, axis=-2, keepdims=True), factored)
    return TensorMoments(momenta, second, rows, cols)


def debias(decay, count: jax.Array) -> jax.Array:
    """Bias-correction factor 1 / (1 - decay**count) for an EMA of ``count`` >= 1 values
    (``decay`` a float or an array of them)."""
    return 1.0 / (1.0 - jnp.power(jnp.asarray(decay, jnp.float32), count.astype(jnp.float32)))
