"""Meta-training: improvement, exact resume, 1 vs 8 devices, divergence, config checks, export.

Compiles are the cost here, so tests share them: one test-sized config on one tiny task (the
learned optimizer's programs compile once per mesh), and the one-parameter Adam learner for the
device and divergence tests.
"""

import dataclasses
import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from meta_train import config as config_lib
from meta_train.es import shape_fitness
from meta_train.export import export
from meta_train.learner import adam_learner
from meta_train.log import read as read_log
from meta_train.loop import meta_train
from tasks import Task
from velo import cli, overrides
from velo.lopt.transform import STATE_LAYOUT

# Test-sized `tiny`: one task of the tiny distribution, one horizon, one chunk per run. Seed 36
# draws a 32-dimensional quadratic: one tensor, the learned optimizer's cheapest compile.
SMALL = dataclasses.replace(
    config_lib.preset("tiny"), seed=36, population=8, tasks_per_generation=1, task_pool=1,
    horizon_min=25, horizon_max=25, horizon_buckets=1, chunk=25, sigma=0.05,
    learning_rate=0.01, generations=20, validate_every=20, validation_steps=25,
    checkpoint_every=1, keep_checkpoints=3,
)


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def _pool_task(config):
    from meta_train.sampler import task_pool

    return task_pool(config, 0)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("meta") / "tiny")
    result = meta_train(SMALL, out, validation=_pool_task(SMALL))
    return out, result


def test_tiny_improves_validation(tiny_run):
    out, result = tiny_run
    val = [r for r in result.records if "validation" in r]
    assert [r["generation"] for r in val] == [0, 20]
    assert val[-1]["validation"]["mean"] < val[0]["validation"]["mean"]
    train = [r for r in result.records if "meta_loss" in r]
    assert len(train) == 20 and all(np.isfinite(r["meta_loss"]) for r in train)
    assert train[0]["compile_s"] > 0 and train[-1]["compile_s"] == 0  # compiled once, reused
    for key in ("family_loss", "sigma", "update_norm", "generation_s", "model_steps_per_s"):
        assert key in train[-1]
    lines = open(os.path.join(out, "log.jsonl")).read().splitlines()
    assert len(lines) == 21
    assert cli.main(["meta-train", "plot", out]) == 0
    assert os.path.getsize(os.path.join(out, "meta_train.png")) > 10_000


def test_summary_reads_the_log(tiny_run, capsys):
    out, result = tiny_run
    assert cli.main(["meta-train", "summary", out]) == 0
    text = capsys.readouterr().out
    val = [r["validation"]["mean"] for r in result.records if "validation" in r]
    assert "generations 1-20" in text
    assert f"validation meta-loss: {val[0]:.4f} (generation 0), best {min(val):.4f}" in text
    steps = sum(r["model_steps_per_s"] * (r["generation_s"] - r["compile_s"])
                for r in result.records if "meta_loss" in r)
    assert f"{steps:.3g} inner model steps" in text


@pytest.mark.parametrize("estimator", ["open_es", "pes"])
def test_resume_equals_uninterrupted(tmp_path, estimator):
    config = dataclasses.replace(SMALL, estimator=estimator, generations=6, validate_every=0,
                                 horizon_min=50, horizon_max=50)
    whole = meta_train(config, str(tmp_path / "whole"))
    first = meta_train(dataclasses.replace(config, generations=3), str(tmp_path / "split"))
    assert first.generation == 3
    second = meta_train(config, str(tmp_path / "split"), resume=True)
    assert second.generation == 6
    for a, b in zip(_leaves(whole.meta_params), _leaves(second.meta_params), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(_leaves(first.meta_params)[0], _leaves(second.meta_params)[0])
    logs = [[(r["generation"], r["meta_loss"]) for r in read_log(str(tmp_path / d))]
            for d in ("whole", "split")]
    assert logs[0] == logs[1] and len(logs[0]) == 6


def test_resume_past_an_optimizer_state_layout_change(tmp_path):
    """A checkpoint whose truncated-ES inner states have another `STATE_LAYOUT` (here: written
    before the layout was recorded) resumes from its ES state with a fresh trajectory and a
    warning; it is not set aside as corrupt."""
    config = dataclasses.replace(SMALL, estimator="pes", generations=2, validate_every=0,
                                 horizon_min=100, horizon_max=100)
    out = str(tmp_path / "run")
    first = meta_train(config, out)
    path = os.path.join(out, "checkpoints", "2", "meta", "metadata")
    with open(path) as f:
        meta = json.load(f)
    assert meta["trajectory_start"] == 0 and meta.pop("inner_layout") == STATE_LAYOUT
    with open(path, "w") as f:
        json.dump(meta, f)
    with pytest.warns(UserWarning, match="state layout 1, which this velo"):
        resumed = meta_train(dataclasses.replace(config, generations=3), out, resume=True)
    assert resumed.generation == 3 and resumed.records[0]["generation"] == 3
    assert not any(d.endswith(".corrupt") for d in os.listdir(os.path.join(out, "checkpoints")))
    assert not np.array_equal(_leaves(first.meta_params)[0], _leaves(resumed.meta_params)[0])


def test_one_and_eight_devices_agree(tmp_path):
    config = dataclasses.replace(SMALL, generations=4, validate_every=0, sigma=0.5,
                                 learning_rate=0.1)
    learner = adam_learner(1e-3)
    one = meta_train(config, str(tmp_path / "one"), num_devices=1, learner=learner)
    eight = meta_train(config, str(tmp_path / "eight"), num_devices=8, learner=learner)
    a, b = one.meta_params["log_lr"], eight.meta_params["log_lr"]
    assert a != pytest.approx(np.log(1e-3), abs=1e-3)  # it moved
    np.testing.assert_allclose(a, b, rtol=1e-5)


def _exploding_task(name: str = "exploding", start: float = 1.0) -> Task:
    """``sum(cosh(w))`` from ``w = start``: once ``|w|`` passes ~90 it overflows to inf (from 1,
    an Adam step of more than ~90 does it)."""

    def loss(params, batch, key):
        del batch, key
        return jnp.sum(jnp.cosh(params["w"]))

    return Task(name, {"family": "exploding"}, lambda key: {"w": jnp.full(4, start)}, loss,
                lambda key: None, normalizer=float(4 * np.cosh(1.0)))


def test_diverging_task_does_not_poison_update(tmp_path):
    from velo.tensorboard import read_scalars

    task, overflowing = _exploding_task(), _exploding_task("overflowing", start=100.0)
    config = dataclasses.replace(SMALL, generations=3, validate_every=3, sigma=1.0,
                                 learning_rate=0.3, population=16, families=())
    out = str(tmp_path / "div")
    # Every member diverges on `overflowing` from the first step: its loss is inf.
    result = meta_train(config, out, learner=adam_learner(60.0), validation=[task, overflowing],
                        task_source=lambda config, key, generation: [task, overflowing],
                        tensorboard=str(tmp_path / "tb"))
    train = [r for r in result.records if "meta_loss" in r]
    assert train[0]["nonfinite_fraction"] > 0.5  # all of one task, some of the other...
    assert np.isfinite(result.meta_params["log_lr"])  # ...and the mean stays finite,
    assert result.meta_params["log_lr"] < np.log(60.0)  # moving away from them
    # A diverged validation task is logged as null, and so is the mean: never the best.
    for record in (result.records[0], result.records[-1]):
        validation = record["validation"]
        assert validation["overflowing"] is None and validation["diverged"] == ["overflowing"]
        assert np.isfinite(validation["exploding"]) and validation["mean"] is None
    # So are the infinite meta-loss and family loss, and the record counts them.
    assert train[0]["meta_loss"] is None and train[0]["family_loss"] == {"exploding": None}
    assert train[0]["nonfinite_values"] == 2

    def reject(token):
        raise AssertionError(f"non-standard JSON {token} in log.jsonl")

    logged = [json.loads(line, parse_constant=reject) for line in open(f"{out}/log.jsonl")]
    assert logged == result.records
    with pytest.raises(ValueError, match="no checkpoint .* has a validation score"):
        export(out, str(tmp_path / "exported"), "best")
    scalars = read_scalars(str(tmp_path / "tb"))
    assert [step for step, _ in scalars["es/sigma"]] == [1, 2, 3]
    assert [v for _, v in scalars["es/update_norm"]] == pytest.approx(
        [r["update_norm"] for r in train])
    assert [step for step, _ in scalars["validation/exploding"]] == [0, 3]
    for tag in ("throughput/model_steps_per_s", "meta_loss/nonfinite_fraction"):
        assert len(scalars[tag]) == 3
    assert "meta_loss/all" not in scalars  # null every generation: nothing to draw


def test_shape_fitness_ranks_nonfinite_worst():
    config = dataclasses.replace(SMALL, population=4)

    def shape(rows, **changes):
        return np.asarray(shape_fitness(jnp.array(rows), dataclasses.replace(config, **changes),
                                        None))

    # Centred ranks in [-1/2, 1/2]; nan, inf and -inf tie as the worst.
    np.testing.assert_allclose(shape([[1.0, jnp.nan, 0.5, -jnp.inf]]),
                               [-1 / 6, 1 / 3, -1 / 2, 1 / 3], atol=1e-6)
    # A task where every member failed contributes zero; the others are averaged.
    np.testing.assert_allclose(shape([[1.0, 2.0, 3.0, 4.0], [jnp.nan] * 4]),
                               np.array([-1 / 2, -1 / 6, 1 / 6, 1 / 2]) / 2, atol=1e-6)
    # Antithetic sign: members [+e1, +e2, -e1, -e2]; a failed twin loses its pair.
    np.testing.assert_allclose(shape([[1.0, jnp.inf, 2.0, 0.5]], shaping="sign"),
                               [-0.5, 0.5, 0.5, -0.5])
    np.testing.assert_allclose(shape([[jnp.nan, 1.0, jnp.nan, 1.0]], shaping="sign"), 0.0)


@pytest.mark.parametrize("changes, message", [
    ({"population": 7}, "even"),
    ({"popsize": 8}, "unknown config key"),
    ({"sigma": "big"}, "bad value"),
    ({"sigma": -1.0}, "sigma"),
    ({"estimator": "cma"}, "unknown estimator"),
    ({"estimator": "snes", "shaping": "sign"}, "antithetic"),
    ({"horizon_min": 100, "horizon_max": 50}, "horizon_max"),
])
def test_config_overrides_are_validated(changes, message):
    with pytest.raises(ValueError, match=message):
        overrides.apply(config_lib.preset("tiny"), changes)


def test_presets_build():
    assert config_lib.preset("small").population % 2 == 0
    assert config_lib.preset("velo").horizons[-1] >= 10_000
    with pytest.raises(ValueError, match="unknown preset"):
        config_lib.preset("huge")


@pytest.mark.parametrize("action", [[], ["run"]])  # the spelling without an action means run
def test_cli_bad_input_exits_2(tmp_path, capsys, action):
    out = str(tmp_path / "x")
    argv = ["meta-train", *action, "--preset", "tiny", "--out", out]
    assert cli.main([*argv, "--set", "population=7"]) == 2
    assert "even" in capsys.readouterr().err
    assert cli.main([*argv, "--set", "nope=1"]) == 2
    assert "unknown config key" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        cli.main(["meta-train", *action, "--preset", "huge", "--out", out])
    assert exit_.value.code == 2
    assert not os.path.exists(out)


@pytest.mark.parametrize("argv, message", [
    (["plot", "RUN", "--preset", "tiny"], "unrecognized arguments: --preset tiny"),
    (["export", "RUN", "--out", "x", "--resume"], "unrecognized arguments: --resume"),
    (["plot", "RUN", "--set", "sigma=1"], "unrecognized arguments: --set sigma=1"),
    (["--preset", "tiny", "--out", "RUN", "--step", "best"], "unrecognized arguments: --step"),
    (["run", "--preset", "tiny", "--out", "RUN", "RUN2"], "unrecognized arguments: RUN2"),
    (["summary"], "the following arguments are required: run_dir"),
    (["export", "RUN"], "the following arguments are required: --out"),
])
def test_cli_rejects_flags_of_another_action(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:  # argparse, before reading RUN or compiling
        cli.main(["meta-train", *argv])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def _snapshot(directory):
    return {os.path.relpath(os.path.join(d, f), directory): os.path.getsize(os.path.join(d, f))
            for d, _, files in os.walk(directory) for f in files}


def test_failed_starts_leave_checkpoints_alone(tiny_run, tmp_path):
    out = str(tmp_path / "copy")
    shutil.copytree(tiny_run[0], out)
    before = _snapshot(out)
    validation = _pool_task(SMALL)
    with pytest.raises(ValueError, match="--resume"):  # not resuming into an existing run
        meta_train(SMALL, out, validation=validation)
    with pytest.raises(ValueError, match="another config"):  # resuming with another config
        meta_train(dataclasses.replace(SMALL, sigma=0.1), out, resume=True,
                   validation=validation)
    assert _snapshot(out) == before


def _damage(step_dir, how):
    """Truncate every file under ``step_dir``/state to half its size, or overwrite meta."""
    if how == "truncate":
        for d, _, files in os.walk(os.path.join(step_dir, "state")):
            for name in files:
                path = os.path.join(d, name)
                os.truncate(path, os.path.getsize(path) // 2)
    else:
        for name in os.listdir(os.path.join(step_dir, "meta")):
            with open(os.path.join(step_dir, "meta", name), "wb") as f:
                f.write(b"garbage")


def test_resume_falls_back_past_damaged_checkpoints(tiny_run, tmp_path):
    out = str(tmp_path / "copy")
    shutil.copytree(tiny_run[0], out)
    root = os.path.join(out, "checkpoints")
    assert sorted(int(d) for d in os.listdir(root)) == [18, 19, 20]
    _damage(os.path.join(root, "20"), "truncate")
    _damage(os.path.join(root, "19"), "garbage")
    with pytest.warns(UserWarning, match="cannot restore checkpoint") as warned:
        result = meta_train(SMALL, out, resume=True, validation=_pool_task(SMALL))
    assert [str(w.message).split()[3] for w in warned] == ["20", "19"]
    assert result.records[0]["generation"] == 19  # resumed from 18
    for a, b in zip(_leaves(tiny_run[1].meta_params), _leaves(result.meta_params), strict=True):
        np.testing.assert_array_equal(a, b)
    assert sorted(os.listdir(root)) == ["18", "19", "19.corrupt", "20", "20.corrupt"]
    for step in ("18", "19", "20"):
        _damage(os.path.join(root, step), "garbage")
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="no readable checkpoint"):
        meta_train(SMALL, out, resume=True, validation=_pool_task(SMALL))


def test_export_loads_as_learned_optimizer(tiny_run, tmp_path):
    from velo import lopt, optax_lopt

    out, result = tiny_run
    path = str(tmp_path / "exported")
    assert cli.main(["meta-train", "export", out, "--out", path, "--step", "best"]) == 0
    meta_params, config, metadata = lopt.load(path)
    assert config == lopt.preset(SMALL.lopt)
    assert metadata["generation"] == 20
    for a, b in zip(_leaves(meta_params), _leaves(result.meta_params), strict=True):
        np.testing.assert_array_equal(a, b)
    optax_lopt(100, checkpoint=path).init({"w": jnp.ones((3, 2))})
    with pytest.raises(ValueError, match="already exists"):
        export(out, path)
    assert json.load(open(os.path.join(path, "config.json")))["metadata"]["run_dir"] == out


def test_task_pool_refreshes_one_slot_at_a_time():
    from meta_train.sampler import task_pool

    config = dataclasses.replace(SMALL, task_pool=3, pool_refresh=5)
    pools = [task_pool(config, g) for g in (0, 4, 5, 10, 15, 20)]
    assert pools[0] == pools[1]  # no refresh before generation 5
    changed = [[a is not b for a, b in zip(p, q, strict=True)]
               for p, q in zip(pools[:-1], pools[1:], strict=True)]
    assert changed[1:] == [[True, False, False], [False, True, False], [False, False, True],
                           [True, False, False]]
