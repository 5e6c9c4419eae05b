"""Per-tensor gradient accumulators: momenta, second moment and Adafactor-factored moments.

Everything is float32 whatever the parameter dtype. EMAs are stored raw and bias-corrected when
read (`debias`), a scalar factor per tensor, so early steps are not dominated by the zero init.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from velo.lopt.config import Config


class TensorMoments(NamedTuple):
    """Accumulators of one parameter tensor of shape ``S``.

    Attributes:
      momenta: EMAs of g, one ``S`` array per `Config.momentum_decays` entry.
      second: ``S``, EMA of g**2 at `Config.second_moment_decay`.
      rows: one array per `Config.factored_decays` entry: for rank >= 2, ``S[:-1] + (1,)``, EMA
        of g**2 averaged over the last axis; below rank 2, ``S``, the full EMA of g**2.
      cols: for rank >= 2, ``S[:-2] + (1, S[-1])``, EMAs of g**2 averaged over axis -2; below
        rank 2, empty.
    """

    momenta: tuple[jax.Array, ...]
    second: jax.Array
    rows: tuple[jax.Array, ...]
    cols: tuple[jax.Array, ...]


def is_factored(shape: tuple[int, ...]) -> bool:
    """Whether a tensor of ``shape`` keeps row/column moments instead of full ones."""
    return len(shape) >= 2


def init_moments(shape: tuple[int, ...], config: Config) -> TensorMoments:
    """Zero accumulators for a tensor of ``shape``."""
    zeros = jnp.zeros(shape, jnp.float32)
    n = len(config.factored_decays)
    if is_factored(shape):
        rows = tuple(jnp.zeros((*shape[:-1], 1), jnp.float32) for _ in range(n))
        cols = tuple(jnp.zeros((*shape[:-2], 1, shape[-1]), jnp.float32) for _ in range(n))
    else:
        rows, cols = (zeros,) * n, ()
    return TensorMoments((zeros,) * len(config.momentum_decays), zeros, rows, cols)


def _ema(old: jax.Array, new: jax.Array, decay: float) -> jax.Array:
    return decay * old + (1.0 - decay) * new


def update_moments(moments: TensorMoments, g: jax.Array, config: Config) -> TensorMoments:
    """Fold the float32 gradient ``g`` into every accumulator."""
    g2 = jnp.square(g)
    momenta = tuple(
        _ema(m, g, d) for m, d in zip(moments.momenta, config.momentum_decays, strict=True)
    )
    second = _ema(moments.second, g2, config.second_moment_decay)
    if moments.cols:
        row_g2 = jnp.mean(g2, axis=-1, keepdims=True)
        col_g2 = jnp.mean(g2, axis=-2, keepdims=True)
        rows = tuple(
            _ema(r, row_g2, d) for r, d in zip(moments.rows, config.factored_decays, strict=True)
        )
        cols = tuple(
            _ema(c, col_g2, d) for c, d in zip(moments.cols, config.factored_decays, strict=True)
        )
    else:
        rows = tuple(
            _ema(r, g2, d) for r, d in zip(moments.rows, config.factored_decays, strict=True)
        )
        cols = ()
    return TensorMoments(momenta, second, rows, cols)


def debias(decay: float, count: jax.Array) -> jax.Array:
    """Bias-correction factor 1 / (1 - decay**count) for an EMA of ``count`` >= 1 values."""
    return 1.0 / (1.0 - jnp.power(jnp.float32(decay), count.astype(jnp.float32)))


def second_moment_scale(moments: TensorMoments, config: Config, count: jax.Array) -> jax.Array:
    """Scalar: the tensor mean of the slowest factored moment, ~= mean of E[g**2].

    Cheap (it reads only the small row vector for rank >= 2) and used to make epsilons relative,
    so features do not change when the gradient is rescaled.
    """
    return jnp.mean(moments.rows[-1]) * debias(config.factored_decays[-1], count)
