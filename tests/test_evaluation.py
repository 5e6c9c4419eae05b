"""The evaluation: speed-up arithmetic, learning-rate selection, caching, outputs and bad input."""

import dataclasses
import json
import math
import shutil

import jax
import numpy as np
import optax
import pytest

import tasks
from velo import cli, lopt
from velo.evaluation import (
    Protocol,
    aggregate,
    curves,
    evaluate,
    iqm,
    learning_rates,
    metrics,
    monotone_envelope,
    select,
    speedup,
    steps_to_reach,
    sweep,
)
from velo.evaluation.sweep import Sweep
from velo.train import train

TASK = "digits_mlp"


def test_ema_is_bias_corrected_and_smooths():
    x = np.array([4.0, 2.0, 2.0])
    # m: 2.0, 3.0, 3.5 with decay 0.5; bias correction 0.5, 0.75, 0.875.
    np.testing.assert_allclose(curves.ema(x, 0.5), [4.0, 8 / 3, 16 / 7])
    np.testing.assert_allclose(curves.ema(x, 0.0), x)


def test_monotone_envelope_is_running_min_of_pointwise_min():
    runs = np.array([[5.0, 3.0, 4.0, 1.0], [4.0, np.nan, 3.5, 2.0]])
    np.testing.assert_allclose(monotone_envelope(runs), [4.0, 3.0, 3.0, 1.0])


def test_steps_to_reach_interpolates_linearly():
    env = np.array([5.0, 4.0, 2.0, 2.0, 1.0])  # steps 1..5
    assert steps_to_reach(env, 3.0) == pytest.approx(2.5)
    assert steps_to_reach(env, 2.0) == pytest.approx(3.0)  # first reached at step 3
    assert steps_to_reach(env, 1.5) == pytest.approx(4.5)
    assert steps_to_reach(env, 9.0) == 1.0
    assert steps_to_reach(env, 0.5) is None
    assert steps_to_reach(env, float("nan")) is None


def test_speedup_on_synthetic_adam_curves():
    # Two learning rates over a horizon of 8 steps: the envelope is min of both, made monotone.
    fast = np.array([8.0, 4.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0])
    slow = np.array([9.0, 8.0, 6.0, 4.0, 2.5, 2.0, 1.0, 0.5])
    env = monotone_envelope(np.stack([fast, slow]))
    np.testing.assert_allclose(env, [8.0, 4.0, 3.0, 3.0, 2.5, 2.0, 1.0, 0.5])
    # Budget 4: loss 3.0 takes Adam 3 steps; loss 1.5 takes 6.5 steps; loss 0.1 never.
    assert speedup(env, 3.0, 4) == (0.75, False)
    assert speedup(env, 1.5, 4) == (pytest.approx(6.5 / 4), False)
    assert speedup(env, 0.1, 4) == (2.0, True)  # censored at horizon / budget
    assert speedup(env, float("inf"), 4) == (0.0, False)


def test_select_prefers_lowest_finite_loss_and_skips_diverged():
    loss = np.array([0.5, 0.2, 0.1, np.nan])
    assert select(loss, np.array([False, False, False, True])) == 2
    assert select(loss, np.array([False, False, True, True])) == 1
    assert select(np.array([3.0, 1.0, 2.0]), np.array([True, True, True])) == 1


def test_metrics_choose_best_learning_rate_by_smoothed_final_loss():
    t = np.arange(200, dtype=np.float32)
    good = 1.0 / (1 + 0.05 * t)
    # Rate 2 ends lowest but exploded on the way (a diverged run is never chosen); rate 0 is worse.
    spike = np.where((t > 100) & (t < 120), 1e3, good * 0.3)
    losses = np.stack([good + 0.3, good, spike])[:, None, :].astype(np.float32)
    s = Sweep([1e-4, 1e-3, 1e-2], losses, {}, None, 1e-6, 0.0)
    chosen = metrics.choose(s, 200, 0.95)
    assert chosen.index == 1 and not chosen.diverged
    result = metrics.task_metrics({"adam": s}, 200, 0.95)["adam"]
    assert result.learning_rate == 1e-3 and not result.lr_at_edge
    # The envelope keeps the exploded run's good prefix: Adam did reach those losses early.
    assert result.speedup < 0.5


def test_learning_rate_grid_is_log_spaced_around_default():
    grid = learning_rates("adam", Protocol(TASK, ("adam",), grid_size=7))
    assert len(grid) == 7 and grid[3] == pytest.approx(1e-3)
    np.testing.assert_allclose(np.diff(np.log10(grid)), 0.5)
    assert learning_rates("salsa", Protocol(TASK, ("salsa",))) is None
    assert learning_rates("prodigy", Protocol(TASK, ("prodigy",))) is None


def test_iqm_and_ranks():
    assert iqm([1, 2, 3, 4, 5, 6, 7, 100]) == pytest.approx(4.5)
    assert iqm([2.0, 4.0]) == 3.0
    m = {n: metrics.TaskMetrics(None, False, loss, {}, 1.0, False, None, False, div, 1.0, None)
         for n, loss, div in [("a", 0.1, False), ("b", 0.1, False), ("c", 0.05, True)]}
    assert aggregate.ranks(m) == {"a": 1.5, "b": 1.5, "c": 3.0}


def _sweep(rates, *curves):
    """A one-seed `Sweep` from one loss curve per learning rate."""
    return Sweep(rates, np.array(curves, np.float32)[:, None, :], {}, None, 1e-6, 0.0)


def test_quality_targets_against_default_and_tuned_adam():
    budget, t = 100, np.arange(100)
    flat = lambda *values: [np.full(100, v) for v in values]  # noqa: E731
    # The default 1e-3 is not the middle of this grid; after the budget its run drops to 0.1,
    # which must not count (Adam runs 2x the budget).
    grid = [3e-4, 1e-3, 3e-3, 1e-2]
    late_drop = np.full(200, 0.1)
    step_down = np.where(t < 50, 1.0, 0.2)  # smoothed: ~0.26 at the budget, 0.3 at step ~91
    spiked = np.where(t == 2, 50.0, 0.2)  # explodes at step 3, back to ~0.22 at the budget

    def adam(*finals):
        return _sweep(grid, *[np.concatenate([np.full(100, v), late_drop[100:]]) for v in finals])

    tasks_ = {  # tuned Adam ends at 0.3 (3e-3) on t1, at its default 0.2 on t2
        "t1": {"adam": adam(0.8, 0.5, 0.3, 0.9), "x": _sweep(None, *flat(0.45)),
               "y": _sweep(None, step_down), "z": _sweep(None, spiked)},
        "t2": {"adam": adam(0.8, 0.2, 0.3, 0.9), "x": _sweep(None, *flat(0.15)),
               "y": _sweep(None, step_down), "z": _sweep(None, spiked)},
    }
    m = {task: metrics.task_metrics(s, budget, 0.95) for task, s in tasks_.items()}
    beats = {task: {n: r.beats_default_adam for n, r in ms.items()} for task, ms in m.items()}
    assert beats == {"t1": {"adam": True, "x": True, "y": True, "z": False},
                     "t2": {"adam": False, "x": True, "y": False, "z": False}}
    assert m["t1"]["z"].final_loss < 0.5 and m["t1"]["z"].diverged  # lower, but diverged
    assert 85 < m["t1"]["y"].steps_to_adam < 95 and metrics.reaches_adam(m["t1"]["y"])
    assert m["t1"]["z"].steps_to_adam == 1.0 and not metrics.reaches_adam(m["t1"]["z"])
    assert m["t1"]["x"].steps_to_adam is None and m["t2"]["y"].steps_to_adam is None
    summary = aggregate.summarize(m, {t: metrics.resampled_metrics(s, budget, 0.95)
                                      for t, s in tasks_.items()})
    rates = {n: (s.beats_default_adam_rate, s.reaches_adam_rate) for n, s in summary.items()}
    assert rates == {"adam": (0.5, None), "x": (1.0, 0.5), "y": (0.5, 0.5), "z": (0.0, 0.0)}
    with pytest.raises(ValueError, match="lacks its default 0.001"):
        metrics.task_metrics({"adam": _sweep([3e-4, 3e-3], *flat(0.5, 0.3))}, budget, 0.95)


def test_sweep_runs_match_single_training_runs():
    """The vmapped grid x seeds program gives the same curves as `velo.train.train`."""
    task = tasks.get(TASK)
    s = sweep.run(task, "adam", [1e-3, 3e-3], seeds=2, budget=40, horizon=80)
    assert s.losses.shape == (2, 2, 80) and s.test["accuracy"].shape == (2, 2)
    single = train(task, optax.adam(3e-3), 40, seed=1)
    np.testing.assert_allclose(s.losses[1, 1, :40], single.losses, rtol=2e-5)
    assert s.test["accuracy"][1, 1] == pytest.approx(single.test["accuracy"], abs=1e-6)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    config = lopt.preset("tiny")
    path = str(tmp_path_factory.mktemp("ckpt") / "tiny")
    return lopt.save(path, lopt.init_meta_params(jax.random.key(0), config), config)


@pytest.fixture(scope="module")
def protocol(checkpoint):
    return Protocol(TASK, ("adam", "salsa", "velo"), steps=100, seeds=2, grid_size=7,
                    checkpoint=checkpoint)


@pytest.fixture(scope="module")
def evaluated(protocol, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    return evaluate(protocol, str(out)), out


def test_evaluate_writes_every_output(evaluated, protocol):
    result, out = evaluated
    record = json.loads((out / "results.json").read_text())
    assert record["config"] == {"steps": 100, "seeds": 2, "grid_size": 7,
                                "grid_ratio": math.sqrt(10.0), "ema_decay": 0.95,
                                "reference_factor": 2}
    assert record["protocol"]["optimizers"] == ["adam", "salsa", "velo"]
    sweeps = record["tasks"][TASK]["sweeps"]
    learned = sweeps["velo"]["identity"]
    assert learned.startswith(record["protocol"]["checkpoint"]) and "sha256" in learned
    assert sweeps["salsa"]["identity"] == "salsa untuned"
    grid = learning_rates("adam", protocol)
    assert sweeps["adam"]["identity"] == f"adam at learning rates {grid}" and 1e-3 in grid
    assert np.array(sweeps["adam"]["losses"]).shape == (7, 2, 200)  # reference: 2x the budget
    assert np.array(sweeps["salsa"]["losses"]).shape == (1, 2, 100)
    for png in ("loss_curves.png", "speedup.png", "speedup_families.png"):
        assert (out / png).stat().st_size > 5000
    rows = (out / "summary.csv").read_text().splitlines()
    assert rows[0].startswith("task,optimizer,family,learning_rate") and len(rows) == 7
    assert ",beats_default_adam," in rows[0] and ",reaches_adam," in rows[0]
    assert [r.split(",")[:3] for r in rows[1:]] == [
        [TASK, "adam", "mlp"], [TASK, "salsa", "mlp"], [TASK, "velo", "mlp"],
        ["ALL", "adam", ""], ["ALL", "salsa", ""], ["ALL", "velo", ""]]
    report = (out / "report.md").read_text()
    assert "adamw_cosine was not run, so there is no second reference" in report
    assert "| salsa |" in report and "| velo |" in report and "loss_curves.png" in report
    assert "| beats Adam 1e-3 | reaches Adam |" in report and "| beats Adam 1e-3 |" in report
    assert f"Learned optimizer: {learned}" in report
    m = result.metrics[TASK]
    assert m["velo"].learning_rate is None and np.isfinite(m["velo"].final_loss)
    assert m["adam"].speedup == pytest.approx(1.0, abs=0.02) and m["adam"].learning_rate
    assert m["salsa"].forward_passes_per_step > 1.0 and m["salsa"].learning_rate is None
    assert 0.0 < m["adam"].test["accuracy"] <= 1.0
    assert result.summary["salsa"].tasks == 1 and result.summary["adam"].win_rate is None


def test_rerun_reuses_finished_sweeps(evaluated, protocol, monkeypatch):
    _, out = evaluated
    before = (out / "results.json").read_text()

    def no_runs(*args, **kwargs):
        raise AssertionError("a finished sweep was run again")

    monkeypatch.setattr(sweep, "run", no_runs)
    again = evaluate(protocol, str(out))
    assert again.reused == [(TASK, "adam"), (TASK, "salsa"), (TASK, "velo")] and again.ran == []
    after = json.loads((out / "results.json").read_text())
    assert json.loads(before)["metrics"] == after["metrics"]


@pytest.fixture
def copy_of(evaluated, tmp_path, monkeypatch):
    """A copy of the evaluated directory, and the ``(task, optimizer, checkpoint)`` of every
    sweep run in it (by a stand-in for `sweep.run` returning flat curves)."""
    shutil.copytree(evaluated[1], tmp_path / "o")
    ran = []

    def fake_run(task, name, rates, seeds, budget, horizon, *, checkpoint, **kwargs):
        ran.append((task.name, name, checkpoint))
        return Sweep(rates, np.full((len(rates or [0]), seeds, horizon), 2.0, np.float32), {},
                     None, 1e-6, 0.0)

    monkeypatch.setattr(sweep, "run", fake_run)
    return str(tmp_path / "o"), ran


def test_added_optimizer_runs_only_its_sweeps(copy_of, protocol):
    """Adding the second reference runs only its sweep, cached under its grid; the report gets
    its columns and names the stronger baseline."""
    out, ran = copy_of
    more = dataclasses.replace(protocol, optimizers=(*protocol.optimizers, "adamw_cosine"))
    result = evaluate(more, out)
    assert ran == [(TASK, "adamw_cosine", None)] and result.ran == [(TASK, "adamw_cosine")]
    assert result.reused == [(TASK, "adam"), (TASK, "salsa"), (TASK, "velo")]
    assert list(result.metrics[TASK]) == ["adam", "salsa", "velo", "adamw_cosine"]
    sweeps = json.loads(open(result.files["results"]).read())["tasks"][TASK]["sweeps"]
    grid = learning_rates("adamw_cosine", protocol)
    assert sweeps["adamw_cosine"]["identity"] == f"adamw_cosine at learning rates {grid}"
    report = open(result.files["report"]).read()
    assert f"| {TASK} | mlp | {result.metrics[TASK]['adam'].final_loss:.4g} | 2 | adam |" in report
    assert "| velo | 100% [100%, 100%] |" in report.split("against tuned adamw_cosine")[1]
    assert result.metrics[TASK]["velo"].cosine_speedup_censored  # flat 2.0: velo got lower
    # Back to the first optimizers: nothing runs, the report drops it, the record keeps it.
    fewer = evaluate(protocol, out)
    assert len(ran) == 1 and list(fewer.metrics[TASK]) == ["adam", "salsa", "velo"]
    report = open(fewer.files["report"]).read()
    assert "| adamw_cosine |" not in report and "adamw_cosine was not run" in report
    assert "adamw_cosine" in json.loads(open(fewer.files["results"]).read())["tasks"][TASK][
        "sweeps"]


def test_set_hyperparameters_are_part_of_the_identity(copy_of):
    out, ran = copy_of
    argv = ["eval", "--suite", TASK, "--optimizers", "adam,adamw_cosine", "--steps", "100",
            "--seeds", "2", "--grid-size", "7", "--out", out]
    assert cli.main([*argv, "--set", "adamw_cosine.weight_decay=0.1"]) == 0
    sweeps = json.loads(open(f"{out}/results.json").read())["tasks"][TASK]["sweeps"]
    assert sweeps["adamw_cosine"]["identity"].endswith(" with weight_decay=0.1")
    assert cli.main(argv) == 0  # back to the default decay: its sweep runs again, Adam's not
    assert ran == [(TASK, "adamw_cosine", None)] * 2


def test_untrained_initialisation_by_name(copy_of, protocol):
    """``--checkpoint init:PRESET`` runs a preset's initial meta-parameters, under their own
    identity, against the stored baselines."""
    out, ran = copy_of
    argv = ["eval", "--suite", TASK, "--optimizers", "adam,salsa,velo", "--steps", "100",
            "--seeds", "2", "--grid-size", "7", "--checkpoint", "init:tiny", "--out", out]
    assert cli.main(argv) == 0 and ran == [(TASK, "velo", "init:tiny")]
    record = json.loads(open(f"{out}/results.json").read())
    assert record["tasks"][TASK]["sweeps"]["velo"]["identity"] == lopt.identity("init:tiny")
    assert "Learned optimizer: init:tiny (sha256" in open(f"{out}/report.md").read()


def test_other_learned_optimizer_reruns_only_velo(copy_of, protocol, tmp_path):
    out, ran = copy_of
    config = lopt.preset("tiny")  # same path name, other weights: another identity
    other = lopt.save(str(tmp_path / "tiny"), lopt.init_meta_params(jax.random.key(1), config),
                      config)
    result = evaluate(dataclasses.replace(protocol, checkpoint=other), out)
    assert ran == [(TASK, "velo", other)] and result.ran == [(TASK, "velo")]
    assert result.reused == [(TASK, "adam"), (TASK, "salsa")]
    assert result.metrics[TASK]["velo"].final_loss == pytest.approx(2.0)


def test_directory_of_another_configuration_is_refused(evaluated, protocol, tmp_path):
    _, out = evaluated
    before = (out / "results.json").read_bytes()
    longer = dataclasses.replace(protocol, steps=120)
    with pytest.raises(ValueError, match="different configuration.*steps: 100 there, 120 now"):
        evaluate(longer, str(out))
    assert (out / "results.json").read_bytes() == before
    old = json.loads(before)
    (tmp_path / "results.json").write_text(json.dumps({**old, "format": 1}))
    with pytest.raises(ValueError, match="results format 1.*delete .*results.json to re-run"):
        evaluate(protocol, str(tmp_path))


def test_cli_prints_tables_and_paths(evaluated, checkpoint, capsys):
    _, out = evaluated  # same protocol as the fixture: nothing is re-run
    argv = ["eval", "--suite", TASK, "--optimizers", "adam,salsa,velo", "--steps", "100",
            "--seeds", "2", "--grid-size", "7", "--checkpoint", checkpoint, "--out", str(out)]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert f"reused from {out}: adam, salsa, velo on {TASK}; ran: nothing" in printed
    assert "| salsa |" in printed and str(out / "loss_curves.png") in printed


@pytest.mark.parametrize("argv, message", [
    (["--suite", "nope", "--optimizers", "adam"], "unknown suite 'nope'"),
    (["--suite", TASK, "--optimizers", "adam,nope"], "unknown optimizer 'nope'"),
    (["--suite", TASK, "--optimizers", "adam", "--steps", "50"], "too small for the EMA"),
    (["--suite", TASK, "--optimizers", "adam", "--grid-size", "5"], "grid_size must be >= 7"),
    (["--suite", TASK, "--optimizers", "adam", "--checkpoint", "x"], "add 'velo'"),
    (["--suite", TASK, "--optimizers", "velo", "--checkpoint", "/nonexistent/ckpt"],
     "no checkpoint directory"),
    (["--suite", TASK, "--optimizers", "velo", "--checkpoint", "init:nope"],
     "unknown preset 'nope'"),
    (["--suite", TASK, "--optimizers", "adamw_cosine", "--set", "weight_decay=0.1"],
     "expected OPTIMIZER.KEY=VALUE"),
    (["--suite", TASK, "--optimizers", "adam", "--set", "lion.weight_decay=0.1"],
     "'lion' is not among --optimizers"),
    (["--suite", TASK, "--optimizers", "adamw_cosine", "--set", "adamw_cosine.learning_rate=1"],
     "tuned over the grid"),
    (["--suite", TASK, "--optimizers", "adamw_cosine", "--set", "adamw_cosine.nope=1"],
     "unknown hyperparameter(s) nope"),
])
def test_bad_input_is_a_clear_error(argv, message, tmp_path, capsys):
    assert cli.main(["eval", *argv, "--out", str(tmp_path / "o")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o" / "results.json").exists()


def test_default_grid_meets_protocol():
    p = Protocol("quick", ("velo", "lion"))
    assert p.optimizers == ("adam", "velo", "lion")  # the speed-up reference is always run
    assert p.grid_size >= 7 and math.isclose(p.grid_ratio**2, 10.0)
