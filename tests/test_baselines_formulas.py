"""Adam, RAdam, Lion, GI-Adam and Lookahead against independent NumPy versions of their formulas."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from velo import baselines

SHAPES = {"w": (3, 4), "b": (4,), "s": (), "k": (2, 1, 3)}
STEPS = 20


def random_tree(rng, scale=1.0):
    return {k: (scale * rng.standard_normal(s)).astype(np.float32) for k, s in SHAPES.items()}


@pytest.fixture(scope="module")
def problem():
    """Initial params and 20 gradients that depend on the iterate (g = params * a + noise)."""
    rng = np.random.default_rng(0)
    return random_tree(rng), random_tree(rng), [random_tree(rng, 0.1) for _ in range(STEPS)]


def run_jax(opt, problem):
    """The updates ``opt`` makes over ``STEPS`` steps, as NumPy trees.

    Runs in float64 so that the comparison checks the formulas, not float32 rounding (in float32,
    optax's rho_t at step 6 is off by ~0.5%: 2t b2^t / (1 - b2^t) cancels against rho_inf).
    """
    params, slope, noise = problem
    out = []
    with jax.enable_x64(True):
        params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), params)
        state = opt.init(params)
        update = jax.jit(opt.update)
        for n in noise:
            grads = jax.tree.map(lambda p, a, e: p * a + e, params, slope, n)
            updates, state = update(grads, state, params)
            params = optax.apply_updates(params, updates)
            out.append(jax.tree.map(np.asarray, updates))
    return out


def run_numpy(step, problem):
    """``step(t, g, p, mem) -> (update, mem)`` per leaf, in float64, over ``STEPS`` steps."""
    params, slope, noise = problem
    params = {k: v.astype(np.float64) for k, v in params.items()}
    memory = {k: None for k in params}
    out = []
    for t, n in enumerate(noise, start=1):
        updates = {}
        for k in params:
            g = params[k] * slope[k] + n[k]
            updates[k], memory[k] = step(t, g, params[k], memory[k])
            params[k] = params[k] + updates[k]
        out.append(updates)
    return out


def assert_close(jax_updates, np_updates, rtol=1e-5):
    for t, (a, b) in enumerate(zip(jax_updates, np_updates, strict=True)):
        for k in SHAPES:
            err = np.linalg.norm(np.ravel(a[k] - b[k])) / max(np.linalg.norm(np.ravel(b[k])), 1e-30)
            assert err < rtol, f"step {t + 1}, leaf {k}: relative error {err:.2e}"


def adam_moments(g, mem, b1, b2):
    m, v = (np.zeros_like(g), np.zeros_like(g)) if mem is None else mem
    return b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g


def numpy_adam(lr, b1=0.9, b2=0.999, eps=1e-8):
    def step(t, g, p, mem):
        m, v = adam_moments(g, mem, b1, b2)
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        return -lr * m_hat / (np.sqrt(v_hat) + eps), (m, v)

    return step


def numpy_radam(lr, before, threshold=5.0, b1=0.9, b2=0.999, eps=1e-8):
    rho_inf = 2 / (1 - b2) - 1

    def step(t, g, p, mem):
        m, v = adam_moments(g, mem, b1, b2)
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        rho = rho_inf - 2 * t * b2**t / (1 - b2**t)
        if rho >= threshold:
            r = np.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
            return -lr * r * m_hat / (np.sqrt(v_hat) + eps), (m, v)
        return (-lr * m_hat if before == "sgd" else np.zeros_like(g)), (m, v)

    return step


def numpy_lion(lr, b1=0.9, b2=0.99, wd=1e-3):
    def step(t, g, p, mem):
        m = np.zeros_like(g) if mem is None else mem
        c = b1 * m + (1 - b1) * g
        return -lr * (np.sign(c) + wd * p), b2 * m + (1 - b2) * g

    return step


def test_adam_matches_paper(problem):
    assert_close(run_jax(baselines.make("adam", learning_rate=1e-2), problem),
                 run_numpy(numpy_adam(1e-2), problem))


@pytest.mark.parametrize("before", ["sgd", "skip"])
def test_radam_matches_paper(problem, before):
    ours = run_jax(baselines.make("radam", learning_rate=1e-2, before_threshold=before), problem)
    assert_close(ours, run_numpy(numpy_radam(1e-2, before), problem))
    first_rectified = 6  # rho_5 = 4.996 < 5 <= rho_6 = 5.994 for b2 = 0.999
    untractable = [np.abs(u["w"]).max() for u in ours[: first_rectified - 1]]
    assert len(untractable) == first_rectified - 1
    assert all(x == 0 for x in untractable) == (before == "skip")
    assert np.abs(ours[first_rectified - 1]["w"]).max() > 0


def test_radam_threshold_moves_first_rectified_step(problem):
    ours = run_jax(baselines.make("radam", learning_rate=1e-2, threshold=8.0,
                                  before_threshold="skip"), problem)
    assert_close(ours, run_numpy(numpy_radam(1e-2, "skip", threshold=8.0), problem))
    assert np.abs(ours[7]["w"]).max() == 0 and np.abs(ours[8]["w"]).max() > 0  # rho_9 = 8.98


def test_lion_matches_paper(problem):
    assert_close(run_jax(baselines.make("lion", learning_rate=1e-3, weight_decay=0.1), problem),
                 run_numpy(numpy_lion(1e-3, wd=0.1), problem))


def test_gi_adam_first_step_is_warmup_sized():
    g = {"a": jnp.array([3.0, -1e-2, 40.0]), "b": jnp.full((2, 2), -0.5)}
    params = jax.tree.map(jnp.zeros_like, g)
    opt = baselines.make("gi_adam", learning_rate=0.1)
    updates, _ = opt.update(g, opt.init(params), params)
    for u, grad in zip(jax.tree.leaves(updates), jax.tree.leaves(g), strict=True):
        np.testing.assert_allclose(u, -0.1 * np.sqrt(1 - 0.999) * np.sign(grad), rtol=1e-4)


def test_gi_adam_with_given_initial_grads_keeps_bias_correction():
    g0, g1 = jnp.array([2.0, -4.0]), jnp.array([1.0, 1.0])
    opt = baselines.gi_adam(learning_rate=0.1, initial_grads=g0)
    updates, state = opt.update(g1, opt.init(jnp.zeros(2)), jnp.zeros(2))
    v1 = 0.999 * g0**2 + 0.001 * g1**2
    np.testing.assert_allclose(state[0].adam.nu, v1, rtol=1e-6)
    expected = -0.1 * g1 / (np.sqrt(v1 / (1 - 0.999)) + 1e-8)  # m_hat_1 = g1
    np.testing.assert_allclose(updates, expected, rtol=1e-5)


def test_lookahead_sync_arithmetic():
    k, alpha, lr = 3, 0.5, 0.1
    opt = baselines.lookahead(optax.sgd(lr), sync_period=k, slow_step_size=alpha)
    grads = [jnp.array([1.0, -2.0]) * (t + 1) for t in range(7)]
    params = jnp.array([0.5, 0.25])
    state = opt.init(params)
    fast, slow = np.array(params, np.float64), np.array(params, np.float64)
    for t, g in enumerate(grads, start=1):
        updates, state = opt.update(g, state, params)
        params = optax.apply_updates(params, updates)
        fast = fast - lr * np.asarray(g)
        if t % k == 0:
            slow = slow + alpha * (fast - slow)
            fast = slow.copy()
        np.testing.assert_allclose(params, fast, rtol=1e-6)
        np.testing.assert_allclose(state.slow, slow, rtol=1e-6)
    assert baselines.slow_params(state, params) is state.slow


def test_lookahead_passes_loss_and_loss_fn_through():
    def loss_fn(p):
        return jnp.sum(p**2)

    opt = baselines.lookahead(baselines.salsa())
    params = jnp.array([1.0, -2.0])
    state = opt.init(params)
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, state = opt.update(grads, state, params, loss=loss, loss_fn=loss_fn)
    assert loss_fn(params + updates) < loss and int(state.inner.trials) >= 1
    with pytest.raises(ValueError, match="loss_fn="):
        opt.update(grads, state, params)
