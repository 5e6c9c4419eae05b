"""`velo stability`: verdicts on hand-made curves, a tiny end-to-end check, skipping, resuming."""

import json
import os
import shutil

import jax
import numpy as np
import pytest

import tasks
from velo import cli, lopt
from velo.evaluation import stability

TASK = "quadratic_ill"
HORIZON = 100  # longest meta-training horizon recorded in the test checkpoint


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny-preset checkpoint (the untrained initialisation) recording a meta-training horizon,
    as `velo meta-train export` does: the tests do not depend on which checkpoint is shipped."""
    config = lopt.preset("tiny")
    params = lopt.init_meta_params(jax.random.key(0), config)
    return lopt.save(str(tmp_path_factory.mktemp("checkpoint") / "exported"), params, config,
                     {"meta_train_config": {"horizon_max": HORIZON}})


@pytest.fixture(scope="module")
def args(exported):
    return ["stability", "--suite", TASK, "--checkpoint", exported, "--horizon-factor", "2",
            "--budget", "100", "--seeds", "2"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, args):
    """The output directory of a finished tiny check."""
    out = str(tmp_path_factory.mktemp("stability"))
    assert cli.main([*args, "--out", out]) == 0
    return out


def _curves(*rows):
    return np.asarray(rows, np.float64)


def test_flat_curve_is_stable():
    flat = np.full(300, 2.0) + 0.01 * np.sin(np.arange(300))
    m = stability.curve_metrics(_curves(flat, flat), budget=100)
    assert m["verdict"] == "stable" and m["finite"]
    assert m["final_ratio"] == pytest.approx(1.0, abs=0.01)
    assert m["first_loss"] == pytest.approx(2.0)
    assert m["diverged_at"] == [None, None]


def test_blowing_up_curve_is_unstable():
    rising = np.concatenate([np.full(100, 1.0), np.geomspace(1.0, 50.0, 200)])
    m = stability.curve_metrics(_curves(rising), budget=100)
    assert m["verdict"] == "unstable" and m["finite"]
    assert m["final_ratio"] > 30 and m["peak_ratio"] == pytest.approx(m["final_ratio"])


def test_transient_spike_shows_in_peak_but_recovers():
    curve = np.full(300, 1.0)
    curve[150:160] = 10.0
    m = stability.curve_metrics(_curves(curve), budget=100)
    assert m["verdict"] == "stable"
    assert m["peak_ratio"] > 3.0 and m["final_ratio"] < 1.01


def test_nan_seed_is_unstable_and_located():
    good = np.linspace(3.0, 1.0, 300)
    bad = good.copy()
    bad[250:] = np.nan
    m = stability.curve_metrics(_curves(good, bad), budget=100)
    assert m["verdict"] == "unstable" and not m["finite"]
    assert m["diverged_at"] == [None, 251]


def test_tiny_check_end_to_end(finished, exported):
    record = json.load(open(os.path.join(finished, stability.RECORD)))
    config = record["config"]
    assert config["learned_optimizer"].startswith(f"{exported} (sha256 ")
    assert (config["steps"], config["seeds"], config["budget"]) == (2 * HORIZON, 2, 100)
    assert record["longest_horizon"] == HORIZON
    entry = record["tasks"][TASK]
    assert entry["verdict"] == "stable" and entry["finite"]
    assert entry["final_loss"] < entry["loss_at_budget"] < entry["first_loss"]
    # Seed s starts as velo.train.train(seed=s) does: same init and first minibatch.
    task = tasks.get(TASK)
    first = []
    for seed in range(2):
        init_key, data_key = jax.random.split(jax.random.key(seed))
        batch_key, loss_key = jax.random.split(jax.random.fold_in(data_key, 0))
        first.append(task.loss(task.init(init_key), task.sample_batch(batch_key), loss_key))
    assert entry["first_loss"] == pytest.approx(float(np.mean(first)), rel=1e-5)
    report = open(os.path.join(finished, stability.REPORT)).read()
    assert f"--horizon-factor 2.0 --budget 100 --seeds 2 --max-seconds 300 --out {finished}`" in (
        report)
    assert "runs of 200 steps (2 x the longest meta-training horizon, 100)" in report
    assert f"| {TASK} | 100 | yes |" in report and "1 of 1 tasks stable, 0 skipped." in report


def test_resume_reuses_finished_task(finished, args, monkeypatch, capsys):
    def no_training(*args, **kwargs):
        raise AssertionError("a finished task was trained again")

    monkeypatch.setattr(stability, "train_seeds", no_training)
    assert cli.main([*args, "--out", finished]) == 0
    assert f"reused finished tasks from {finished}: {TASK}" in capsys.readouterr().out


def test_other_configuration_in_same_out_is_refused(finished, args, capsys):
    assert cli.main([*args[:-1], "3", "--out", finished]) == 2
    assert "seeds: 2 there, 3 now" in capsys.readouterr().err


def test_slow_task_is_skipped_and_listed(args, tmp_path, capsys):
    assert cli.main([*args, "--max-seconds", "1e-6", "--out", str(tmp_path)]) == 0
    entry = json.load(open(tmp_path / stability.RECORD))["tasks"][TASK]
    assert entry["skipped"].startswith("estimated") and "> --max-seconds 1e-06" in entry["skipped"]
    assert "verdict" not in entry
    assert f"- {TASK}: skipped, estimated" in capsys.readouterr().out
    # Retried once the limit allows it; kept while it does not.
    assert not stability._still_valid(entry, tasks.get(TASK), entry["seconds"] * 2)
    assert stability._still_valid(entry, tasks.get(TASK), entry["seconds"] / 2)


def test_run_not_past_the_budget_is_skipped(exported, tmp_path, capsys):
    argv = ["stability", "--suite", TASK, "--checkpoint", exported, "--steps", "300", "--out",
            str(tmp_path)]
    assert cli.main(argv) == 0
    assert "skipped, a 300-step run does not go past the budget of 300 steps" in (
        capsys.readouterr().out)


@pytest.mark.parametrize("lengths", [[], ["--steps", "200", "--horizon-factor", "10"]])
def test_exactly_one_of_steps_and_horizon_factor(lengths, tmp_path, capsys):
    argv = ["stability", "--suite", TASK, *lengths, "--out", str(tmp_path)]
    assert cli.main(argv) == 2
    assert "give exactly one of --steps N and --horizon-factor F" in capsys.readouterr().err


def test_horizon_factor_needs_a_recorded_horizon(exported, tmp_path, capsys):
    bare = str(tmp_path / "bare")  # the same weights, without the record of their meta-training
    shutil.copytree(exported, bare)
    record = json.load(open(os.path.join(bare, "config.json")))
    json.dump({**record, "metadata": {}}, open(os.path.join(bare, "config.json"), "w"))
    check = stability.Check(TASK, horizon_factor=2.5, checkpoint=exported)
    assert stability.resolve_steps(check) == (250, HORIZON)
    argv = ["stability", "--suite", TASK, "--horizon-factor", "10", "--checkpoint", bare,
            "--out", str(tmp_path / "out")]
    assert cli.main(argv) == 2
    assert "records no meta-training horizon" in capsys.readouterr().err
