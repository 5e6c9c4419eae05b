"""The learned optimizer as an optax transform: API, composition, robustness, equivalences."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

import velo
from velo import lopt

TINY = lopt.preset("tiny")
STEPS = 20


@pytest.fixture(scope="module")
def meta_params():
    return lopt.init_meta_params(jax.random.key(0), TINY)


def make_params(key, dtype=jnp.float32):
    """Every rank 0-4, a zero-initialised bias, and leaves the optimizer must leave alone."""
    k = jax.random.split(key, 4)
    return {
        "scalar": jnp.asarray(0.5, dtype),
        "bias": jnp.zeros((8,), dtype),
        "w": (jax.random.normal(k[0], (16, 8)) * 0.3).astype(dtype),
        "w3": (jax.random.normal(k[1], (2, 4, 8)) * 0.3).astype(dtype),
        "conv": (jax.random.normal(k[2], (3, 3, 2, 4)) * 0.3).astype(dtype),
        "steps": jnp.arange(3, dtype=jnp.int32),
        "flag": jnp.array([True, False]),
        "empty": jnp.zeros((0, 4), dtype),
    }


def quadratic_loss(params, key):
    """A noisy quadratic over every float leaf; integer leaves are carried along unused."""
    total = 0.0
    for i, name in enumerate(["scalar", "bias", "w", "w3", "conv"]):
        target = jax.random.normal(jax.random.fold_in(key, i), params[name].shape)
        total = total + jnp.mean(jnp.square(params[name].astype(jnp.float32) - 0.5 - 0.1 * target))
    return total


def float_grads(loss_fn, params, *args):
    loss, grads = jax.value_and_grad(loss_fn, allow_int=True)(params, *args)
    return loss, grads


def run(opt, params, num_steps, seed=0):
    """``num_steps`` jittable steps; returns final params, state and losses."""
    state = opt.init(params)

    def body(carry, i):
        p, s = carry
        loss, grads = float_grads(quadratic_loss, p, jax.random.fold_in(jax.random.key(seed), i))
        updates, s = opt.update(grads, s, p, loss=loss)
        return (optax.apply_updates(p, updates), s), loss

    (params, state), losses = jax.lax.scan(body, (params, state), jnp.arange(num_steps))
    return params, state, losses


@functools.cache
def jitted_run(num_steps):
    def go(meta_params, params, seed):
        opt = lopt.optax_lopt(num_steps, meta_params=meta_params, config=TINY)
        return run(opt, params, num_steps, seed)

    return jax.jit(go)


def test_presets_and_meta_param_counts():
    sizes = {n: (lopt.preset(n).lstm_size, lopt.preset(n).bank_size) for n in lopt.PRESETS}
    assert sizes == {"tiny": (32, 8), "small": (64, 32), "velo": (512, 256)}
    counts = {n: lopt.num_meta_params(lopt.preset(n)) for n in lopt.PRESETS}
    assert counts["tiny"] < counts["small"] < counts["velo"]
    assert 2.0e6 < counts["velo"] < 2.6e6  # VeLO's size: about 2.3 M
    with pytest.raises(ValueError, match="unknown preset"):
        lopt.preset("huge")
    with pytest.raises(ValueError, match="lstm_size"):
        lopt.Config(lstm_size=0)


def test_velo_exports_optax_lopt():
    assert velo.optax_lopt is lopt.optax_lopt


def test_trains_every_rank_and_leaves_non_float_leaves_alone(meta_params):
    params = make_params(jax.random.key(1))
    final, state, losses = jitted_run(STEPS)(meta_params, params, 0)
    assert losses[-1] < 0.9 * losses[0]
    for name in ["steps", "flag", "empty"]:
        assert final[name].dtype == params[name].dtype
        np.testing.assert_array_equal(final[name], params[name])
    assert not np.allclose(final["bias"], 0.0)  # zero-initialised tensors move (scale floor)
    assert int(state.count) == STEPS and int(state.skipped) == 0
    assert state.lstm[0].shape == (5, TINY.lstm_size)  # five float tensors
    assert all(jnp.isfinite(x).all() for x in jax.tree.leaves(final))


def test_deterministic_and_seed_dependent(meta_params):
    params = make_params(jax.random.key(1))
    a = jitted_run(STEPS)(meta_params, params, 0)
    b = jitted_run(STEPS)(meta_params, params, 0)
    c = jitted_run(STEPS)(meta_params, params, 1)
    jax.tree.map(np.testing.assert_array_equal, a, b)
    assert not np.allclose(a[2], c[2])


def test_vmap_over_seeds_matches_single_runs(meta_params):
    params = make_params(jax.random.key(1))
    batched = jax.jit(jax.vmap(jitted_run(STEPS), in_axes=(None, None, 0)))
    losses = batched(meta_params, params, jnp.arange(2))[2]
    for seed in range(2):
        single = jitted_run(STEPS)(meta_params, params, seed)[2]
        np.testing.assert_allclose(losses[seed], single, rtol=2e-5)


def test_traced_meta_params_and_num_steps(meta_params):
    """Meta-training vmaps over a population and traces the horizon."""
    population = jax.tree.map(lambda x: jnp.stack([x, x * 1.01]), meta_params)
    params = make_params(jax.random.key(1))

    def go(mp, num_steps):
        opt = lopt.optax_lopt(num_steps, meta_params=mp, config=TINY)
        return run(opt, params, 5)[2]

    losses = jax.jit(jax.vmap(go, in_axes=(0, None)))(population, jnp.int32(STEPS))
    assert losses.shape == (2, 5) and np.isfinite(losses).all()
    np.testing.assert_allclose(losses[0], jax.jit(go)(meta_params, STEPS), rtol=1e-5)


def test_sharded_params_match_unsharded(meta_params):
    mesh = Mesh(np.array(jax.devices()), ("d",))
    params = {"w": jax.random.normal(jax.random.key(2), (32, 16)) * 0.2,
              "b": jax.random.normal(jax.random.key(3), (16,)) * 0.1}
    sharded = {"w": jax.device_put(params["w"], NamedSharding(mesh, PartitionSpec("d", None))),
               "b": jax.device_put(params["b"], NamedSharding(mesh, PartitionSpec("d")))}
    opt = lopt.optax_lopt(10, meta_params=meta_params, config=TINY)

    def loss_fn(p):
        return jnp.sum(jnp.sin(p["w"]) ** 2) + jnp.sum(p["b"] ** 4)

    @jax.jit
    def two_steps(p):
        s = opt.init(p)
        for _ in range(2):
            loss, g = jax.value_and_grad(loss_fn)(p)
            u, s = opt.update(g, s, p, loss=loss)
            p = optax.apply_updates(p, u)
        return p, s

    ref, ref_state = two_steps(params)
    out, out_state = two_steps(sharded)
    assert len(out["w"].sharding.device_set) == 8
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), ref, out)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
                 ref_state.lstm, out_state.lstm)


@pytest.mark.parametrize("bad", ["grad_nan", "grad_inf", "loss_nan"])
def test_non_finite_step_changes_nothing_but_the_skip_count(meta_params, bad):
    opt = lopt.optax_lopt(10, meta_params=meta_params, config=TINY)
    params = make_params(jax.random.key(1))
    loss, grads = float_grads(quadratic_loss, params, jax.random.key(0))
    state = opt.init(params)
    _, state = jax.jit(functools.partial(opt.update, loss=loss))(grads, state, params)
    if bad == "loss_nan":
        loss = jnp.nan
    else:
        grads = dict(grads, w=grads["w"].at[3, 2].set(jnp.nan if bad == "grad_nan" else jnp.inf))
    updates, new_state = jax.jit(functools.partial(opt.update, loss=loss))(grads, state, params)
    for name, u in updates.items():
        assert u.dtype == params[name].dtype
        if u.dtype != jax.dtypes.float0:
            assert not np.any(np.asarray(u, np.float32)), name
    assert int(new_state.skipped) == 1 and int(new_state.count) == 1
    jax.tree.map(np.testing.assert_array_equal, new_state._replace(skipped=0),
                 state._replace(skipped=0))


def test_bf16_params_keep_float32_state(meta_params):
    params = make_params(jax.random.key(1), jnp.bfloat16)
    final, state, losses = jitted_run(STEPS)(meta_params, params, 0)
    assert final["w"].dtype == jnp.bfloat16
    moments = [m for m in state.moments if isinstance(m, lopt.transform.TensorMoments)]
    assert all(x.dtype == jnp.float32 for m in moments for x in jax.tree.leaves(m))
    assert losses[-1] < 0.9 * losses[0]


def test_composes_with_chain_and_multisteps(meta_params):
    params = make_params(jax.random.key(1))
    base = lopt.optax_lopt(STEPS, meta_params=meta_params, config=TINY)
    chained = optax.chain(optax.clip_by_global_norm(1.0), base)
    multi = optax.MultiSteps(base, every_k_schedule=2)
    for opt in (chained, multi):
        _, _, losses = jax.jit(lambda p, o=opt: run(o, p, STEPS))(params)
        assert losses[-1] < 0.9 * losses[0]


def test_flax_nnx_optimizer(meta_params):
    from flax import nnx

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.hidden = nnx.Linear(4, 16, rngs=rngs)
            self.out = nnx.Linear(16, 1, rngs=rngs)

        def __call__(self, x):
            return self.out(nnx.relu(self.hidden(x)))

    model = Net(nnx.Rngs(0))
    optimizer = nnx.Optimizer(
        model, lopt.optax_lopt(30, meta_params=meta_params, config=TINY), wrt=nnx.Param
    )
    x = jax.random.normal(jax.random.key(0), (64, 4))
    y = jnp.sin(x.sum(axis=1, keepdims=True))

    @nnx.jit
    def step(model, optimizer):
        loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(x) - y) ** 2))(model)
        optimizer.update(model, grads, loss=loss)
        return loss

    losses = [float(step(model, optimizer)) for _ in range(30)]
    assert losses[-1] < 0.7 * losses[0]


def test_bad_input(meta_params):
    opt = lopt.optax_lopt(10, meta_params=meta_params, config=TINY)
    params = {"w": jnp.ones((2, 2))}
    with pytest.raises(ValueError, match="loss="):
        opt.update(params, opt.init(params), params)
    with pytest.raises(ValueError, match="params"):
        opt.update(params, opt.init(params), loss=1.0)
    with pytest.raises(ValueError, match="num_steps must be >= 1"):
        lopt.optax_lopt(0, meta_params=meta_params, config=TINY)
    with pytest.raises(ValueError, match="structure|shape"):
        lopt.optax_lopt(10, meta_params=meta_params, config=lopt.preset("small"))
    with pytest.raises(ValueError, match="not both"):
        lopt.optax_lopt(10, meta_params=meta_params, checkpoint="x", config=TINY)
    with pytest.raises(ValueError, match="no checkpoint directory"):
        lopt.optax_lopt(10, checkpoint="/nonexistent/velo-ckpt")


def test_default_untrained_halves_digits_loss():
    """The untrained default optimizer already optimises a real task (issue 5, item 6)."""
    import tasks
    from velo.train import train

    with pytest.warns(UserWarning, match="untrained"):
        opt = velo.optax_lopt(1000)
    result = train(tasks.get("digits_mlp"), opt, 1000, seed=0, chunk=1000)
    start, end = result.losses[:10].mean(), result.losses[-50:].mean()
    assert end < 0.5 * start, (start, end)
    assert result.test["accuracy"] > 0.9
