"""RAdam (Liu et al., 2020) on optax's `scale_by_radam`, with a choice of what happens early on.

The rectification term r_t needs the length of the approximated simple moving average
rho_t = rho_inf - 2 t b2^t / (1 - b2^t), rho_inf = 2 / (1 - b2) - 1, to reach ``threshold``.
Before that the variance of the adaptive rate is intractable and RAdam either

* ``before_threshold="sgd"`` (optax, PyTorch): steps ``lr * m_hat`` (bias-corrected momentum SGD,
  un-preconditioned, so at the raw-gradient scale), or
* ``before_threshold="skip"`` (the official code's default, ``degenerated_to_sgd=False``): makes
  no update at all while the moments warm up.

With b2 = 0.999 and the default threshold 5 (the official code's ``N_sma >= 5``; the paper's
Algorithm 2 says ``> 4``), the first rectified step is step 6.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

BEFORE_THRESHOLD = ("sgd", "skip")


class SkipUntilTractableState(NamedTuple):
    """State of `skip_until_tractable`.

    Attributes:
      count: int32 scalar, number of steps taken.
    """

    count: jax.Array


def sma_length(count: jax.Array, b2: float) -> jax.Array:
    """rho_t, the length of the approximated simple moving average after ``count`` steps."""
    rho_inf = 2.0 / (1.0 - b2) - 1.0
    b2t = b2 ** count.astype(jnp.float32)
    return rho_inf - 2.0 * count * b2t / (1.0 - b2t)


def skip_until_tractable(b2: float, threshold: float) -> optax.GradientTransformation:
    """Zero the updates on the steps where rho_t < ``threshold`` (RAdam's untractable phase)."""

    def init_fn(params):
        del params
        return SkipUntilTractableState(jnp.zeros((), jnp.int32))

    def update_fn(updates, state, params=None):
        del params
        count = optax.safe_increment(state.count)
        keep = sma_length(count, b2) >= threshold
        updates = jax.tree.map(lambda u: jnp.where(keep, u, jnp.zeros_like(u)), updates)
        return updates, SkipUntilTractableState(count)

    return optax.GradientTransformation(init_fn, update_fn)


def radam(
    learning_rate: optax.ScalarOrSchedule = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    threshold: float = 5.0,
    before_threshold: str = "sgd",
    *,
    nesterov: bool = False,
) -> optax.GradientTransformationExtraArgs:
    """Rectified Adam.

    References:
      Liu et al., "On the Variance of the Adaptive Learning Rate and Beyond", ICLR 2020.

    Args:
      learning_rate: alpha, a number or an optax schedule.
      b1, b2, eps, eps_root, nesterov: as `optax.radam`.
      threshold: rho_t at which rectified adaptive steps start.
      before_threshold: ``"sgd"`` (optax's bias-corrected momentum steps) or ``"skip"`` (no
        update, as in the official code) for the steps before ``threshold`` is reached.
    """
    if before_threshold not in BEFORE_THRESHOLD:
        raise ValueError(
            f"before_threshold must be one of {BEFORE_THRESHOLD}, got {before_threshold!r}"
        )
    if before_threshold == "sgd":
        return optax.radam(learning_rate, b1, b2, eps, eps_root, threshold, nesterov=nesterov)
    return optax.chain(
        optax.scale_by_radam(b1, b2, eps, eps_root, threshold, nesterov=nesterov),
        skip_until_tractable(b2, threshold),
        optax.scale_by_learning_rate(learning_rate),
    )
