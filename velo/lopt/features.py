"""What the learned optimizer sees: per-element MLP inputs and per-tensor LSTM inputs.

Every feature is scale-free. Gradient quantities are divided by ``sqrt(s)``, with ``s`` the
tensor mean of E[g**2] (read cheaply from the slow factored moment); the per-element features
are then divided by their RMS over the tensor, and the per-tensor summaries are ratios. So
multiplying a tensor's weights, or its gradients, by a constant leaves all features unchanged up
to rounding (and to epsilons far below any realistic scale).

Cost: the features are recomputed rather than stored (30 floats per parameter would dwarf the
optimizer state). 12 of the 30 are row or column factors: their statistics come from the small
factor vectors, and the MLP sums their contributions on those vectors (see `param_mlp.apply`).
The statistics of the other 18 come from one variadic reduction, over every element for tensors
of up to `STATS_SAMPLE` elements and over a fixed strided sample of that size above: the sample
bounds the per-tensor cost (XLA on CPU does not fuse 20-odd reductions into one pass) and, being
fixed, keeps results deterministic and identical sharded or not.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from velo.lopt.accumulators import TensorMoments, debias, second_moment_scale
from velo.lopt.config import Config

NUM_ELEMENT_FEATURES = 30
# Features [0, PER_ELEMENT) vary per element; then 6 row-factor and 6 column-factor features.
PER_ELEMENT = 18
ROW_FEATURES = slice(18, 24)
COL_FEATURES = slice(24, 30)
STATS_SAMPLE = 1 << 15
NUM_TENSOR_FEATURES = 16
MAX_RANK = 4
# Relative epsilon under rsqrt: second moments are O(1) after dividing by s.
_EPS = 1e-10
_TINY = 1e-30


class ElementInputs(NamedTuple):
    """Float32 per-element quantities of one tensor of shape ``S``, gradient ones divided by s.

    Small arrays (row/column factors of rank >= 2 tensors) stay small: they broadcast against
    ``S``, so nothing of size ``S`` is computed from them until the elementwise pass.

    Attributes:
      p: ``S`` parameters.
      g: ``S`` gradient / sqrt(s).
      momenta: 3 x ``S`` bias-corrected momenta / sqrt(s).
      second: ``S`` bias-corrected second moment / s.
      rows: 3 row factors (rank >= 2, broadcastable) or full second moments (below), / s.
      cols: 3 column factors (rank >= 2) or the full second moments again (below), / s.
      inv_rows, inv_cols: rsqrt(rows + eps), rsqrt(cols + eps).
      inv_factored: 3 x rsqrt of the Adafactor estimate row * col / mean(row), from the small
        factors (for rank < 2, ``inv_rows``).
    """

    p: jax.Array
    g: jax.Array
    momenta: tuple[jax.Array, ...]
    second: jax.Array
    rows: tuple[jax.Array, ...]
    cols: tuple[jax.Array, ...]
    inv_rows: tuple[jax.Array, ...]
    inv_cols: tuple[jax.Array, ...]
    inv_factored: tuple[jax.Array, ...]


def element_inputs(
    p: jax.Array, g: jax.Array, moments: TensorMoments, count: jax.Array, config: Config
) -> ElementInputs:
    """Scale-free inputs from float32 ``p``, ``g`` and ``moments`` that have seen ``count`` >= 1
    gradients."""
    s = second_moment_scale(moments, config, count) + _TINY
    inv_root = jax.lax.rsqrt(s)
    momenta = tuple(
        m * (debias(d, count) * inv_root)
        for m, d in zip(moments.momenta, config.momentum_decays, strict=True)
    )
    second = moments.second * (debias(config.second_moment_decay, count) / s)
    rows = tuple(
        r * (debias(d, count) / s)
        for r, d in zip(moments.rows, config.factored_decays, strict=True)
    )
    inv_rows = tuple(jax.lax.rsqrt(r + _EPS) for r in rows)
    if moments.cols:
        cols = tuple(
            c * (debias(d, count) / s)
            for c, d in zip(moments.cols, config.factored_decays, strict=True)
        )
        inv_cols = tuple(jax.lax.rsqrt(c + _EPS) for c in cols)
        inv_factored = tuple(
            ir * ic * jnp.sqrt(jnp.mean(r, axis=-2, keepdims=True))
            for r, ir, ic in zip(rows, inv_rows, inv_cols, strict=True)
        )
    else:
        cols, inv_cols, inv_factored = rows, inv_rows, inv_rows
    return ElementInputs(
        p, g * inv_root, momenta, second, rows, cols, inv_rows, inv_cols, inv_factored
    )


def element_features(x: ElementInputs) -> list[jax.Array]:
    """The per-parameter MLP's 30 raw inputs (before RMS normalisation), each broadcastable to S.

    Per element (18): g, clipped preconditioned g, p, 3 momenta, second moment,
    3 momenta / sqrt(second), rsqrt(second), g / sqrt(second), 3 g / sqrt(factored),
    3 momenta / sqrt(factored). Row factors (6): 3 rows, 3 rsqrt(rows). Column factors (6):
    3 columns, 3 rsqrt(columns). Below rank 2 the "factors" are the full second moments.

    Only one transcendental per element (rsqrt of the second moment): the factored ones are
    products of rsqrts of the small row and column vectors.
    """
    r = jax.lax.rsqrt(x.second + _EPS)
    feats = [x.g, jnp.clip(x.g * r, -1.0, 1.0), x.p, *x.momenta, x.second]
    feats += [m * r for m in x.momenta]
    feats += [r, x.g * r]
    feats += [x.g * rf for rf in x.inv_factored]
    feats += [m * rf for m, rf in zip(x.momenta, x.inv_factored, strict=True)]
    feats += [*x.rows, *x.inv_rows, *x.cols, *x.inv_cols]
    return feats


def tensor_statistics(x: ElementInputs) -> tuple[jax.Array, jax.Array]:
    """Per-tensor statistics: one variadic reduction over (a sample of) the tensor, plus
    reductions over the small factor vectors.

    Returns:
      ``[NUM_TENSOR_FEATURES]`` LSTM inputs of this tensor (rank one-hot and size included) and
      ``[NUM_ELEMENT_FEATURES]`` RMS of each element feature, used to normalise them.
    """
    shape = x.p.shape
    # Sample the inputs, not the features: the full-size features then have a single consumer
    # (the elementwise update pass), so XLA fuses them there instead of materialising them.
    sample = _sample(x, shape)
    channels = [sample.p, *sample.momenta]
    channels += [jnp.square(f) for f in element_features(sample)[:PER_ELEMENT]]
    means = _means(channels)
    feats = element_features(x)
    # The mean of a broadcast factor over the tensor is its own mean.
    factor_squares = jnp.stack([jnp.mean(jnp.square(f)) for f in feats[PER_ELEMENT:]])
    squares = jnp.concatenate([means[4:], factor_squares])
    p_mean, m_mean = means[0], means[1:4]
    p_ms, m_ms = squares[2], squares[3:6]
    slow = x.rows[-1]  # the slow second moment, averaged along rows for rank >= 2
    lstm = [
        p_mean * jax.lax.rsqrt(p_ms + _TINY),
        (p_ms - jnp.square(p_mean)) / (p_ms + _TINY),
        *_log_ratio(m_ms, 1.0),
        *(jnp.square(m_mean) / (m_ms + _TINY)),
        _log_ratio(jnp.square(jnp.mean(jnp.sqrt(slow))), jnp.mean(slow)),
        (jnp.mean(jnp.log(slow + _EPS)) - jnp.log(jnp.mean(slow) + _EPS)) / 5.0,
        *_rank_one_hot(len(shape)),
        jnp.float32(jnp.log1p(x.p.size) / 10.0),
    ]
    return jnp.stack([jnp.asarray(v, jnp.float32) for v in lstm]), jnp.sqrt(squares + _TINY)


def _sample(x: ElementInputs, shape: tuple[int, ...]) -> ElementInputs:
    """Every input flattened to 1-D: all elements, or a fixed strided sample of `STATS_SAMPLE`
    of them for larger tensors."""
    size = int(np.prod(shape))
    stride = max(1, size // STATS_SAMPLE)
    stop = (size // stride) * stride

    def take(a):
        return jnp.broadcast_to(a, shape).reshape(-1)[:stop:stride]

    return jax.tree.map(take, x)


def _means(channels: list[jax.Array]) -> jax.Array:
    """``[len(channels)]`` means of equal-length 1-D arrays, as ONE variadic reduce."""
    zeros = tuple(jnp.zeros((), jnp.float32) for _ in channels)
    sums = jax.lax.reduce(
        tuple(channels), zeros, lambda a, b: tuple(u + v for u, v in zip(a, b, strict=True)), (0,)
    )
    return jnp.stack(sums) / max(1, channels[0].shape[0])


def _log_ratio(num, den):
    """log(num / den) squashed into [-2, 2]: sizes of ratios that span many decades."""
    return jnp.clip(jnp.log(num + _TINY) - jnp.log(den + _TINY), -10.0, 10.0) / 5.0


def _rank_one_hot(rank: int) -> list[jax.Array]:
    rank = min(rank, MAX_RANK)
    return [jnp.float32(rank == r) for r in range(MAX_RANK + 1)]


def progress_features(count: jax.Array, num_steps, config: Config) -> jax.Array:
    """``[len(progress_offsets)]`` tanh(10 (t/T - s)) for t = ``count``, T = ``num_steps``."""
    frac = count.astype(jnp.float32) / jnp.asarray(num_steps, jnp.float32)
    return jnp.tanh(10.0 * (frac - jnp.asarray(config.progress_offsets, jnp.float32)))


def lstm_input_size(config: Config) -> int:
    """Width of the LSTM input: progress, loss and per-tensor features."""
    return len(config.progress_offsets) + 2 * config.num_loss_emas - 1 + NUM_TENSOR_FEATURES
