"""SaLSA: the smoothed Armijo test, step-size growth, the search cadence, jit/vmap, and a win."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from velo import baselines
from velo.baselines.salsa import searches_needed_gap

STEPS = 200
CURVATURE = {"a": jnp.logspace(-2, 1, 12), "b": jnp.logspace(-1.5, 0.5, 6).reshape(2, 3)}


def quadratic(params):
    """A deterministic ill-conditioned quadratic (condition number 1000)."""
    leaves = jax.tree.map(lambda c, p: 0.5 * jnp.sum(c * p**2), CURVATURE, params)
    return sum(jax.tree.leaves(leaves))


def start(scale=1.0):
    """Uneven starting coordinates, so no single sign-like step solves the problem."""
    return jax.tree.map(
        lambda c: scale * (1.0 + 0.7 * jnp.sin(jnp.arange(c.size) * 1.3).reshape(c.shape)),
        CURVATURE,
    )


@functools.partial(jax.jit, static_argnums=0)
def run(opt, params):
    """``STEPS`` steps on the quadratic; per step: loss, params, state, new loss, new state."""

    def step(carry, _):
        params, state = carry
        loss, grads = jax.value_and_grad(quadratic)(params)
        updates, new_state = opt.update(grads, state, params, loss=loss, loss_fn=quadratic)
        new_params = optax.apply_updates(params, updates)
        return (new_params, new_state), (loss, params, state, quadratic(new_params), new_state)

    return jax.lax.scan(step, (params, opt.init(params)), length=STEPS)


@pytest.fixture(scope="module")
def trace():
    opt = baselines.salsa()
    (_, _), (loss, _, before, new_loss, after) = run(opt, start())
    return jax.tree.map(np.asarray, (loss, before, new_loss, after))


def test_accepted_steps_pass_the_smoothed_armijo_test(trace):
    loss, before, new_loss, after = trace
    searched = after.searches > before.searches
    tried = after.trials - before.trials
    accepted = searched & (tried > 0) & (tried < 100) & (new_loss != loss)
    assert accepted.sum() >= 20
    b3, c = 0.9, 0.5
    h = b3 * before.decrease + (1 - b3) * (loss - new_loss)
    np.testing.assert_allclose(after.decrease[accepted], h[accepted], rtol=1e-4, atol=1e-7)
    assert np.all(h[accepted] >= c * after.step_size[accepted] * after.slope[accepted] * (1 - 1e-4))
    # Rejected trials shrink eta by 0.8 from the grown 1.1 * eta.
    expected_eta = 1.1 * before.step_size * 0.8 ** (tried - 1)
    np.testing.assert_allclose(after.step_size[accepted], expected_eta[accepted], rtol=1e-5)


def test_step_size_grows_while_the_test_keeps_passing():
    opt = baselines.salsa(init_step_size=1e-4)
    (_, state), (_, _, before, _, after) = run(opt, start())
    first_try = (after.trials - before.trials == 1)[:20]
    assert first_try.all()  # tiny steps on a quadratic always pass
    searched = np.asarray(after.searches > before.searches)[:20]
    growth = np.asarray(after.step_size / before.step_size)[:20]
    np.testing.assert_allclose(growth[searched], 1.1, rtol=1e-5)
    np.testing.assert_allclose(growth[~searched], 1.0)  # skipped steps do not store the growth


def test_cadence_follows_the_rule(trace):
    _, before, _, after = trace
    searched = after.searches > before.searches
    gap = np.asarray(searches_needed_gap(before.step_size_fast, before.step_size_slow))
    rule = (after.count < 10) | (before.since_search + 1 >= gap)
    np.testing.assert_array_equal(searched, rule)
    assert searched[:9].all() and (~searched[10:]).sum() >= 10 and searched[10:].sum() >= 5
    assert (after.trials >= after.searches).all()


def test_runs_under_vmap_and_matches_single_runs():
    opt = baselines.salsa()
    scales = jnp.array([1.0, 0.3])
    (batched, _), (losses, *_) = jax.vmap(lambda s: run(opt, start(s)))(scales)
    for i, s in enumerate(scales):
        (single, _), (single_losses, *_) = run(opt, start(float(s)))
        np.testing.assert_allclose(losses[i], single_losses, rtol=1e-5, atol=1e-8)


def test_beats_adam_on_an_ill_conditioned_quadratic():
    (salsa_params, state), _ = run(baselines.salsa(), start())
    (adam_params, _), _ = run(baselines.make("adam", learning_rate=1e-3), start())
    assert quadratic(salsa_params) < 0.1 * quadratic(adam_params)
    assert int(state.trials) > 0


def test_needs_loss_and_loss_fn():
    opt = baselines.make("salsa")
    params = start()
    state = opt.init(params)
    with pytest.raises(ValueError, match="loss_fn="):
        opt.update(params, state, params)
    with pytest.raises(ValueError, match="loss="):
        opt.update(params, state, params, loss_fn=quadratic)


def test_paper_variant_constants():
    assert baselines.defaults("salsa_paper") == {
        "init_step_size": 0.1, "c": 0.3, "b1": 0.9, "b2": 0.999, "b3": 0.99,
        "growth": 2.0 ** (1 / 500), "shrink": 0.9, "max_trials": 200, "weight_decay": 0.0,
        "adaptive_cadence": True, "eps": 1e-8,
    }
    (params, _), _ = run(baselines.salsa_paper(), start())
    assert quadratic(params) < 0.5 * quadratic(start())


def test_line_search_dtype_follows_the_widest_parameters():
    """float32 for float32 and bfloat16 parameters (bfloat16 would round the search away),
    float64 once any parameter is float64."""
    opt = baselines.salsa()
    assert opt.init({"w": jnp.ones(2, jnp.bfloat16)}).step_size.dtype == jnp.float32
    with jax.enable_x64(True):
        mixed = {"w": jnp.ones(2, jnp.float32), "b": jnp.ones(2, jnp.float64)}
        state = opt.init(mixed)
        assert {state.step_size.dtype, state.decrease.dtype, state.slope.dtype} == {
            jnp.dtype("float64")}
        assert (state.mu["w"].dtype, state.mu["b"].dtype) == (jnp.float32, jnp.float64)
