"""The standard-recipe baselines: warmup + cosine schedule values, wiring, and what it buys."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from velo import baselines, optimizers


def numpy_schedule(t, total, warmup_fraction=0.05, final=0.01):
    """The multiplier of the peak at (1-based) step ``t``, written out independently."""
    warmup = round(warmup_fraction * total)
    t = np.asarray(t, np.float64)
    progress = np.clip((t - warmup) / (total - warmup), 0.0, 1.0)
    cosine = final + (1 - final) * 0.5 * (1 + np.cos(np.pi * progress))
    return np.where(t < warmup, t / max(warmup, 1), cosine)


@pytest.mark.parametrize("total", [100, 1000, 3000])
def test_warmup_cosine_matches_the_formula(total):
    shape = baselines.warmup_cosine(total)
    warmup = round(0.05 * total)
    t = np.array([0, 1, warmup // 2, warmup, warmup + 1, total // 2, total - 1, total, 2 * total])
    np.testing.assert_allclose([float(shape(s)) for s in t], numpy_schedule(t, total),
                               rtol=1e-5, atol=1e-7)
    assert float(shape(0)) == 0.0 and float(shape(warmup)) == pytest.approx(1.0)
    assert float(shape(total)) == pytest.approx(0.01) and float(shape(5 * total)) == \
        pytest.approx(0.01)


def test_steps_run_at_the_scheduled_rate_and_the_peak_may_be_traced():
    """Adam's first step is lr * sign(g): the first scheduled step is peak / warmup, and a
    vmapped grid of peaks gives what building each optimizer alone gives."""
    params = jnp.array([1.0, -2.0, 3.0])

    def first_steps(peak, steps=6):
        opt = optimizers.make("adamw_cosine", 100, learning_rate=peak)  # warmup: 5 steps
        state, p, out = opt.init(params), params, []
        for _ in range(steps):
            u, state = opt.update(2 * p, state, p, loss=jnp.sum(p**2))
            p = optax.apply_updates(p, u)
            out.append(u)
        return jnp.stack(out)

    grid = jax.jit(jax.vmap(first_steps))(jnp.array([1e-2, 1e-1]))
    np.testing.assert_allclose(grid[1], first_steps(1e-1), rtol=1e-5)
    np.testing.assert_allclose(grid[0, 0], -1e-2 / 5 * np.sign(params), rtol=1e-4)
    rates = np.abs(np.asarray(grid[0])).max(axis=1)
    assert np.all(np.diff(rates[:5]) > 0)  # warming up, towards 1e-2 at step 5


def test_weight_decay_is_decoupled_and_off_by_default():
    params = jnp.array([2.0])
    zero = jnp.zeros(1)
    for wd, expected in [(0.0, 0.0), (0.5, -1e-2 / 5 * 0.5 * 2.0)]:
        opt = baselines.make("adamw_cosine", learning_rate=1e-2, weight_decay=wd, total_steps=100)
        u, _ = opt.update(zero, opt.init(params), params)  # zero gradient: only the decay moves
        assert float(u[0]) == pytest.approx(expected, abs=1e-9)


def test_cosine_decay_beats_constant_adam_on_a_noisy_quadratic():
    """With noisy gradients a constant rate stalls at a noise floor proportional to it; the
    annealed rate keeps descending, at every peak rate tried."""
    dim, steps = 20, 400
    noise = jax.random.normal(jax.random.key(0), (steps, dim))

    def final_loss(opt):
        def step(carry, n):
            p, s = carry
            u, s = opt.update(2 * p + n, s, p)
            return (optax.apply_updates(p, u), s), jnp.sum(p**2)

        params = jnp.ones(dim)
        return jax.lax.scan(step, (params, opt.init(params)), noise)[1][-20:].mean()

    for lr in [3e-2, 1e-1]:
        constant = final_loss(baselines.make("adam", learning_rate=lr))
        annealed = final_loss(baselines.make("adamw_cosine", learning_rate=lr, total_steps=steps))
        assert annealed < 0.3 * constant, (lr, annealed, constant)


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "adamw_cosine"}, "total_steps must be the run's length"),
    ({"name": "lion_cosine", "total_steps": 0}, "total_steps must be the run's length"),
    ({"name": "adamw_cosine", "total_steps": 10, "warmup_fraction": 1.0}, "warmup_fraction"),
])
def test_bad_schedule_settings_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        baselines.make(**kwargs)


def test_the_cosine_twins_keep_their_constant_defaults():
    constant, twin = baselines.defaults("lion"), baselines.defaults("lion_cosine")
    assert {k: twin[k] for k in constant if k in twin} == {
        k: constant[k] for k in ("learning_rate", "b1", "b2", "weight_decay")}
    assert baselines.defaults("adamw_cosine")["weight_decay"] == 0.0
