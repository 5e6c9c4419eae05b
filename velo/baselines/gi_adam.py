"""GI-Adam (Kalra & Barkeshli, 2024): Adam whose second moment starts at a first gradient squared.

With v_0 = g_0^2 instead of 0 and Adam's usual bias corrections kept, v_hat_t ~ g^2 / (1 - b2^t)
while gradients stay near g_0, so the step size is ~ lr * sqrt(1 - b2^t): a built-in warmup of
length ~ 1 / (1 - b2) (about 0.03 lr at step 1 with b2 = 0.999). Without bias correction the
effect would vanish. The paper takes g_0 from a separate minibatch before training; when no
``initial_grads`` are given, the first update's gradient is used instead (so it is counted twice).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax


class ScaleByGiAdamState(NamedTuple):
    """State of `scale_by_gi_adam`.

    Attributes:
      adam: optax's `ScaleByAdamState` (count, mu, nu).
      primed: bool scalar, whether nu already holds g_0^2.
    """

    adam: optax.ScaleByAdamState
    primed: jax.Array


def scale_by_gi_adam(
    b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, initial_grads: Any = None
) -> optax.GradientTransformation:
    """`optax.scale_by_adam` with ``nu`` starting at ``initial_grads ** 2`` (or the first ones)."""
    adam = optax.scale_by_adam(b1, b2, eps)

    def init_fn(params):
        state = adam.init(params)
        if initial_grads is None:
            return ScaleByGiAdamState(state, jnp.asarray(False))
        nu = jax.tree.map(lambda g, v: jnp.square(g).astype(v.dtype), initial_grads, state.nu)
        return ScaleByGiAdamState(state._replace(nu=nu), jnp.asarray(True))

    def update_fn(updates, state, params=None):
        nu = jax.tree.map(lambda v, g: jnp.where(state.primed, v, jnp.square(g).astype(v.dtype)),
                          state.adam.nu, updates)
        updates, adam_state = adam.update(updates, state.adam._replace(nu=nu), params)
        return updates, ScaleByGiAdamState(adam_state, jnp.asarray(True))

    return optax.GradientTransformation(init_fn, update_fn)


def gi_adam(
    learning_rate: optax.ScalarOrSchedule = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    initial_grads: Any = None,
) -> optax.GradientTransformationExtraArgs:
    """GI-Adam: Adam with v_0 = g_0^2.

    References:
      Kalra, Barkeshli, "Why Warmup the Learning Rate? Underlying Mechanisms and Improvements",
      NeurIPS 2024, arXiv 2406.09405.

    Args:
      learning_rate: a number or an optax schedule (e.g. `catapult_warmup`'s).
      b1, b2, eps: Adam's.
      initial_grads: g_0, a gradient pytree like params; ``None`` takes the first update's.
    """
    return optax.chain(
        scale_by_gi_adam(b1, b2, eps, initial_grads), optax.scale_by_learning_rate(learning_rate)
    )
