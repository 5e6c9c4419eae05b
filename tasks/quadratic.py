"""Ill-conditioned quadratics with noisy gradients: the model-free member of the population."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from tasks.base import TaskFns


def quadratic_task(dim: int, log10_condition: int, batch_size: int, seed: int) -> TaskFns:
    """``f(x) = 1/2 (x - c)^T A (x - c)`` with noisy minibatch targets.

    ``A`` has eigenvalues log-spaced from 1 down to ``10**-log10_condition`` in a random basis, and
    ``c`` is a random centre; both come from ``seed``. A minibatch is a target perturbation
    ``N(0, I / batch_size)``, as if ``batch_size`` noisy samples of ``c`` were averaged, so larger
    batches mean less gradient noise. Parameters are ``{"x": [dim]}`` drawn from ``N(0, I)``.
    """
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    eigenvalues = np.logspace(0, -log10_condition, dim)
    a = jnp.asarray((basis * eigenvalues) @ basis.T, jnp.float32)
    centre = jnp.asarray(rng.standard_normal(dim), jnp.float32)

    def value(x, target):
        r = x - target
        return 0.5 * r @ (a @ r)

    def init(key):
        return {"x": jax.random.normal(key, (dim,))}

    def sample_batch(key):
        return jax.random.normal(key, (dim,)) / np.sqrt(batch_size)

    def loss(params, batch, key):
        del key
        return value(params["x"], centre + batch)

    def test_metrics(params):
        return {"loss": value(params["x"], centre)}

    # E f(x0) over x0 ~ N(0, I): 1/2 (tr A + c^T A c).
    normalizer = 0.5 * float(jnp.trace(a) + centre @ a @ centre)
    return TaskFns(init, loss, sample_batch, test_metrics, normalizer)
