"""The baselines registry: one calling convention, bad input, non-finite steps, training, CLI."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import tasks
from velo import baselines, cli, optimizers
from velo.train import train

NAMES = baselines.names()
LR_NAMES = [n for n in NAMES if "learning_rate" in baselines.defaults(n)]
# Their learning_rate multiplies an estimate that starts tiny (or, for cocob, scales the gradient
# the bets are normalised by), so three steps do not tell two multipliers apart.
LR_FREE = {"prodigy", "dadapt_adamw", "mechanic", "cocob", "dog"}
# Scheduled baselines need the run's length (velo.optimizers.make passes it).
RUN_LENGTH = {n: {"total_steps": 200} for n in NAMES if "total_steps" in baselines.defaults(n)}


def quadratic(params):
    leaves = jax.tree.leaves(params)
    return sum(jnp.sum((i + 1.0) * jnp.square(x - 0.5)) for i, x in enumerate(leaves))


def small_params():
    return {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}


def test_every_method_is_registered():
    assert set(NAMES) == {
        "adam", "sgd", "momentum", "radam", "lion", "salsa", "salsa_paper", "ranger", "gi_adam",
        "prodigy", "dadapt_adamw", "mechanic", "cocob", "schedule_free_adamw", "dog",
        "adamw_cosine", "lion_cosine",
    }
    assert set(NAMES) - set(LR_NAMES) == {"salsa", "salsa_paper"}
    assert baselines.defaults("radam")["before_threshold"] == "sgd"
    assert baselines.defaults("lion")["learning_rate"] == 3e-4


@pytest.mark.parametrize("name", NAMES)
def test_calling_convention_and_nonfinite_steps(name):
    """A good step descends; NaN/inf gradients or loss are skipped and leave no NaN behind."""
    opt = baselines.make(name, **RUN_LENGTH.get(name, {}))
    assert isinstance(opt, optax.GradientTransformationExtraArgs)
    params = small_params()
    update = jax.jit(functools.partial(opt.update, loss_fn=quadratic))
    loss, grads = jax.value_and_grad(quadratic)(params)
    updates, state = update(grads, opt.init(params), params, loss=loss)
    assert jax.tree.structure(updates) == jax.tree.structure(params)
    assert quadratic(optax.apply_updates(params, updates)) < loss
    bad_grads = {"w": grads["w"].at[0, 0].set(jnp.nan), "b": grads["b"].at[1].set(jnp.inf)}
    for g, value, skipped in [(bad_grads, loss, 1), (grads, jnp.float32(jnp.nan), 2)]:
        updates, new_state = update(g, state, params, loss=value)
        jax.tree.map(np.testing.assert_array_equal, updates, jax.tree.map(jnp.zeros_like, params))
        jax.tree.map(np.testing.assert_array_equal, new_state.inner, state.inner)
        assert int(new_state.skipped) == skipped
        state = new_state
    updates, state = update(grads, state, params, loss=loss)
    assert jax.tree.all(jax.tree.map(lambda x: bool(jnp.all(jnp.isfinite(x))), (updates, state)))


@pytest.mark.parametrize("name", LR_NAMES)
def test_learning_rate_may_be_a_vmapped_tracer(name):
    def final_params(lr):
        opt = baselines.make(name, learning_rate=lr, **RUN_LENGTH.get(name, {}))
        params = small_params()
        state = opt.init(params)
        for _ in range(3):
            loss, grads = jax.value_and_grad(quadratic)(params)
            updates, state = opt.update(grads, state, params, loss=loss, loss_fn=quadratic)
            params = optax.apply_updates(params, updates)
        return params

    out = jax.jit(jax.vmap(final_params))(jnp.array([1e-3, 1e-2], jnp.float32))
    w = np.asarray(out["w"])
    assert np.isfinite(w).all()
    if name not in LR_FREE:
        assert not np.allclose(w[0], w[1])


@pytest.fixture(scope="module")
def digits_runs():
    task = tasks.get("digits_mlp")
    return {n: train(task, baselines.make(n, **RUN_LENGTH.get(n, {})), 200, seed=0, chunk=200,
                     eval_params=baselines.eval_params_fn(n)) for n in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_every_optimizer_trains_the_digits_mlp(digits_runs, name):
    result = digits_runs[name]
    # Loose bounds: RAdam-based ranger warms up slowly and 200 steps is short.
    assert result.losses[-30:].mean() < 0.9 * result.losses[:10].mean()
    assert result.test["accuracy"] > 0.5
    assert int(result.state.opt_state.skipped) == 0


def three_steps(opt):
    params = small_params()
    state, update = opt.init(params), jax.jit(opt.update)
    for _ in range(3):
        updates, state = update(jax.grad(quadratic)(params), state, params)
        params = optax.apply_updates(params, updates)
    return params, state


def test_eval_params_hooks():
    assert [n for n in NAMES if baselines.eval_params_fn(n)] == ["ranger", "schedule_free_adamw"]
    params, state = three_steps(baselines.make("schedule_free_adamw"))
    at = baselines.eval_params_fn("schedule_free_adamw")(state, params)
    expected = optax.contrib.schedule_free_eval_params(state.inner, params)
    jax.tree.map(np.testing.assert_array_equal, at, expected)
    assert not np.allclose(at["w"], params["w"])
    params, state = three_steps(baselines.make("ranger"))
    at = baselines.eval_params_fn("ranger")(state, params)
    # Lookahead's slow weights stay at the start until the first sync (every 5 steps).
    jax.tree.map(np.testing.assert_array_equal, at, small_params())
    assert not np.allclose(params["w"], 1.0)


def traced_step(opt) -> str:
    """The jaxpr of one step of ``opt`` on `small_params`: equal text means the same computation,
    every hyperparameter constant included."""

    def step(params):
        loss, grads = jax.value_and_grad(quadratic)(params)
        return opt.update(grads, opt.init(params), params, loss=loss, loss_fn=quadratic)[0]

    return str(jax.make_jaxpr(step)(small_params()))


@pytest.mark.parametrize("name", NAMES)
def test_velo_optimizers_passes_every_setting_on(name):
    """`velo.optimizers.make` builds every baseline with the given learning rate, further
    hyperparameters and (for schedules) the run length, and they change the computation."""
    lr = {"learning_rate": 2e-3} if name in LR_NAMES else {}
    hparams = {"eps": 1e-7} if "eps" in baselines.defaults(name) else {}
    assert lr or hparams, "give every optimizer a setting that differs from its default"
    built = traced_step(optimizers.make(name, 200, **lr, hparams=hparams))
    run_length = RUN_LENGTH.get(name, {})
    assert built == traced_step(baselines.make(name, **lr, **hparams, **run_length))
    assert built != traced_step(baselines.make(name, **run_length))


@pytest.mark.parametrize("argv", [
    ["--optimizer", "salsa", "--set", "c=0.4", "max_trials=20"],
    ["--optimizer", "ranger", "--lr", "0.002", "--set", "sync_period=3"],
])
def test_velo_train_cli(argv, tmp_path):
    base = ["train", "--task", "digits_mlp", "--steps", "2", "--out", str(tmp_path)]
    code = cli.main([*base, *argv])
    assert code == 0 and (tmp_path / "run.json").exists()


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "adamm"}, "unknown optimizer 'adamm'"),
    ({"name": "adam", "beta1": 0.9}, "unknown hyperparameter(s) beta1 for optimizer 'adam'"),
    ({"name": "salsa", "learning_rate": 1e-3}, "takes no learning rate"),
    ({"name": "adam", "learning_rate": -1e-3}, "learning_rate must be > 0"),
    ({"name": "lion", "learning_rate": float("nan")}, "learning_rate must be > 0"),
    ({"name": "radam", "before_threshold": "zero"}, "before_threshold must be one of"),
    ({"name": "salsa", "c": 1.5}, "c must be in (0, 1)"),
    ({"name": "salsa", "max_trials": 0}, "max_trials must be an int >= 1"),
    ({"name": "ranger", "sync_period": 0}, "sync_period must be an int >= 1"),
])
def test_bad_hyperparameters(kwargs, message):
    with pytest.raises(ValueError, match=_literal(message)):
        baselines.make(**kwargs)


def test_bad_input_through_the_cli(tmp_path, capsys):
    code = cli.main(["train", "--task", "digits_mlp", "--optimizer", "salsa", "--lr", "0.1",
                     "--steps", "2", "--out", str(tmp_path)])
    assert code == 2 and "takes no learning rate" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["adam", "salsa", "ranger", "prodigy"])
def test_integer_params_are_rejected(name):
    with pytest.raises(ValueError, match=_literal("params leaf ['steps'] has dtype int32")):
        baselines.make(name).init({"w": jnp.ones(2), "steps": jnp.zeros((), jnp.int32)})


def test_catapult_learning_rate_brackets_the_stability_edge():
    def loss_fn(x):  # top curvature 10: gradient descent is unstable above 2 / 10
        return 0.5 * jnp.sum(jnp.array([10.0, 1.0, 0.1]) * x**2)

    x0 = jnp.ones(3)
    lr = baselines.catapult_learning_rate(loss_fn, x0, optax.sgd, bisections=6)
    assert 0.15 < lr < 0.3
    schedule = baselines.catapult_warmup(loss_fn, x0, optax.sgd, 1.0, 100, bisections=6)
    assert float(schedule(0)) == pytest.approx(lr) and float(schedule(100)) == pytest.approx(1.0)
    assert float(baselines.catapult_warmup(loss_fn, x0, optax.sgd, 0.01, 100)(0)) == 0.01
    opt = baselines.gi_adam(schedule)  # a schedule plugs in as the learning rate
    assert opt.init(x0) is not None


def _literal(text):
    import re

    return re.escape(text)
