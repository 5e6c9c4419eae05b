"""What the learned optimizer sees: per-element MLP inputs and per-tensor LSTM inputs.

Every feature is scale-free. Gradient quantities are divided by ``sqrt(s)``, with ``s`` the
tensor mean of E[g**2] (read cheaply from the slow factored moment); the per-element features
are then divided by their RMS over the tensor, and the per-tensor summaries are ratios. So
multiplying a tensor's weights, or its gradients, by a constant leaves all features unchanged up
to rounding (and to epsilons far below any realistic scale).

Cost: the features are recomputed rather than stored (30 floats per parameter would dwarf the
optimizer state); all per-tensor statistics come from ONE fused reduction over a stacked view.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from velo.lopt.accumulators import TensorMoments, debias, second_moment_scale
from velo.lopt.config import Config

NUM_ELEMENT_FEATURES = 30
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
        m * (debias(d, count) * inv_root) for m, d in zip(moments.momenta, config.momentum_decays)
    )
    second = moments.second * (debias(config.second_moment_decay, count) / s)
    rows = tuple(r * (debias(d, count) / s) for r, d in zip(moments.rows, config.factored_decays))
    inv_rows = tuple(jax.lax.rsqrt(r + _EPS) for r in rows)
    if moments.cols:
        cols = tuple(
            c * (debias(d, count) / s) for c, d in zip(moments.cols, config.factored_decays)
        )
        inv_cols = tuple(jax.lax.rsqrt(c + _EPS) for c in cols)
        inv_factored = tuple(
            ir * ic * jnp.sqrt(jnp.mean(r, axis=-2, keepdims=True))
            for r, ir, ic in zip(rows, inv_rows, inv_cols)
        )
    else:
        cols, inv_cols, inv_factored = rows, inv_rows, inv_rows
    return ElementInputs(
        p, g * inv_root, momenta, second, rows, cols, inv_rows, inv_cols, inv_factored
    )


def element_features(x: ElementInputs) -> list[jax.Array]:
    """The per-parameter MLP's 30 raw inputs (before RMS normalisation), each broadcastable to S.

    Order: g, clipped preconditioned g, p, 3 momenta, second moment, 3 momenta / sqrt(second),
    rsqrt(second), g / sqrt(second), 3 g / sqrt(factored), 3 momenta / sqrt(factored),
    3 row factors, 3 column factors, 3 rsqrt(row), 3 rsqrt(column).

    Only one transcendental per element (rsqrt of the second moment): the factored ones are
    products of rsqrts of the small row and column vectors.
    """
    r = jax.lax.rsqrt(x.second + _EPS)
    feats = [x.g, jnp.clip(x.g * r, -1.0, 1.0), x.p, *x.momenta, x.second]
    feats += [m * r for m in x.momenta]
    feats += [r, x.g * r]
    feats += [x.g * rf for rf in x.inv_factored]
    feats += [m * rf for m, rf in zip(x.momenta, x.inv_factored)]
    feats += [*x.rows, *x.cols, *x.inv_rows, *x.inv_cols]
    return feats


def tensor_statistics(x: ElementInputs) -> tuple[jax.Array, jax.Array]:
    """Per-tensor statistics, from one variadic reduction over the tensor.

    Returns:
      ``[NUM_TENSOR_FEATURES]`` LSTM inputs of this tensor (rank one-hot and size included) and
      ``[NUM_ELEMENT_FEATURES]`` RMS of each element feature, used to normalise them.
    """
    feats = element_features(x)
    shape = x.p.shape
    root_second = x.second * feats[10]  # feature 10 is rsqrt(second)
    channels = [x.p, *x.momenta, root_second, x.second, jnp.log(x.second + _EPS)]
    channels += [jnp.square(f) for f in feats]
    means = _means(channels, shape)
    p_mean, m_mean, root_mean, second_mean, log_mean = (
        means[0], means[1:4], means[4], means[5], means[6]
    )
    squares = means[7:]
    p_ms, m_ms = squares[2], squares[3:6]
    lstm = [
        p_mean * jax.lax.rsqrt(p_ms + _TINY),
        (p_ms - jnp.square(p_mean)) / (p_ms + _TINY),
        *_log_ratio(m_ms, 1.0),
        *(jnp.square(m_mean) / (m_ms + _TINY)),
        _log_ratio(jnp.square(root_mean), second_mean),
        (log_mean - jnp.log(second_mean + _EPS)) / 5.0,
        *_rank_one_hot(len(shape)),
        jnp.float32(jnp.log1p(x.p.size) / 10.0),
    ]
    return jnp.stack([jnp.asarray(v, jnp.float32) for v in lstm]), jnp.sqrt(squares + _TINY)


def _means(channels: list[jax.Array], shape: tuple[int, ...]) -> jax.Array:
    """``[len(channels)]`` tensor means, as ONE variadic reduce so XLA reads the inputs once."""
    operands = tuple(jnp.broadcast_to(c, shape).astype(jnp.float32) for c in channels)
    zeros = tuple(jnp.zeros((), jnp.float32) for _ in channels)
    sums = jax.lax.reduce(
        operands, zeros, lambda a, b: tuple(u + v for u, v in zip(a, b)), tuple(range(len(shape)))
    )
    return jnp.stack(sums) / max(1, int(np.prod(shape)))


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
