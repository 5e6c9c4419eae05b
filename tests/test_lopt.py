"""The learned optimizer as an optax transform: API, composition, robustness, equivalences.

Compilation dominates the cost of these tests, so most share two tiny parameter trees and a few
module-cached jitted functions.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

import velo
from velo import lopt
from velo.lopt.accumulators import TensorMoments

TINY = lopt.preset("tiny")
STEPS = 20


@pytest.fixture(scope="module")
def meta_params():
    return lopt.init_meta_params(jax.random.key(0), TINY)


def small_params(dtype=jnp.float32):
    """A matrix and a zero bias; sizes divisible by the 8 test devices."""
    w = jax.random.normal(jax.random.key(1), (32, 16)) * 0.3
    return {"b": jnp.zeros((16,), dtype), "w": w.astype(dtype)}


def small_loss(params, seed):
    noise = 0.1 * jax.random.normal(jax.random.fold_in(jax.random.key(7), seed), (16,))
    w, b = params["w"].astype(jnp.float32), params["b"].astype(jnp.float32)
    return jnp.mean(jnp.square(w - 0.5)) + jnp.mean(jnp.square(b - 0.3 - noise))


def all_ranks_params():
    """Every rank 0-4, a zero bias, and leaves the optimizer must leave alone."""
    k = jax.random.split(jax.random.key(1), 3)
    return {
        "scalar": jnp.asarray(0.5),
        "bias": jnp.zeros((8,)),
        "w": jax.random.normal(k[0], (16, 8)) * 0.3,
        "w3": jax.random.normal(k[1], (2, 4, 8)) * 0.3,
        "conv": jax.random.normal(k[2], (3, 3, 2, 4)) * 0.3,
        "steps": jnp.arange(3, dtype=jnp.int32),
        "flag": jnp.array([True, False]),
        "empty": jnp.zeros((0, 4)),
    }


def all_ranks_loss(params, seed):
    total = 0.0
    for i, name in enumerate(["scalar", "bias", "w", "w3", "conv"]):
        key = jax.random.fold_in(jax.random.fold_in(jax.random.key(3), seed), i)
        target = 0.5 + 0.1 * jax.random.normal(key, params[name].shape)
        total = total + jnp.mean(jnp.square(params[name] - target))
    return total


def run(opt, loss_fn, params, num_steps, seed=0):
    """``num_steps`` steps in a scan; returns final params, state and the losses."""

    def body(carry, i):
        p, s = carry
        loss, grads = jax.value_and_grad(loss_fn, allow_int=True)(p, seed * 1000 + i)
        updates, s = opt.update(grads, s, p, loss=loss)
        return (optax.apply_updates(p, updates), s), loss

    (params, state), losses = jax.lax.scan(body, (params, opt.init(params)), jnp.arange(num_steps))
    return params, state, losses


@functools.cache
def jitted_run(loss_fn):
    def go(meta_params, params, seed):
        opt = lopt.optax_lopt(STEPS, meta_params=meta_params, config=TINY)
        return run(opt, loss_fn, params, STEPS, seed)

    return jax.jit(go)


@functools.cache
def jitted_update():
    def update(meta_params, grads, state, params, loss):
        opt = lopt.optax_lopt(STEPS, meta_params=meta_params, config=TINY)
        return opt.update(grads, state, params, loss=loss)

    return jax.jit(update)


def test_presets_and_meta_param_counts():
    sizes = {n: (lopt.preset(n).lstm_size, lopt.preset(n).bank_size) for n in lopt.PRESETS}
    assert sizes == {
        "tiny": (32, 8), "small": (64, 32), "velo": (512, 256), "v2_tiny": (32, 8), "v2": (64, 32)
    }
    assert {n: lopt.preset(n).rule for n in lopt.PRESETS} == {
        "tiny": "v1", "small": "v1", "velo": "v1", "v2_tiny": "v2", "v2": "v2"
    }
    counts = {n: lopt.num_meta_params(lopt.preset(n)) for n in lopt.PRESETS}
    assert counts["tiny"] < counts["small"] < counts["velo"]
    assert 2.0e6 < counts["velo"] < 2.6e6  # VeLO's size: about 2.3 M
    with pytest.raises(ValueError, match="unknown preset"):
        lopt.preset("huge")
    with pytest.raises(ValueError, match="lstm_size"):
        lopt.Config(lstm_size=0)
    assert velo.optax_lopt is lopt.optax_lopt


@pytest.mark.parametrize(
    "dropped, match",
    [(("grad",), "names no per-element feature.*g_clipped"), (("m1_v",), "passes it through"),
     (("m1", "g"), "table order"), (("g", "g"), "once")],
)
def test_dropped_inputs_are_checked(dropped, match):
    with pytest.raises(ValueError, match=match):
        lopt.Config(dropped_inputs=dropped)
    config = lopt.Config(dropped_inputs=("g", "m3_f3"))
    assert lopt.Config.from_dict(config.to_dict()) == config
    bank = lopt.init_meta_params(jax.random.key(0), config)["bank"]["w1"]
    rows = [lopt.features.element_index(n) for n in config.dropped_inputs]
    assert not np.any(bank[:, rows]) and np.all(np.any(bank != 0, axis=(0, 2)) == np.isin(
        np.arange(bank.shape[1]), rows, invert=True))


@pytest.fixture(scope="module")
def seed_runs(meta_params):
    """Seeds 0 and 1 on every rank, in one vmapped program."""
    params = all_ranks_params()
    batched = jax.jit(jax.vmap(jitted_run(all_ranks_loss), in_axes=(None, None, 0)))
    return params, batched(meta_params, params, jnp.arange(2))


def test_trains_every_rank_and_leaves_non_float_leaves_alone(seed_runs):
    params, out = seed_runs
    final, state, losses = jax.tree.map(lambda x: x[0], out)
    assert losses[-1] < 0.95 * losses[0]
    for name in ["steps", "flag", "empty"]:
        assert final[name].dtype == params[name].dtype
        np.testing.assert_array_equal(final[name], params[name])
    assert not np.allclose(final["bias"], 0.0)  # zero-initialised tensors move (scale floor)
    assert int(state.inner.count) == STEPS and int(state.skipped) == 0
    assert state.inner.lstm[0].shape == (5, TINY.lstm_size)  # five float tensors
    leaves = jax.tree.leaves(final)
    assert len(leaves) == 8 and all(np.isfinite(np.asarray(x, np.float32)).all() for x in leaves)
    assert not np.allclose(out[2][0], out[2][1])  # seeds differ


def test_vmap_over_seeds_matches_single_runs_and_is_deterministic(meta_params):
    params = small_params()
    single = [jitted_run(small_loss)(meta_params, params, s)[2] for s in (0, 1, 1)]
    np.testing.assert_array_equal(single[1], single[2])
    batched = jax.jit(jax.vmap(jitted_run(small_loss), in_axes=(None, None, 0)))
    losses = batched(meta_params, params, jnp.arange(2))[2]
    np.testing.assert_allclose(losses, np.stack(single[:2]), rtol=2e-5)
    assert single[0][-1] < 0.9 * single[0][0]


def test_traced_meta_params_and_num_steps(meta_params):
    """Meta-training vmaps over a population of meta-params and traces the horizon."""
    population = jax.tree.map(lambda x: jnp.stack([x, x * 1.05]), meta_params)
    params = small_params()

    def go(mp, num_steps):
        opt = lopt.optax_lopt(num_steps, meta_params=mp, config=TINY)
        _, state, losses = run(opt, small_loss, params, 4)
        return losses, state.inner.lstm[1]

    batched = jax.jit(jax.vmap(go, in_axes=(0, None)))
    losses, lstm = batched(population, jnp.int32(STEPS))
    assert np.isfinite(losses).all() and losses[0, -1] < losses[0, 0]
    assert not np.allclose(losses[0], losses[1])  # the members really differ
    np.testing.assert_allclose(
        losses[0], jitted_run(small_loss)(meta_params, params, 0)[2][:4], rtol=2e-5
    )
    # The horizon is a traced input (no retrace) and matters: the LSTM sees the progress.
    assert not np.allclose(batched(population, jnp.int32(5))[1], lstm)


def test_sharded_params_match_unsharded(meta_params):
    mesh = Mesh(np.array(jax.devices()), ("d",))
    params = small_params()
    shardings = {
        "w": NamedSharding(mesh, PartitionSpec("d", None)),
        "b": NamedSharding(mesh, PartitionSpec("d")),
    }
    sharded = jax.device_put(params, shardings)
    opt = lopt.optax_lopt(STEPS, meta_params=meta_params, config=TINY)
    states, updates = {}, {}
    for name, p in (("plain", params), ("sharded", sharded)):
        state = opt.init(p)
        for i in range(2):
            loss, g = jax.value_and_grad(small_loss)(p, i)
            u, state = jitted_update()(meta_params, g, state, p, loss)
        states[name], updates[name] = state, u
    assert len(updates["sharded"]["w"].sharding.device_set) == 8
    close = functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-8)
    jax.tree.map(close, updates["plain"], updates["sharded"])
    # Incl. the LSTM's per-tensor state, whose inputs are tensor-wide sums: partitioned over the
    # devices they round differently, and the LSTM amplifies that slightly.
    close = functools.partial(np.testing.assert_allclose, rtol=5e-5, atol=1e-8)
    jax.tree.map(close, states["plain"], states["sharded"])


@pytest.mark.parametrize(
    "bad", ["grad_nan", "grad_inf", "bias_nan", "grad_overflow", "loss_nan", "params_nan"]
)
def test_non_finite_step_changes_nothing_but_the_skip_count(meta_params, bad):
    params = small_params()
    opt = lopt.optax_lopt(STEPS, meta_params=meta_params, config=TINY)
    loss, grads = jax.value_and_grad(small_loss)(params, 0)
    _, state = jitted_update()(meta_params, grads, opt.init(params), params, loss)
    # A gradient whose square overflows float32 would make the second moments infinite.
    value = {"grad_inf": jnp.inf, "grad_overflow": 1e20}.get(bad, jnp.nan)
    leaf = "b" if bad == "bias_nan" else "w"
    if bad == "loss_nan":
        loss = jnp.float32(jnp.nan)
    elif bad == "params_nan":  # a broken model: its loss and gradients are NaN too
        params = dict(params, w=params["w"].at[0, 0].set(jnp.nan))
        loss, grads = jax.value_and_grad(small_loss)(params, 1)
    else:
        grads = dict(grads, **{leaf: grads[leaf].at[3].set(value)})
    updates, new_state = jitted_update()(meta_params, grads, state, params, loss)
    assert len(jax.tree.leaves(updates)) == 2
    assert all(not np.any(u) for u in jax.tree.leaves(updates))
    assert int(new_state.skipped) == 1 and int(new_state.inner.count) == 1
    jax.tree.map(
        np.testing.assert_array_equal, new_state._replace(skipped=0), state._replace(skipped=0)
    )


def test_guarded_steps_equal_the_unguarded_transform(meta_params):
    """`optax_lopt` skips non-finite steps by masking its inputs; a finite step is the same
    computation as `scale_by_lopt`'s (XLA fuses the two programs differently, so the LSTM state
    may round differently in the last bit)."""
    params = all_ranks_params()
    guarded = lopt.optax_lopt(STEPS, meta_params=meta_params, config=TINY)
    plain = lopt.scale_by_lopt(meta_params, TINY, STEPS)
    states = {"guarded": guarded.init(params), "plain": plain.init(params)}
    close = functools.partial(np.testing.assert_allclose, rtol=1e-6, atol=1e-9)
    for i in range(3):
        loss, grads = jax.value_and_grad(all_ranks_loss, allow_int=True)(params, i)
        u, states["guarded"] = jax.jit(guarded.update)(grads, states["guarded"], params, loss=loss)
        v, states["plain"] = jax.jit(plain.update)(grads, states["plain"], params, loss=loss)
        jax.tree.map(close, u, v)
        params = optax.apply_updates(params, u)
    jax.tree.map(close, states["guarded"].inner, states["plain"])
    assert int(states["guarded"].skipped) == 0


def test_bf16_params_keep_float32_state(meta_params):
    params = small_params(jnp.bfloat16)
    final, state, losses = jitted_run(small_loss)(meta_params, params, 0)
    assert final["w"].dtype == jnp.bfloat16
    moments = [m for m in state.inner.moments if isinstance(m, TensorMoments)]
    assert len(moments) == 2  # the bias and the matrix, in groups of their own
    assert all(x.dtype == jnp.float32 for m in moments for x in jax.tree.leaves(m))
    assert losses[-1] < 0.8 * losses[0]


def test_composes_with_chain_and_multisteps(meta_params):
    params = small_params()
    base = lopt.optax_lopt(STEPS, meta_params=meta_params, config=TINY)
    chained = optax.chain(optax.clip_by_global_norm(1.0), base)
    multi = optax.MultiSteps(base, every_k_schedule=2)
    for opt in (chained, multi):
        _, _, losses = jax.jit(lambda p, o=opt: run(o, small_loss, p, STEPS))(params)
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
    with pytest.raises(ValueError, match="no non-empty floating-point leaf"):
        opt.init({"steps": jnp.arange(3), "empty": jnp.zeros((0, 4))})
    with pytest.raises(ValueError, match="num_steps must be >= 1"):
        lopt.optax_lopt(0, meta_params=meta_params, config=TINY)
    with pytest.raises(ValueError, match="weight_decay"):
        lopt.optax_lopt(10, meta_params=meta_params, config=TINY, weight_decay=-1.0)
    with pytest.raises(ValueError, match="structure|shape"):
        lopt.optax_lopt(10, meta_params=meta_params, config=lopt.preset("small"))
    with pytest.raises(ValueError, match="not both"):
        lopt.optax_lopt(10, meta_params=meta_params, checkpoint="x", config=TINY)
    with pytest.raises(ValueError, match="no checkpoint directory"):
        lopt.optax_lopt(10, checkpoint="/nonexistent/velo-ckpt")


def test_untrained_initialisation_halves_digits_loss():
    """The untrained initialisation already optimises a real task."""
    import tasks
    from velo.train import train

    config = lopt.preset("small")
    meta_params = lopt.init_meta_params(jax.random.key(0), config)
    opt = velo.optax_lopt(1000, meta_params=meta_params, config=config)
    result = train(tasks.get("digits_mlp"), opt, 1000, seed=0, chunk=1000)
    start, end = result.losses[:10].mean(), result.losses[-50:].mean()
    assert end < 0.5 * start, (start, end)
    assert result.test["accuracy"] > 0.9
