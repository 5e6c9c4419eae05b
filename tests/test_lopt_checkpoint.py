"""Saving and loading learned-optimizer checkpoints, the shipped default, and `velo train`."""

import json
import os

import jax
import numpy as np
import pytest

import checkpoints
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
    assert record["feature_version"] == lopt.FEATURE_VERSION


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


def test_default_checkpoint_is_used_once_shipped(saved, monkeypatch, recwarn):
    path, meta_params = saved
    names = checkpoints.names
    monkeypatch.setattr(checkpoints, "names", lambda: [*names(), ckpt.DEFAULT_CHECKPOINT])
    monkeypatch.setattr(checkpoints, "path", lambda name: path)
    resolved, config = ckpt.resolve(None, None, None)
    assert config == TINY and not [w for w in recwarn if "untrained" in str(w.message)]
    jax.tree.map(np.testing.assert_array_equal, resolved, meta_params)


def test_untrained_initialisation_warns_while_nothing_is_shipped(monkeypatch):
    monkeypatch.setattr(checkpoints, "names", lambda: [])
    with pytest.warns(UserWarning, match="untrained"):
        resolved, config = ckpt.resolve(None, None, None)
    fresh = lopt.init_meta_params(jax.random.key(0), config)
    jax.tree.map(np.testing.assert_array_equal, resolved, fresh)


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
