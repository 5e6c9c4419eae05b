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

from velo.lopt.accumulators import TensorMoments, debias, second_moment_scale, stacked
from velo.lopt.config import Config

NUM_ELEMENT_FEATURES = 30
# Features [0, PER_ELEMENT) vary per element; then 6 row-factor and 6 column-factor features.
PER_ELEMENT = 18
ROW_FEATURES = slice(18, 24)
COL_FEATURES = slice(24, 30)
STATS_SAMPLE = 1 << 15
NUM_TENSOR_FEATURES = 16
MAX_RANK = 4
# `tensor_summary` layout: 22 sample means, 12 factor means, 3 slow-moment means, 6 static.
_SLOW = 4 + NUM_ELEMENT_FEATURES
SUMMARY_SIZE = _SLOW + 3 + MAX_RANK + 2
# Relative epsilon under rsqrt: second moments are O(1) after dividing by s.
_EPS = 1e-10
_TINY = 1e-30


class ElementInputs(NamedTuple):
    """Float32 per-element quantities of one tensor of shape ``S``, gradient ones divided by s.

    The 3 decays of a kind are stacked on a leading axis. Small arrays (row/column factors of
    rank >= 2 tensors) stay small: they broadcast against ``S``, so nothing of size ``S`` is
    computed from them until the elementwise pass.

    Attributes:
      p: ``S`` parameters.
      g: ``S`` gradient / sqrt(s).
      momenta: ``[3, *S]`` bias-corrected momenta / sqrt(s).
      second: ``S`` bias-corrected second moment / s.
      rows: ``[3, ...]`` row factors (rank >= 2, broadcastable) or full second moments (below),
        / s.
      cols: ``[3, ...]`` column factors (rank >= 2) or the full second moments again (below), / s.
      inv_rows, inv_cols: rsqrt(rows + eps), rsqrt(cols + eps).
      inv_factored: ``[3, ...]`` rsqrt of the Adafactor estimate row * col / mean(row), from the
        small factors (for rank < 2, ``inv_rows``).
    """

    p: jax.Array
    g: jax.Array
    momenta: jax.Array
    second: jax.Array
    rows: jax.Array
    cols: jax.Array
    inv_rows: jax.Array
    inv_cols: jax.Array
    inv_factored: jax.Array


def element_inputs(
    p: jax.Array, g: jax.Array, moments: TensorMoments, count: jax.Array, config: Config
) -> ElementInputs:
    """Scale-free inputs from float32 ``p``, ``g`` and ``moments`` that have seen ``count`` >= 1
    gradients."""
    s = second_moment_scale(moments, config, count) + _TINY
    inv_root = jax.lax.rsqrt(s)
    momenta = moments.momenta * (debias(stacked(config.momentum_decays, p.ndim), count) * inv_root)
    second = moments.second * (debias(config.second_moment_decay, count) / s)
    factored = debias(stacked(config.factored_decays, p.ndim), count) / s
    rows = moments.rows * factored
    inv_rows = jax.lax.rsqrt(rows + _EPS)
    if moments.cols is None:
        cols, inv_cols, inv_factored = rows, inv_rows, inv_rows
    else:
        cols = moments.cols * factored
        inv_cols = jax.lax.rsqrt(cols + _EPS)
        inv_factored = inv_rows * inv_cols * jnp.sqrt(jnp.mean(rows, axis=-2, keepdims=True))
    return ElementInputs(
        p, g * inv_root, momenta, second, rows, cols, inv_rows, inv_cols, inv_factored
    )


def element_features(x: ElementInputs) -> list[jax.Array]:
    """The per-parameter MLP's 30 raw inputs (before RMS normalisation), each broadcastable to S.

    Per element (18): g, clipped preconditioned g, p, 3 momenta, second moment,
    3 momenta / sqrt(second), rsqrt(second), g / sqrt(second), 3 g / sqrt(factored),
    3 momenta / sqrt(factored). Row factors (6): 3 rows, 3 rsqrt(rows). Column factors (6):
    3 columns, 3 rsqrt(columns) (`factor_features`). Below rank 2 the "factors" are the full
    second moments.

    Only one transcendental per element (rsqrt of the second moment): the factored ones are
    products of rsqrts of the small row and column vectors.
    """
    r = jax.lax.rsqrt(x.second + _EPS)
    feats = [x.g, jnp.clip(x.g * r, -1.0, 1.0), x.p, *x.momenta, x.second]
    feats += [*(x.momenta * r), r, x.g * r, *(x.g * x.inv_factored)]
    feats += [*(x.momenta * x.inv_factored)]
    return feats + [*x.rows, *x.inv_rows, *x.cols, *x.inv_cols]


def factor_features(x: ElementInputs) -> tuple[jax.Array, jax.Array]:
    """Features 18-23 (row factors) and 24-29 (column factors), each stacked: ``[6, ...]``."""
    return (
        jnp.concatenate([x.rows, x.inv_rows]),
        jnp.concatenate([x.cols, x.inv_cols]),
    )


def tensor_summary(x: ElementInputs) -> jax.Array:
    """``[SUMMARY_SIZE]`` raw per-tensor statistics: one variadic reduction over (a sample of)
    the tensor, and one over each stack of small factor vectors.

    `summary_features` turns summaries, stacked over all tensors, into the LSTM inputs and the
    feature RMS in one batched computation, so the per-tensor program stays small.
    """
    shape = x.p.shape
    # Sample the inputs, not the features: the full-size features then have a single consumer
    # (the elementwise update pass), so XLA fuses them there instead of materialising them.
    sample = _sample(x, shape)
    channels = [sample.p, *sample.momenta]
    channels += [jnp.square(f) for f in element_features(sample)[:PER_ELEMENT]]
    # The mean of a broadcast factor over the tensor is its own mean.
    rows, cols = factor_features(x)
    slow = x.rows[-1]  # the slow second moment, averaged along rows for rank >= 2
    slow = jnp.stack([jnp.sqrt(slow), slow, jnp.log(slow + _EPS)])
    rank = min(len(shape), MAX_RANK)
    static = [float(rank == r) for r in range(MAX_RANK + 1)] + [np.log1p(x.p.size) / 10.0]
    return jnp.concatenate(
        [
            _means(channels),
            _mean_per_row(jnp.square(rows)),
            _mean_per_row(jnp.square(cols)),
            _mean_per_row(slow),
            jnp.asarray(static, jnp.float32),
        ]
    )


def summary_features(summary: jax.Array) -> tuple[jax.Array, jax.Array]:
    """From ``[..., SUMMARY_SIZE]`` summaries (`tensor_summary`):

    Returns:
      ``[..., NUM_TENSOR_FEATURES]`` LSTM inputs (rank one-hot and size included) and
      ``[..., NUM_ELEMENT_FEATURES]`` RMS of each element feature, used to normalise them.
    """
    p_mean, m_mean = summary[..., 0], summary[..., 1:4]
    squares = summary[..., 4 : 4 + NUM_ELEMENT_FEATURES]
    p_ms, m_ms = squares[..., 2], squares[..., 3:6]
    sqrt_slow, slow, log_slow = (summary[..., _SLOW + i] for i in range(3))
    lstm = [
        (p_mean * jax.lax.rsqrt(p_ms + _TINY))[..., None],
        ((p_ms - jnp.square(p_mean)) / (p_ms + _TINY))[..., None],
        _log_ratio(m_ms, 1.0),
        jnp.square(m_mean) / (m_ms + _TINY),
        _log_ratio(jnp.square(sqrt_slow), slow)[..., None],
        ((log_slow - jnp.log(slow + _EPS)) / 5.0)[..., None],
        summary[..., _SLOW + 3 :],
    ]
    return jnp.concatenate(lstm, axis=-1), jnp.sqrt(squares + _TINY)


def tensor_statistics(x: ElementInputs) -> tuple[jax.Array, jax.Array]:
    """One tensor's `summary_features`: ``([NUM_TENSOR_FEATURES], [NUM_ELEMENT_FEATURES])``."""
    return summary_features(tensor_summary(x))


def _sample(x: ElementInputs, shape: tuple[int, ...]) -> ElementInputs:
    """Every input flattened over ``shape`` (leading stack axes kept): all elements, or a fixed
    strided sample of `STATS_SAMPLE` of them for larger tensors."""
    size = int(np.prod(shape))
    stride = max(1, size // STATS_SAMPLE)
    stop = (size // stride) * stride

    def take(a):
        lead = a.shape[: a.ndim - len(shape)]
        return jnp.broadcast_to(a, (*lead, *shape)).reshape(*lead, -1)[..., :stop:stride]

    return jax.tree.map(take, x)


def _means(channels: list[jax.Array]) -> jax.Array:
    """``[len(channels)]`` means of equal-length 1-D arrays, as ONE variadic reduce."""
    zeros = tuple(jnp.zeros((), jnp.float32) for _ in channels)
    sums = jax.lax.reduce(
        tuple(channels), zeros, lambda a, b: tuple(u + v for u, v in zip(a, b, strict=True)), (0,)
    )
    return jnp.stack(sums) / max(1, channels[0].shape[0])


def _mean_per_row(stack: jax.Array) -> jax.Array:
    """``[k]`` means over all but the leading axis of a ``[k, ...]`` stack."""
    return jnp.mean(stack, axis=tuple(range(1, stack.ndim)))


def _log_ratio(num, den):
    """log(num / den) squashed into [-2, 2]: sizes of ratios that span many decades."""
    return jnp.clip(jnp.log(num + _TINY) - jnp.log(den + _TINY), -10.0, 10.0) / 5.0


def progress_features(count: jax.Array, num_steps, config: Config) -> jax.Array:
    """``[len(progress_offsets)]`` tanh(10 (t/T - s)) for t = ``count``, T = ``num_steps``."""
    frac = count.astype(jnp.float32) / jnp.asarray(num_steps, jnp.float32)
    return jnp.tanh(10.0 * (frac - jnp.asarray(config.progress_offsets, jnp.float32)))


def lstm_input_size(config: Config) -> int:
    """Width of the LSTM input: progress, loss and per-tensor features."""
    return len(config.progress_offsets) + 2 * config.num_loss_emas - 1 + NUM_TENSOR_FEATURES
