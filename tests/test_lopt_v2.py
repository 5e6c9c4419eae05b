"""Rule v2: bounded by construction, stable far past its horizon and past ``num_steps``.

Three cheap problems (a noisy matrix quadratic, a tiny teacher-student MLP, a logistic
regression), each run for 10x its budget in one program vmapped over the ``num_steps`` the
optimizer is told: the budget itself (so the run goes 10x past it) and the whole run (10x the
horizon).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from velo import lopt
from velo.lopt import rule_v2

CONFIG = lopt.preset("v2_tiny")
BUDGET = 100
FACTOR = 10
EMA = 0.95


@pytest.fixture(scope="module")
def meta_params():
    return lopt.init_meta_params(jax.random.key(0), CONFIG)


def _quadratic():
    params = {"w": jax.random.normal(jax.random.key(1), (32, 16)) * 0.3, "b": jnp.zeros(16)}

    def loss(p, key):
        noise = 0.1 * jax.random.normal(key, (16,))
        return jnp.mean(jnp.square(p["w"] - 0.5)) + jnp.mean(jnp.square(p["b"] - 0.3 - noise))

    return params, loss


def _teacher_mlp():
    k = jax.random.split(jax.random.key(2), 3)
    teacher = jax.random.normal(k[0], (8, 1))
    params = {"w1": jax.random.normal(k[1], (8, 16)) / np.sqrt(8), "b1": jnp.zeros(16),
              "w2": jax.random.normal(k[2], (16, 1)) / 4.0, "b2": jnp.zeros(1)}

    def loss(p, key):
        x = jax.random.normal(key, (32, 8))
        pred = jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]
        return jnp.mean(jnp.square(pred - jnp.sin(x @ teacher)))

    return params, loss


def _logistic():
    k = jax.random.split(jax.random.key(3), 2)
    true_w = jax.random.normal(k[0], (20,))
    params = {"w": jnp.zeros(20), "b": jnp.zeros(())}

    def loss(p, key):
        x = jax.random.normal(key, (64, 20))
        y = (x @ true_w + 0.5 * jax.random.normal(jax.random.fold_in(key, 1), (64,))) > 0
        return jnp.mean(optax.sigmoid_binary_cross_entropy(x @ p["w"] + p["b"], y))

    return params, loss


PROBLEMS = {"quadratic": _quadratic, "teacher_mlp": _teacher_mlp, "logistic": _logistic}


def _smoothed(losses: np.ndarray) -> np.ndarray:
    out, m = np.empty_like(losses), losses[..., 0]
    for t in range(losses.shape[-1]):
        m = EMA * m + (1 - EMA) * losses[..., t]
        out[..., t] = m
    return out


@functools.cache
def long_runs(name, config=CONFIG):
    """``fn(meta_params) -> losses [2, BUDGET * FACTOR]`` of problem ``name``: told num_steps =
    BUDGET, and = the whole run."""
    params, loss_fn = PROBLEMS[name]()

    @jax.jit
    def go(meta_params, num_steps):
        opt = lopt.optax_lopt(num_steps, meta_params=meta_params, config=config)

        def body(carry, t):
            p, s = carry
            loss, g = jax.value_and_grad(loss_fn)(p, jax.random.fold_in(jax.random.key(9), t))
            u, s = opt.update(g, s, p, loss=loss)
            return (optax.apply_updates(p, u), s), loss

        return jax.lax.scan(body, (params, opt.init(params)), jnp.arange(BUDGET * FACTOR))[1]

    return lambda mp: np.asarray(
        jax.vmap(go, in_axes=(None, 0))(mp, jnp.array([BUDGET, BUDGET * FACTOR]))
    )


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_stable_at_10x_the_horizon_and_past_num_steps(meta_params, name):
    check_stable_at_10x(long_runs(name)(meta_params))


def check_stable_at_10x(losses: np.ndarray) -> None:
    """Assert the `long_runs` losses stay finite, hold past num_steps and keep improving."""
    assert np.isfinite(losses).all()
    smooth = _smoothed(losses)
    past, long = smooth[0], smooth[1]
    # Told the budget, run 10x past it: the schedule holds its floor; it never gets worse.
    assert past[-1] <= 1.05 * past[BUDGET - 1], (past[BUDGET - 1], past[-1])
    assert past[2 * BUDGET - 1] <= 1.05 * past[BUDGET - 1]
    # Told the whole run: training 10x longer ends lower than at the budget.
    assert long[-1] <= 1.05 * long[BUDGET - 1], (long[BUDGET - 1], long[-1])
    assert long[-1] < 0.9 * long[0]


def test_schedule_warms_up_decays_and_holds_its_floor():
    at = lambda t, n=1000: float(rule_v2.schedule(jnp.int32(t), n, CONFIG))  # noqa: E731
    warm = int(CONFIG.warmup_fraction * 1000)
    np.testing.assert_allclose(at(0), 1 / warm, rtol=1e-6)
    np.testing.assert_allclose(at(warm - 1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(at(999), CONFIG.final_step_fraction, rtol=1e-5)
    np.testing.assert_allclose([at(2000), at(10**6)], CONFIG.final_step_fraction, rtol=1e-5)
    mid = (warm + 1000) // 2 - 1  # half-way through the decay
    np.testing.assert_allclose(at(mid), (1 + CONFIG.final_step_fraction) / 2, rtol=1e-3)
    values = [at(t) for t in range(warm, 1000, 50)]
    assert len(values) == 19 and all(a >= b for a, b in zip(values, values[1:], strict=False))


def _rms(x):
    return float(jnp.sqrt(jnp.mean(jnp.square(x))))


@pytest.mark.parametrize("grad_scale", [1e-6, 1.0, 1e6])
def test_every_step_within_the_stated_bound(grad_scale):
    """Adversarial meta-parameters (step output saturating the tanh), gradients at 1e+-6 and
    loss spikes: each tensor still moves by at most the bound times its scale."""
    meta_params = lopt.init_meta_params(jax.random.key(0), CONFIG)
    head = meta_params["hypernet"]["step"]
    meta_params["hypernet"]["step"] = dict(head, bias=head["bias"] + 50.0)
    lr = 3.0
    opt = lopt.optax_lopt(50, meta_params=meta_params, config=CONFIG, learning_rate=lr)
    params = {"w": jax.random.normal(jax.random.key(1), (24, 12)) * 0.05, "v": jnp.zeros(12)}
    bound = rule_v2.step_bound(CONFIG, lr)

    @jax.jit
    def step(p, s, t):
        key = jax.random.fold_in(jax.random.key(2), t)
        g = jax.tree.map(lambda x: grad_scale * jax.random.normal(key, x.shape), p)
        loss = jnp.where(t % 7 == 3, 1e4, 1.0) * (1.0 + 0.01 * t)
        u, s = opt.update(g, s, p, loss=loss)
        return u, s

    state, largest = opt.init(params), 0.0
    scales = {k: max(_rms(x), CONFIG.param_scale_floor) for k, x in params.items()}  # at init
    for t in range(60):
        updates, state = step(params, state, t)
        for name in params:
            scale = scales[name]
            ratio = _rms(updates[name]) / (bound * scale)
            assert ratio <= 1.0 + 1e-4, (t, name, ratio)
            assert float(jnp.max(jnp.abs(updates[name]))) <= (
                CONFIG.max_direction * bound * scale * (1 + 1e-4)
            )
            largest = max(largest, ratio)
        params = optax.apply_updates(params, updates)
    assert largest > 0.5  # the bound is tight: saturated outputs come close to it


def test_initialisation_is_the_plain_hand_designed_rule(meta_params):
    """At init, v2 is per-tensor normalised Adam at init_step * max(RMS(p at init), floor)
    times the prior schedule: this checks it against that formula computed here by hand."""
    params, loss_fn = _quadratic()
    scales = {k: max(_rms(x), CONFIG.param_scale_floor) for k, x in params.items()}
    opt = lopt.optax_lopt(200, meta_params=meta_params, config=CONFIG)
    state = opt.init(params)
    m = jax.tree.map(jnp.zeros_like, params)
    v = jax.tree.map(jnp.zeros_like, params)
    update = jax.jit(opt.update)
    for t in range(5):
        loss, g = jax.value_and_grad(loss_fn)(params, jax.random.key(t))
        updates, state = update(g, state, params, loss=loss)
        m = jax.tree.map(lambda a, b: 0.9 * a + 0.1 * b, m, g)
        v = jax.tree.map(lambda a, b: 0.999 * a + 0.001 * b * b, v, g)
        sched = float(rule_v2.schedule(jnp.int32(t), 200, CONFIG))
        for name in params:
            adam = (m[name] / (1 - 0.9 ** (t + 1))) / jnp.sqrt(v[name] / (1 - 0.999 ** (t + 1)))
            want = -(adam / _rms(adam)) * CONFIG.init_step * sched * scales[name]
            got = updates[name]
            cosine = float(jnp.sum(got * want) / (jnp.linalg.norm(got) * jnp.linalg.norm(want)))
            assert cosine > 0.98, (t, name, cosine)
            np.testing.assert_allclose(_rms(got), _rms(want), rtol=0.05)
        params = optax.apply_updates(params, updates)


def test_learning_rate_multiplies_the_step(meta_params):
    params, loss_fn = _teacher_mlp()
    loss, g = jax.value_and_grad(loss_fn)(params, jax.random.key(0))

    @jax.jit  # one compiled program for both: the learning rate may be traced
    def first_update(lr):
        opt = lopt.optax_lopt(100, meta_params=meta_params, config=CONFIG, learning_rate=lr)
        return opt.update(g, opt.init(params), params, loss=loss)[0]

    one, two = first_update(1.0), first_update(2.0)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(b, 2.0 * a, rtol=1e-5), one, two)
    with pytest.raises(ValueError, match="learning_rate"):
        lopt.optax_lopt(100, meta_params=meta_params, config=CONFIG, learning_rate=-1.0)


@pytest.mark.parametrize("option", ["orthogonalize", "adam_for_vectors"])
def test_harness_options_keep_the_bound_and_train(option):
    import dataclasses

    config = dataclasses.replace(CONFIG, **{option: True})
    meta_params = lopt.init_meta_params(jax.random.key(0), config)
    params, loss_fn = _teacher_mlp()
    opt = lopt.optax_lopt(BUDGET, meta_params=meta_params, config=config)
    bound = rule_v2.step_bound(config)

    @jax.jit
    def step(p, s, t):
        loss, g = jax.value_and_grad(loss_fn)(p, jax.random.fold_in(jax.random.key(9), t))
        u, s = opt.update(g, s, p, loss=loss)
        return optax.apply_updates(p, u), s, loss, u

    state, losses = opt.init(params), []
    scales = {k: max(_rms(x), config.param_scale_floor) for k, x in params.items()}
    for t in range(BUDGET):
        new, state, loss, updates = step(params, state, t)
        for name in params:
            scale = scales[name]
            assert _rms(updates[name]) <= bound * scale * (1 + 1e-4)
        params, losses = new, losses + [float(loss)]
    assert np.mean(losses[-10:]) < 0.7 * np.mean(losses[:10])


def test_newton_schulz_orthogonalises():
    d = jax.random.normal(jax.random.key(0), (24, 40))
    for x in (d, d.T):
        s = np.linalg.svd(np.asarray(rule_v2.newton_schulz(x)), compute_uv=False)
        assert 0.6 < s.min() and s.max() < 1.25  # Muon's quintic: singular values near 1


def test_weight_norms_grow_at_most_linearly(meta_params):
    """A loss that always rewards larger weights (-|p|^2): each step adds at most the bound
    times the tensor's initial scale, so the norm grows linearly, never geometrically."""
    params = {"w": jax.random.normal(jax.random.key(4), (16, 8))}
    opt = lopt.optax_lopt(BUDGET, meta_params=meta_params, config=CONFIG)
    bound = rule_v2.step_bound(CONFIG) * _rms(params["w"])

    @jax.jit
    def run(p):
        def body(carry, _):
            p, s = carry
            loss, g = jax.value_and_grad(lambda q: -jnp.sum(jnp.square(q["w"])))(p)
            u, s = opt.update(g, s, p, loss=loss)
            return (optax.apply_updates(p, u), s), None

        return jax.lax.scan(body, (p, opt.init(p)), None, length=4 * BUDGET)[0][0]

    final = run(params)
    assert _rms(params["w"]) < _rms(final["w"]) <= _rms(params["w"]) + 4 * BUDGET * bound
