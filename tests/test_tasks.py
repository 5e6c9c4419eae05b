"""The task population: every family on every dataset it reads trains; specs, sampler, suites."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import tasks
from tasks import augment, cost, datasets, families, objectives
from tasks.heldout import HELDOUT, QUICK
from tasks.sampler import DISTRIBUTIONS, get_distribution
from tasks.spec import TaskSpec

ACT = "tanh"
# One tiny spec per family x built-in dataset combination the families accept.
COMBOS = {
    **{f"mlp-{d}": TaskSpec("mlp", d, {"hidden": [16], "activation": ACT}, 16)
       for d in ("digits8", "digits4", "mnist1d", "teacher", "logistic")},
    **{f"cnn-{d}": TaskSpec("cnn", d, {"channels": [8, 8], "downsample": "stride",
                                       "activation": "relu"}, 16)
       for d in ("digits8", "digits4", "mnist1d")},
    **{f"autoencoder-{d}": TaskSpec("autoencoder", d, {"hidden": [16], "activation": ACT}, 16)
       for d in ("digits8", "digits4", "mnist1d")},
    **{f"vit-{d}": TaskSpec("vit", d, {"patch": 2, "width": 16, "layers": 1, "heads": 2}, 16)
       for d in ("digits8", "digits4", "mnist1d")},
    **{f"rnn_{c}-english": TaskSpec("rnn", "english",
                                    {"cell": c, "hidden": 32, "embed": 8, "seq": 16}, 8)
       for c in ("vanilla", "lstm", "gru")},
    "transformer-english": TaskSpec("transformer", "english",
                                    {"layers": 1, "width": 16, "heads": 2, "seq": 16}, 8),
    "quadratic-quadratic": TaskSpec("quadratic", "quadratic",
                                    {"dim": 16, "log10_condition": 2}, 16),
}
STEPS = 200


def test_combos_cover_every_family_and_builtin_dataset():
    assert {s.family for s in COMBOS.values()} == set(families.FAMILIES)
    assert {s.dataset for s in COMBOS.values()} == set(datasets.builtin_names())
    for name, family in families.FAMILIES.items():
        readable = {d for d in datasets.builtin_names() if datasets.info(d).kind in family.kinds}
        assert readable == {s.dataset for s in COMBOS.values() if s.family == name}


# These programs run once and briefly: skip XLA's slow optimisation passes (~2x faster compiles).
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def _compiled(fn, *args):
    return jax.jit(fn).lower(*args).compile(FAST_COMPILE)


def _adam_run(task, learning_rate):
    """One compiled program: grads at init, ``STEPS`` Adam losses and the final test metrics."""
    opt = optax.adam(learning_rate)

    def run(key):
        init_key, data_key = jax.random.split(key)
        params = task.init(init_key)
        first_grads = jax.grad(task.loss)(params, task.sample_batch(data_key), data_key)

        def step(carry, k):
            params, state = carry
            batch_key, loss_key = jax.random.split(k)
            loss, grads = jax.value_and_grad(task.loss)(params, task.sample_batch(batch_key),
                                                        loss_key)
            updates, state = opt.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), loss

        carry, losses = jax.lax.scan(step, (params, opt.init(params)),
                                     jax.random.split(data_key, STEPS))
        return first_grads, losses, task.test_metrics(carry[0])

    return _compiled(run, jax.random.key(0))(jax.random.key(0))


@pytest.fixture(scope="module")
def runs():
    return {name: _adam_run(tasks.build(spec), 1e-2) for name, spec in COMBOS.items()}


@pytest.mark.parametrize("name", list(COMBOS))
def test_family_dataset_trains(name, runs):
    grads, losses, test = runs[name]
    losses = np.asarray(losses)
    assert np.isfinite(losses).all()
    assert all(np.isfinite(g).all() for g in jax.tree.leaves(grads))
    assert sum(float(jnp.abs(g).sum()) for g in jax.tree.leaves(grads)) > 0
    assert losses[-20:].mean() < 0.9 * losses[:20].mean()
    assert np.isfinite(float(test["loss"]))


def test_task_metadata():
    task = tasks.build(COMBOS["mlp-digits8"])
    assert task.num_params == 64 * 16 + 16 + 16 * 10 + 10
    assert task.normalizer == pytest.approx(np.log(10))
    assert task.default_steps == 1000
    assert task.flops_per_step == 6 * (64 * 16 + 16 * 10) * 16
    assert json.loads(json.dumps(dict(task.spec))) == dict(task.spec)
    lm = tasks.build(COMBOS["transformer-english"])
    assert lm.normalizer == pytest.approx(np.log(96))


@pytest.mark.parametrize("name", ["mlp-digits8", "cnn-digits8", "transformer-english"])
def test_flops_estimate_matches_xla(name):
    task = tasks.build(COMBOS[name])
    key = jax.random.key(0)
    params, batch = jax.eval_shape(task.init, key), jax.eval_shape(task.sample_batch, key)
    xla = jax.jit(jax.grad(task.loss)).lower(params, batch, key).cost_analysis()
    assert 0.3 < task.flops_per_step / xla["flops"] < 3


@pytest.mark.parametrize("name", ["cnn-mnist1d", "rnn_gru-english", "quadratic-quadratic"])
def test_batches_jit_and_vmap_over_a_population(name):
    task = tasks.build(COMBOS[name])
    keys = jax.random.split(jax.random.key(0), 8)

    def population(keys):
        batches = jax.vmap(task.sample_batch)(keys)
        losses = jax.vmap(task.loss)(jax.vmap(task.init)(keys), batches, keys)
        return batches, task.sample_batch(keys[3]), losses

    batches, single, losses = _compiled(population, keys)(keys)
    for pop_leaf, leaf in zip(jax.tree.leaves(batches), jax.tree.leaves(single), strict=True):
        assert pop_leaf.shape == (8, *leaf.shape)
        np.testing.assert_array_equal(pop_leaf[3], leaf)
        assert not np.array_equal(pop_leaf[0], pop_leaf[1])
    assert losses.shape == (8,) and np.isfinite(losses).all()


def test_text_batches_are_shifted_windows():
    task = tasks.build(COMBOS["rnn_lstm-english"])
    inputs, targets = task.sample_batch(jax.random.key(0))
    assert inputs.shape == targets.shape == (8, 16)
    np.testing.assert_array_equal(inputs[:, 1:], targets[:, :-1])


@pytest.mark.parametrize("reparam, exponent", [("global", 3), ("global", -3), ("tensor", 3)])
def test_reparameterisation_rescales_params_and_grads(reparam, exponent):
    plain = tasks.build(COMBOS["mlp-digits8"])
    spec = TaskSpec("mlp", "digits8", {"hidden": [16], "activation": ACT}, 16, reparam, exponent)
    scaled = tasks.build(spec)
    key = jax.random.key(0)
    scales = augment.reparam_scales(spec, jax.eval_shape(plain.init, key))
    exponents = {int(round(np.log10(s))) for s in jax.tree.leaves(scales)}
    assert exponents == {exponent} if reparam == "global" else len(exponents) > 1
    assert exponents <= set(range(-3, 4))

    def both(key):
        batch = plain.sample_batch(key)
        w, theta = plain.init(key), scaled.init(key)
        return (w, theta, plain.loss(w, batch, key), scaled.loss(theta, batch, key),
                jax.grad(plain.loss)(w, batch, key), jax.grad(scaled.loss)(theta, batch, key))

    w, theta, loss_w, loss_theta, g_w, g_theta = _compiled(both, key)(key)
    np.testing.assert_allclose(loss_theta, loss_w, rtol=1e-4)
    jax.tree.map(lambda a, b, s: np.testing.assert_allclose(b * s, a, rtol=1e-4, atol=1e-7),
                 w, theta, scales)
    jax.tree.map(lambda gt, gw, s: np.testing.assert_allclose(gt, gw * s, rtol=1e-3,
                                                              atol=1e-6 * s),
                 g_theta, g_w, scales)


def test_label_noise_flips_the_expected_fraction():
    clean = tasks.build(TaskSpec("mlp", "digits8", {"hidden": [], "activation": ACT}, 4096))
    noisy = tasks.build(TaskSpec("mlp", "digits8", {"hidden": [], "activation": ACT}, 4096,
                                 label_noise=0.5))
    key = jax.random.key(0)
    (x1, y1), (x2, y2) = clean.sample_batch(key), noisy.sample_batch(key)
    np.testing.assert_array_equal(x1, x2)
    assert np.mean(np.asarray(y1) != np.asarray(y2)) == pytest.approx(0.5 * 0.9, abs=0.03)


def test_label_smoothing_raises_the_loss_of_confident_predictions():
    labels = jnp.arange(4)
    confident = 20.0 * jax.nn.one_hot(labels, 10)
    plain, smooth = objectives.cross_entropy(10), objectives.cross_entropy(10, 0.2)
    assert float(plain.loss(confident, labels)) < 1e-6
    assert float(smooth.loss(confident, labels)) > 1.0
    assert float(smooth.metrics(confident, labels)["loss"]) < 1e-6  # test loss is unsmoothed
    uniform = jnp.zeros((4, 10))
    np.testing.assert_allclose(smooth.loss(uniform, labels), np.log(10), rtol=1e-6)


# --- specs ------------------------------------------------------------------------------------


def test_spec_json_round_trip_gives_the_identical_task():
    for spec in [*COMBOS.values(), *(s for s, _ in HELDOUT.values()),
                 tasks.sample(jax.random.key(7), "default")]:
        again = TaskSpec.from_json(spec.to_json())
        assert again == spec and hash(again) == hash(spec)
        assert TaskSpec.from_dict(json.loads(json.dumps(dict(spec)))) == spec
    spec = COMBOS["mlp-teacher"]
    assert tasks.build(TaskSpec.from_json(spec.to_json())) is tasks.build(spec)
    assert tasks.build(dict(spec)) is tasks.build(spec)
    assert tasks.build(tasks.get("digits_mlp").spec) is tasks.get("digits_mlp")


def _spec_dict(**changes):
    data = dict(COMBOS["mlp-digits8"])
    data.update(changes)
    return data


@pytest.mark.parametrize("changes, message", [
    ({"family": "resnet"}, "unknown family 'resnet'; choose one of: mlp"),
    ({"dataset": "imagenet"}, "unknown dataset 'imagenet'; choose one of"),
    ({"family": "rnn"}, "family 'rnn' cannot read dataset 'digits8'"),
    ({"arch": {"hidden": [0], "activation": "relu"}}, "arch.hidden = [0] is out of range"),
    ({"arch": {"hidden": [8] * 9, "activation": "relu"}}, "list of 0-8 integers"),
    ({"arch": {"hidden": [8], "activation": "swish"}}, "one of 'relu', 'gelu', 'tanh'"),
    ({"arch": {"hidden": [8]}}, "missing: activation"),
    ({"arch": {"hidden": [8], "activation": "relu", "dropout": 0.1}}, "unknown: dropout"),
    ({"batch_size": 0}, "batch_size = 0 is out of range"),
    ({"batch_size": 1.5}, "batch_size = 1.5 is out of range"),
    ({"reparam": "layer"}, "reparam = 'layer'; choose one of: none, global, tensor"),
    ({"reparam": "global", "reparam_exponent": 4}, "reparam_exponent = 4 is out of range"),
    ({"reparam_exponent": 2}, "must be 0 when reparam is 'none'"),
    ({"label_smoothing": 0.9}, "label_smoothing = 0.9 is out of range"),
    ({"dataset": "teacher", "label_noise": 0.1}, "label_noise applies to classification only"),
    ({"seed": -1}, "seed = -1 is out of range"),
])
def test_bad_specs_name_the_problem(changes, message):
    with pytest.raises(ValueError, match=None) as err:
        TaskSpec.from_dict(_spec_dict(**changes))
    assert message in str(err.value)


@pytest.mark.parametrize("spec, message", [
    ({"family": "transformer", "dataset": "english", "batch_size": 8,
      "arch": {"layers": 1, "width": 30, "heads": 4, "seq": 16}}, "not divisible by heads 4"),
    ({"family": "vit", "dataset": "digits4", "batch_size": 8,
      "arch": {"patch": 8, "width": 16, "layers": 1, "heads": 1}}, "patch 8 is larger"),
])
def test_cross_field_constraints(spec, message):
    with pytest.raises(ValueError) as err:
        TaskSpec(**spec)
    assert message in str(err.value)


def test_spec_json_missing_or_extra_fields():
    data = dict(COMBOS["mlp-digits8"])
    del data["seed"]
    with pytest.raises(ValueError, match="missing field.s. seed; a spec has exactly the fields"):
        TaskSpec.from_json(json.dumps(data))
    with pytest.raises(ValueError, match="unknown field.s. colour"):
        TaskSpec.from_json(json.dumps({**dict(COMBOS["mlp-digits8"]), "colour": "red"}))
    with pytest.raises(ValueError, match="not valid JSON"):
        TaskSpec.from_json("{family: mlp")
    with pytest.raises(ValueError, match="must be a JSON object"):
        TaskSpec.from_json("[1, 2]")


def test_unknown_task_name():
    with pytest.raises(ValueError, match="unknown task 'nope'; choose one of: digits4_cnn"):
        tasks.get("nope")


# --- sampler ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(DISTRIBUTIONS))
def test_sampler_is_deterministic_and_respects_its_budget(name):
    keys = [jax.random.key(i) for i in range(200)]
    specs = [tasks.sample(k, name) for k in keys]
    assert specs == [tasks.sample(k, name) for k in keys]
    assert tasks.sample(jax.random.PRNGKey(5), name) == specs[5]
    assert len(set(specs)) > 100
    budget = get_distribution(name).flops_budget
    assert max(cost.flops_per_step(s) for s in specs) <= budget
    assert all(tasks.in_support(s, name) for s in specs)
    assert {s.family for s in specs} == set(families.FAMILIES)
    assert {s.reparam for s in specs} == {"none", "global", "tensor"}
    batch = [s.batch_size for s in specs if s.family != "quadratic"]
    assert set(batch) <= {8, 16, 32, 64, 128, 256, 512}


def test_sampled_tiny_tasks_build_and_run():
    for i in range(2):
        task = tasks.build(tasks.sample(jax.random.key(i), "tiny"))

        def first_loss(key, task=task):
            return task.loss(task.init(key), task.sample_batch(key), key)

        assert np.isfinite(float(_compiled(first_loss, jax.random.key(0))(jax.random.key(0))))


def test_unknown_distribution():
    with pytest.raises(ValueError, match="unknown task distribution 'huge'; choose one of: tiny"):
        tasks.sample(jax.random.key(0), "huge")


# --- suites -----------------------------------------------------------------------------------


def test_heldout_suite_is_named_covering_and_trainable_by_name():
    suite = tasks.heldout_suite()
    assert len(suite) >= 15
    assert len({t.name for t in suite}) == len(suite)
    assert set(t.name for t in suite) <= set(tasks.names())
    assert {t.spec.family for t in suite} == set(families.FAMILIES)
    assert {t.spec.dataset for t in suite} == set(datasets.builtin_names())
    assert {"vanilla", "lstm", "gru"} == {t.spec.arch_dict["cell"] for t in suite
                                         if t.spec.family == "rnn"}
    assert all(t.default_steps >= 100 for t in suite)
    assert tasks.get(suite[0].name) is suite[0]


def test_no_distribution_can_produce_a_heldout_task():
    for name, (spec, _) in HELDOUT.items():
        for dist in DISTRIBUTIONS:
            assert not tasks.in_support(spec, dist), (name, dist)


def test_several_heldout_tasks_lie_outside_every_sampler_range():
    """Beyond the largest grid value of any distribution, not just between grid points."""
    outside = set()
    for name, (spec, _) in HELDOUT.items():
        arch, batch_max = spec.arch_dict, max(max(d.batch_sizes) for d in DISTRIBUTIONS.values())
        if spec.family != "quadratic" and spec.batch_size > batch_max:
            outside.add(name)
        if max(spec.label_noise, spec.label_smoothing) > 0.2:
            outside.add(name)
        for key, value in arch.items():
            grid = [v for d in DISTRIBUTIONS.values() for v in d.arch[spec.family][key]]
            if isinstance(value, tuple):
                if len(value) > max(map(len, grid)):
                    outside.add(name)
            elif isinstance(value, int) and value > max(grid):
                outside.add(name)
    assert len(outside) >= 4, outside


def test_quick_suite():
    quick = tasks.quick_suite()
    assert 4 <= len(quick) <= 6
    assert [t.name for t in quick] == list(QUICK)
    assert all(t in tasks.heldout_suite() for t in quick)
    assert all(200 <= t.default_steps <= 500 for t in quick)
