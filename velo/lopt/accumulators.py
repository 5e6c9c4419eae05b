"""Per-tensor gradient accumulators: momenta, second moment and Adafactor-factored moments.

Everything is float32 whatever the parameter dtype. EMAs are stored raw and bias-corrected when
read (`debias`), a scalar factor per tensor, so early steps are not dominated by the zero init.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from velo.lopt import sampling
from velo.lopt.config import Config


class SampledMomenta(NamedTuple):
    """Momenta of a tensor of shape ``S`` when the per-parameter MLP reads only the first ``k``
    per element (`Config.full_momenta`): the others are kept at the statistics sample only
    (`sampling.take`), where the LSTM's statistics read them, exactly as if kept in full.

    Attributes:
      full: ``[k, *S]``, EMAs of g at the first ``k`` `Config.momentum_decays`.
      sampled: ``[3 - k, n]``, EMAs of the ``n`` sampled elements of g at the others.
    """

    full: jax.Array
    sampled: jax.Array


class TensorMoments(NamedTuple):
    """Accumulators of one parameter tensor of shape ``S``; the 3 decays of each kind are stacked
    on a leading axis, so every kind is updated by one array op (few ops compile fast).

    Attributes:
      momenta: ``[3, *S]``, EMAs of g at `Config.momentum_decays`, or `SampledMomenta`
        when the per-parameter MLP does not read them all per element.
      second: ``S``, EMA of g**2 at `Config.second_moment_decay`.
      rows: at `Config.factored_decays`: for rank >= 2, ``[3, *S[:-1], 1]``, EMAs of g**2
        averaged over the last axis; below rank 2, ``[3, *S]``, the full EMAs of g**2.
      cols: for rank >= 2, ``[3, *S[:-2], 1, S[-1]]``, EMAs of g**2 averaged over axis -2;
        below rank 2, None.
    """

    momenta: jax.Array | SampledMomenta
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
    k, decays = config.full_momenta, len(config.momentum_decays)
    momenta = zeros((decays, *shape))
    if k < decays:
        n = sampling.size(shape, config.stats_sample)
        momenta = SampledMomenta(zeros((k, *shape)), zeros((decays - k, n)))
    return TensorMoments(momenta, zeros(shape), rows, cols)


def stacked(values: tuple[float, ...], ndim: int) -> jax.Array:
    """``[len(values), 1, ...]`` float32 (``ndim`` trailing unit axes), to broadcast against a
    stack of accumulators."""
    return jnp.asarray(values, jnp.float32).reshape(-1, *(1,) * ndim)


def _ema(old: jax.Array, new: jax.Array, decay, skip=None) -> jax.Array:
    """``decay * old + (1 - decay) * new``; ``old`` itself where ``skip`` (decay 1, weight 0)."""
    weight = 1.0 - decay
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
    moments: TensorMoments, g: jax.Array, squares, config: Config, skip=None
) -> TensorMoments:
    """Fold the float32 gradient ``g`` and its `gradient_squares` ``squares`` into the moments.

    Where the boolean scalar ``skip`` (None: never) is True every decay is taken as 1, so the
    accumulators come back unchanged provided ``g`` and ``squares`` are finite (`scale_by_lopt`
    zeroes them); the EMAs of a step that is not skipped are exactly those without ``skip``.
    """
    rows, cols = squares
    ema = functools.partial(_ema, skip=skip)
    factored = stacked(config.factored_decays, g.ndim)
    momenta = _update_momenta(moments.momenta, g, config, ema)
    second = ema(moments.second, jnp.square(g), config.second_moment_decay)
    new_cols = None if cols is None else ema(moments.cols, cols, factored)
    return TensorMoments(momenta, second, ema(moments.rows, rows, factored), new_cols)


def _update_momenta(momenta, g: jax.Array, config: Config, ema):
    """The momenta (an array or `SampledMomenta`) with ``g`` folded in by ``ema``."""
    decays = config.momentum_decays
    if not isinstance(momenta, SampledMomenta):
        return ema(momenta, g, stacked(decays, g.ndim))
    k = momenta.full.shape[0]
    sample = sampling.take(g, g.shape, config.stats_sample)
    return SampledMomenta(
        ema(momenta.full, g, stacked(decays[:k], g.ndim)),
        ema(momenta.sampled, sample, stacked(decays[k:], 1)),
    )


def debias(decay, count: jax.Array) -> jax.Array:
    """Bias-correction factor 1 / (1 - decay**count) for an EMA of ``count`` >= 1 values
    (``decay`` a float or an array of them)."""
    return 1.0 / (1.0 - jnp.power(jnp.asarray(decay, jnp.float32), count.astype(jnp.float32)))
