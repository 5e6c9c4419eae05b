"""Every optimizer velo trains with, on float32, bfloat16 and float64 parameters.

Each registered baseline (built as `velo.optimizers.make` builds it, so scheduled ones get the
run's length) and the learned optimizer `velo.optax_lopt` ("velo") take a few steps on a
quadratic: updates and parameters keep the parameters' dtype, nothing turns non-finite and no
step is skipped. One small tensor keeps the optimizer x dtype compilations cheap: the optimizers
treat tensors alike, so a second one would test nothing new about dtypes. float64 runs inside
``jax.enable_x64``, which is restored on exit, so the rest of the suite stays in 32-bit mode.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from velo import optimizers

STEPS = 5
# A 5-step program spends all its time compiling: skipping LLVM's optimisations saves a fifth of it.
COMPILER_OPTIONS = {"xla_backend_optimization_level": 0}
DTYPES = ["float32", "bfloat16", "float64"]
CURVATURE = np.array([[1.0, 3.0], [0.5, 2.0], [4.0, 1.0]])


def quadratic(params):
    """Loss in the parameters' own dtype, as a model of that dtype computes it; minimum at 0.5."""
    w = params["w"]
    return jnp.sum(jnp.asarray(CURVATURE, w.dtype) * jnp.square(w - 0.5))


def start(dtype):
    return {"w": jnp.full((3, 2), 2.0, dtype)}


def run(name, dtype):
    """``STEPS`` steps in one compiled scan: (final params, last updates, final state, losses)."""
    opt = optimizers.make(name, STEPS)
    params = start(dtype)

    def step(carry, _):
        params, state, _ = carry
        loss, grads = jax.value_and_grad(quadratic)(params)
        updates, state = opt.update(grads, state, params, loss=loss, loss_fn=quadratic)
        return (optax.apply_updates(params, updates), state, updates), loss

    zeros = jax.tree.map(jnp.zeros_like, params)
    program = jax.jit(lambda p: jax.lax.scan(step, (p, opt.init(p), zeros), length=STEPS))
    (params, state, updates), losses = program.lower(params).compile(COMPILER_OPTIONS)(params)
    return params, updates, state, np.asarray(losses, np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", optimizers.names())
def test_keeps_the_dtype_and_stays_finite(name, dtype):
    with jax.enable_x64(dtype == "float64"):
        params, updates, state, losses = run(name, jnp.dtype(dtype))
        assert (params["w"].dtype.name, updates["w"].dtype.name) == (dtype, dtype)
        leaves = [*jax.tree.leaves(params), *jax.tree.leaves(updates),
                  *[x for x in jax.tree.leaves(state) if jnp.issubdtype(x.dtype, jnp.inexact)]]
        assert leaves and all(bool(jnp.all(jnp.isfinite(x))) for x in leaves)
        assert int(state.skipped) == 0
        assert losses.shape == (STEPS,) and np.isfinite(losses).all()
        if dtype != "bfloat16":  # bfloat16 rounds steps of 1e-3 at parameters near 2 away
            assert float(quadratic(params)) < losses[0]
