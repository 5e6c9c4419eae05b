"""Saving and loading learned-optimizer checkpoints, the shipped default, and `velo train`."""

import json
import os

import jax
import numpy as np
import pytest

from velo import cli, lopt
from velo.lopt import checkpoint as ckpt

TINY = lopt.preset("tiny")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    meta_params = lopt.init_meta_params(jax.random.key(3), TINY)
    path = str(tmp_path_factory.mktemp("ckpt") / "tiny_opt")
    lopt.save(path, meta_params, TINY, {"generation": 7, "note": "test"})
    return path, meta_params


def test_round_trip_is_bit_exact(saved):
    path, meta_params = saved
    loaded, config, metadata = lopt.load(path)
    assert config == TINY and metadata == {"generation": 7, "note": "test"}
    assert jax.tree.structure(loaded) == jax.tree.structure(meta_params)
    for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(meta_params), strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    record = json.loads(open(os.path.join(path, "config.json")).read())
    assert record["feature_version"] == lopt.rules.feature_version(TINY)


def test_relative_path_is_saved_absolute(tmp_path, monkeypatch, saved):
    monkeypatch.chdir(tmp_path)
    out = lopt.save("rel_ckpt", saved[1], TINY)
    assert os.path.isabs(out) and lopt.load("rel_ckpt")[1] == TINY


def _copy_with_record(src, dst, edit):
    import shutil

    shutil.copytree(src, dst)
    config_file = os.path.join(dst, "config.json")
    record = json.loads(open(config_file).read())
    with open(config_file, "w") as f:
        f.write(edit(record))
    return str(dst)


def test_bad_checkpoints_give_clear_errors(saved, tmp_path):
    path, meta_params = saved
    with pytest.raises(ValueError, match="no learned-optimizer checkpoint"):
        lopt.load(str(tmp_path / "missing"))
    garbage = _copy_with_record(path, tmp_path / "garbage", lambda r: "{not json")
    with pytest.raises(ValueError, match="corrupted"):
        lopt.load(garbage)
    old = _copy_with_record(
        path, tmp_path / "old", lambda r: json.dumps({**r, "feature_version": 0})
    )
    with pytest.raises(ValueError, match="feature version 0"):
        lopt.load(old)
    bigger = _copy_with_record(
        path,
        tmp_path / "bigger",
        lambda r: json.dumps({**r, "config": {**r["config"], "lstm_size": 48}}),
    )
    with pytest.raises(ValueError, match="corrupted|do not match"):
        lopt.load(bigger)
    unknown = _copy_with_record(
        path, tmp_path / "unknown", lambda r: json.dumps({**r, "config": {**r["config"], "x": 1}})
    )
    with pytest.raises(ValueError, match="does not know: x"):
        lopt.load(unknown)
    with pytest.raises(ValueError, match="differs from the config"):
        lopt.optax_lopt(10, checkpoint=path, config=lopt.preset("small"))
    with pytest.raises(ValueError, match="already exists"):
        lopt.save(path, meta_params, TINY)
    with pytest.raises(ValueError, match="structure|shape"):
        lopt.save(str(tmp_path / "wrong"), meta_params, lopt.preset("small"))


def test_default_checkpoint_is_the_shipped_one(saved, monkeypatch):
    path, meta_params = saved
    names = lopt.shipped.names
    monkeypatch.setattr(lopt.shipped, "names", lambda: [*names(), ckpt.DEFAULT_CHECKPOINT])
    monkeypatch.setattr(lopt.shipped, "path", lambda name: path)
    resolved, config = ckpt.resolve(None, None, None)
    assert config == TINY
    jax.tree.map(np.testing.assert_array_equal, resolved, meta_params)


@pytest.mark.parametrize("name,preset", [("init", "small"), ("init:tiny", "tiny")])
def test_init_checkpoint_is_the_untrained_initialisation(name, preset):
    resolved, config = ckpt.resolve(name, None, None)
    assert config == lopt.preset(preset)
    fresh = lopt.init_meta_params(jax.random.key(0), config)
    jax.tree.map(np.testing.assert_array_equal, resolved, fresh)
    assert lopt.identity(name).startswith(f"{name} (sha256 ")
    assert lopt.identity(name) != lopt.identity(None)
    with pytest.raises(ValueError, match="unknown preset"):
        ckpt.resolve("init:huge", None, None)


def test_checkpoints_record_their_rule_and_feature_version(tmp_path):
    config = lopt.preset("v2_tiny")
    path = lopt.save(str(tmp_path / "v2"), lopt.init_meta_params(jax.random.key(1), config), config)
    record = json.loads(open(os.path.join(path, "config.json")).read())
    assert record["config"]["rule"] == "v2" and record["feature_version"] == 2
    assert record["config"]["max_progress"] == 1.0 and lopt.load(path)[1] == config
    v1 = lopt.load(lopt.locate(None))[1]
    assert v1.rule == "v1" and lopt.rules.feature_version(v1) == 1


def test_velo_train_cli_with_checkpoint(saved, tmp_path, capsys):
    path, _ = saved
    out = tmp_path / "run"
    code = cli.main(
        [
            "train",
            "--task",
            "digits_mlp",
            "--optimizer",
            "velo",
            "--checkpoint",
            path,
            "--steps",
            "30",
            "--out",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr()
    losses = json.loads((out / "run.json").read_text())["losses"]
    assert len(losses) == 30 and np.mean(losses[-5:]) < np.mean(losses[:5])
