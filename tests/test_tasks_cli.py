"""``velo tasks list|show|sample`` and training a held-out task by name."""

import json

import numpy as np
import pytest

from tasks.heldout import HELDOUT
from velo import cli


def _run(argv, capsys):
    try:
        code = cli.main(argv)
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_list_shows_the_heldout_suite(capsys):
    code, out, _ = _run(["tasks", "list"], capsys)
    assert code == 0
    for name in [*HELDOUT, "digits_mlp"]:
        assert name in out
    assert "heldout, quick" in out


def test_sample_is_deterministic_json(capsys):
    code, out, _ = _run(["tasks", "sample", "--distribution", "default", "--seed", "3",
                         "--count", "2"], capsys)
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["seed"] for line in lines] == [3, 4]
    assert _run(["tasks", "sample", "--distribution", "default", "--seed", "3", "--count", "2"],
                capsys)[1] == out
    assert set(lines[0]["spec"]) >= {"family", "dataset", "arch", "batch_size", "seed"}
    assert lines[0]["flops_per_step"] <= 3e8


def test_show_prints_size_cost_and_speed(capsys):
    code, out, _ = _run(["tasks", "show", "quadratic_ill", "--steps", "20"], capsys)
    assert code == 0
    assert "parameters: 100" in out and "FLOPs/step" in out and "steps/s" in out
    assert '"log10_condition": 5' in out


@pytest.mark.parametrize("argv, message", [
    (["tasks", "show", "nope"], "unknown task 'nope'"),
    (["tasks", "show", '{"family": "mlp"}'], "missing field(s) dataset"),
    (["tasks", "sample", "--distribution", "huge"], "invalid choice: 'huge'"),
])
def test_bad_input_exits_2_with_one_line(argv, message, capsys):
    code, _, err = _run(argv, capsys)
    assert code == 2 and message in err and "Traceback" not in err


def test_train_a_heldout_task_by_name(tmp_path, capsys):
    code, out, _ = _run(["train", "--task", "quadratic_ill", "--optimizer", "adam", "--lr", "0.05",
                         "--steps", "300", "--out", str(tmp_path)], capsys)
    assert code == 0
    record = json.loads((tmp_path / "run.json").read_text())
    losses = np.array(record["losses"])
    assert losses[-30:].mean() < 0.5 * losses[:10].mean()
    assert record["config"]["task_spec"]["family"] == "quadratic"
