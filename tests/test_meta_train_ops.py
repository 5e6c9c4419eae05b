"""Meta-training operations: signals, hard kills, a full disk, two processes, TensorBoard.

Subprocesses run the real command line (`velo meta-train`) on the test-sized config of
test_meta_train; the reference runs happen in this process, where the programs they need are
usually compiled already by test_meta_train. The subprocesses of one test share a run directory,
so its persistent compilation cache (``OUT/xla_cache``) spares the later ones compiling.
"""

import dataclasses
import json
import logging
import os
import random
import resource
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from test_meta_train import SMALL, _leaves

from meta_train import config as config_lib
from meta_train import sampler, store
from meta_train.learner import lopt_learner
from meta_train.log import read as read_log
from meta_train.loop import meta_train
from meta_train.stop import Stopped
from velo.tensorboard import read_scalars

VELO = [sys.executable, "-m", "velo.cli"]


def _argv(config) -> list[str]:
    """`velo meta-train` flags for ``config``: the tiny preset and ``--set`` overrides."""
    tiny = dataclasses.asdict(config_lib.preset("tiny"))
    changed = {k: v for k, v in dataclasses.asdict(config).items() if v != tiny[k]}
    assert "families" not in changed
    return ["--preset", "tiny", "--set", *(f"{k}={v}" for k, v in changed.items())]


def _mean(run_dir: str, step: int) -> list[np.ndarray]:
    """The mean meta-parameters in checkpoint ``step`` of ``run_dir``."""
    learner = lopt_learner(SMALL.lopt)
    manager = store.open_readonly(run_dir)
    try:
        return _leaves(store.restore_mean(manager, step,
                                          jax.eval_shape(learner.init, jax.random.key(0))))
    finally:
        manager.close()


def _strict(path: str) -> list[dict]:
    def reject(token):
        raise AssertionError(f"non-standard JSON {token} in {path}")

    with open(path) as f:
        return [json.loads(line, parse_constant=reject) for line in f]


def _generations(out: str) -> int:
    """Generations logged so far (0 while the log is missing or being rewritten)."""
    try:
        return max((r["generation"] for r in read_log(out)), default=0)
    except (ValueError, KeyError):
        return 0


def test_sigint_checkpoints_and_resume_continues(tmp_path):
    config = dataclasses.replace(SMALL, generations=4, validate_every=0, checkpoint_every=10)
    whole = meta_train(config, str(tmp_path / "whole"))

    def interrupting(config, key, generation):  # Ctrl-C while generation 3 is planned
        if generation == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return sampler.generation_tasks(config, key, generation)

    out, board = str(tmp_path / "stopped"), str(tmp_path / "tensorboard")
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN under nohup or a background job
    with pytest.raises(Stopped) as stopped:
        meta_train(config, out, task_source=interrupting, tensorboard=board)
    assert (stopped.value.signum, stopped.value.generation) == (signal.SIGINT, 2)
    assert stopped.value.exit_code == 130
    assert sorted(os.listdir(os.path.join(out, "checkpoints"))) == ["2"]  # written by the stop
    assert signal.getsignal(signal.SIGINT) is before  # the caller's handler is restored
    resumed = meta_train(config, out, resume=True, tensorboard=board)
    for a, b in zip(_leaves(whole.meta_params), _leaves(resumed.meta_params), strict=True):
        np.testing.assert_array_equal(a, b)
    scalars = read_scalars(board)  # both invocations, one curve
    assert scalars["meta_loss/all"] == [(r["generation"], pytest.approx(r["meta_loss"]))
                                        for r in whole.records]
    assert [step for step, _ in scalars["meta_loss/quadratic"]] == [1, 2, 3, 4]


# orbax's writer threads end with an unraisable "event loop is closed" after the failed write
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_full_disk_is_a_clear_error_and_keeps_checkpoints(tmp_path):
    config = dataclasses.replace(SMALL, generations=4, validate_every=0)
    (tmp_path / "a_file").write_text("")
    with pytest.raises(ValueError, match="cannot write to --out"):  # nothing can be created
        meta_train(config, str(tmp_path / "a_file" / "run"))
    whole = meta_train(config, str(tmp_path / "whole"))
    out = str(tmp_path / "full")
    meta_train(dataclasses.replace(config, generations=2), out)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
    logging.disable(logging.CRITICAL)  # orbax logs the failure at length
    # Files over 16 KB fail as on a full disk: the log lines fit, the checkpoints' arrays not.
    resource.setrlimit(resource.RLIMIT_FSIZE, (16_384, hard))
    try:
        with pytest.raises(ValueError, match="cannot write a checkpoint to .* disk full"):
            meta_train(config, out, resume=True)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        logging.disable(logging.NOTSET)
        signal.signal(signal.SIGXFSZ, previous)
    assert sorted(d for d in os.listdir(os.path.join(out, "checkpoints")) if d.isdigit()) == [
        "1", "2"]
    resumed = meta_train(config, out, resume=True)
    for a, b in zip(_leaves(whole.meta_params), _leaves(resumed.meta_params), strict=True):
        np.testing.assert_array_equal(a, b)


# The subprocess runs: truncated ES (inner states in every checkpoint), 4 chunks per trajectory,
# a checkpoint every 2 generations, the population sharded over 2 devices (or 2 processes).
RUN = dataclasses.replace(SMALL, estimator="pes", generations=10, validate_every=0,
                          horizon_min=100, horizon_max=100, checkpoint_every=2,
                          keep_checkpoints=5)
TWO_DEVICES = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
                   JAX_PLATFORMS="cpu")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """`RUN` uninterrupted, in this process on 2 devices: ``(run_dir, RunResult)``."""
    out = str(tmp_path_factory.mktemp("reference") / "run")
    return out, meta_train(RUN, out, num_devices=2)


def _start(out: str, config, resume: bool, env=TWO_DEVICES) -> subprocess.Popen:
    argv = [*VELO, "meta-train", "--out", out, *_argv(config), *(["--resume"] if resume else [])]
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)


def _wait_for(proc: subprocess.Popen, out: str, beyond: int, timeout: float = 240) -> None:
    """Wait until ``out``'s log shows a generation after ``beyond`` (or the process ended)."""
    deadline = time.monotonic() + timeout
    while _generations(out) <= beyond and proc.poll() is None:
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.02)


def test_sigterm_and_sigkill_then_resume_is_bit_identical(tmp_path, reference):
    """SIGTERM stops within seconds with a checkpoint; SIGKILLs at random moments lose at most
    the generations since the last checkpoint; the resumed run equals an uninterrupted one."""
    out = str(tmp_path / "run")
    proc = _start(out, RUN, resume=False)
    _wait_for(proc, out, beyond=0)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    took = time.monotonic() - sent
    assert proc.returncode == 128 + signal.SIGTERM, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("velo meta-train: stopped by SIGTERM after generation "), last
    stopped_at = int(last.split("after generation ")[1].split(";")[0])
    assert str(stopped_at) in os.listdir(os.path.join(out, "checkpoints"))
    assert took < 10, f"SIGTERM took {took:.1f} s to stop the run"
    rng = random.Random(0)
    for _ in range(2):
        proc = _start(out, RUN, resume=True)
        _wait_for(proc, out, beyond=_generations(out))
        time.sleep(rng.uniform(0.0, 0.3))
        proc.kill()
        proc.communicate(timeout=60)
    proc = _start(out, RUN, resume=True)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    for a, b in zip(_leaves(reference[1].meta_params), _mean(out, RUN.generations), strict=True):
        np.testing.assert_array_equal(a, b)
    logged = _strict(os.path.join(out, "log.jsonl"))
    assert [r["generation"] for r in logged] == list(range(1, RUN.generations + 1))
    assert [r["meta_loss"] for r in logged] == [r["meta_loss"] for r in reference[1].records]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_processes(out: str, config, resume: bool) -> None:
    """``velo meta-train --distributed`` as two processes of one CPU device each."""
    port = _free_port()
    procs = []
    for i in range(2):
        env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1",
                   JAX_PLATFORMS="cpu", JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
                   JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(i))
        argv = [*VELO, "meta-train", "--out", out, "--distributed", *_argv(config),
                *(["--resume"] if resume else [])]
        procs.append(subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True))
    try:
        errors = [p.communicate(timeout=300)[1] for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, err in zip(procs, errors, strict=True):
        assert p.returncode == 0, err[-3000:]


def test_two_processes_match_two_devices_and_resume(tmp_path, reference):
    out = str(tmp_path / "two_processes")
    _two_processes(out, dataclasses.replace(RUN, generations=2), resume=False)
    _two_processes(out, dataclasses.replace(RUN, generations=4), resume=True)  # mid-trajectory
    for step in (2, 4):
        for a, b in zip(_mean(reference[0], step), _mean(out, step), strict=True):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    assert [r["generation"] for r in _strict(os.path.join(out, "log.jsonl"))] == [1, 2, 3, 4]


def test_train_writes_tensorboard_and_needs_the_extra(tmp_path, monkeypatch, capsys):
    from velo import cli

    argv = ["train", "--task", "quadratic_ill", "--optimizer", "adam", "--steps", "5",
            "--out", str(tmp_path / "run")]
    assert cli.main([*argv, "--tensorboard"]) == 0
    losses = json.load(open(tmp_path / "run" / "run.json"))["losses"]
    scalars = read_scalars(str(tmp_path / "run" / "tensorboard"))
    assert [step for step, _ in scalars["train/loss"]] == list(range(5))
    np.testing.assert_allclose([v for _, v in scalars["train/loss"]], losses, rtol=1e-6)
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # as if the extra were missing
    assert cli.main([*argv, "--tensorboard", str(tmp_path / "tb")]) == 2
    assert "pip install 'velo[tensorboard]'" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "tb")
