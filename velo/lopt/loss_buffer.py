"""Loss EMAs at log-spaced half-lives with running minima, and the loss features read from them.

The features compare EMAs against each other and against their own running minima, divided by
the buffer's spread, so they do not change when the loss is shifted or rescaled.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from velo.lopt.config import Config


class LossBuffer(NamedTuple):
    """Attributes:
    emas: ``[num_loss_emas]`` raw (not bias-corrected) EMAs of the loss, shortest half-life first.
    minima: ``[num_loss_emas]`` running minima of the bias-corrected EMAs.
    """

    emas: jax.Array
    minima: jax.Array


def init_loss_buffer(config: Config) -> LossBuffer:
    zeros = jnp.zeros((config.num_loss_emas,), jnp.float32)
    return LossBuffer(zeros, zeros)


def loss_decays(num_steps, config: Config) -> jax.Array:
    """``[num_loss_emas]`` decays with half-lives log-spaced from `min_loss_half_life` to
    ``num_steps`` (which may be traced)."""
    low = jnp.log(jnp.float32(config.min_loss_half_life))
    high = jnp.log(
        jnp.maximum(jnp.asarray(num_steps, jnp.float32), 2.0 * config.min_loss_half_life)
    )
    half_lives = jnp.exp(jnp.linspace(low, high, config.num_loss_emas))
    return jnp.power(0.5, 1.0 / half_lives)


def _debiased(buffer: LossBuffer, decays: jax.Array, count: jax.Array) -> jax.Array:
    n = jnp.maximum(count, 1).astype(jnp.float32)
    return buffer.emas / (1.0 - jnp.power(decays, n))


def _max_min(a: jax.Array, b: jax.Array, c: jax.Array | None = None) -> tuple[jax.Array, ...]:
    """``(max(a), min(b))``, and ``max(c)`` if given, of 1-D arrays as ONE variadic reduce: XLA
    on CPU compiles every reduction as a kernel of its own, at ~10 ms of compile time each."""
    arrays = (a, -b) if c is None else (a, -b, c)
    inits = tuple(jnp.array(-jnp.inf, jnp.float32) for _ in arrays)
    out = jax.lax.reduce(arrays, inits, lambda x, y: tuple(map(jnp.maximum, x, y)), (0,))
    return (out[0], -out[1], *out[2:])


def update_loss_buffer(
    buffer: LossBuffer, loss: jax.Array, count: jax.Array, decays: jax.Array
) -> LossBuffer:
    """Fold in ``loss`` after ``count`` earlier losses.

    The loss is first clipped from above near the buffer's range, so one exploding minibatch does
    not swamp the slow EMAs.
    """
    loss = jnp.asarray(loss, jnp.float32)
    means = _debiased(buffer, decays, count)
    top, low = _max_min(means, buffer.minima)
    spread = top - low
    ceiling = top + jnp.maximum(4.0 * spread, jnp.abs(top))
    loss = jnp.where(count > 0, jnp.minimum(loss, ceiling), loss)
    emas = decays * buffer.emas + (1.0 - decays) * loss
    updated = LossBuffer(emas, buffer.minima)
    means = _debiased(updated, decays, count + 1)
    minima = jnp.where(count > 0, jnp.minimum(buffer.minima, means), means)
    return LossBuffer(emas, minima)


def loss_features(buffer: LossBuffer, count: jax.Array, decays: jax.Array) -> jax.Array:
    """``[2 * num_loss_emas - 1]`` features in [-1, 1], zero until 3 losses have been seen.

    For each EMA, its height above its running minimum; for each adjacent pair, how much the
    shorter EMA lies below the longer one (recent progress). Both are divided by the buffer's
    spread (largest EMA minus smallest minimum).
    """
    means = _debiased(buffer, decays, count)
    top, low, size = _max_min(means, buffer.minima, jnp.abs(means))
    spread = top - low + 1e-7 * size + jnp.finfo(jnp.float32).tiny
    height = 2.0 * jnp.clip((means - buffer.minima) / spread, 0.0, 1.0) - 1.0
    trend = jnp.clip((means[:-1] - means[1:]) / spread, -1.0, 1.0)
    feats = jnp.concatenate([height, trend])
    return jnp.where(count > 2, feats, jnp.zeros_like(feats))
