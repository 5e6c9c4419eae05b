"""Offline datasets, the optional loaders and the .npz format."""

import importlib.resources
import random

import jax
import numpy as np
import pytest

import tasks
from tasks import datasets
from tasks.datasets.digits import load_digits
from tasks.datasets.mnist1d import load_mnist1d
from tasks.datasets.synthetic import load_logistic, load_teacher
from tasks.datasets.text import ALPHABET, encode
from tasks.spec import TaskSpec


def test_digits_at_8x8_and_pooled_4x4():
    d8, d4 = datasets.load("digits8"), datasets.load("digits4")
    assert d8.x_train.shape == (1438, 8, 8, 1) and d8.x_test.shape == (359, 8, 8, 1)
    assert d4.x_train.shape == (1438, 4, 4, 1)
    assert 0 <= float(d8.x_train.min()) and float(d8.x_train.max()) <= 1
    pooled = np.asarray(d8.x_train).reshape(-1, 4, 2, 4, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(np.asarray(d4.x_train)[..., 0], pooled, rtol=1e-6)
    other = load_digits(seed=1)
    assert not np.array_equal(np.asarray(other.y_test), np.asarray(d8.y_test))


def test_mnist1d_is_deterministic_and_leaves_global_rng_alone():
    np.random.seed(123)
    random.seed(123)
    np_state, py_state = np.random.get_state(), random.getstate()
    a = load_mnist1d(seed=3, num_samples=200)
    assert random.getstate() == py_state
    after = np.random.get_state()
    assert all(np.array_equal(x, y) for x, y in zip(np_state, after, strict=True))
    b = load_mnist1d(seed=3, num_samples=200)
    c = load_mnist1d(seed=4, num_samples=200)
    assert a.x_train.shape == (160, 40, 1) and a.x_train.dtype == np.float32
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(np.asarray(a.x_train), np.asarray(c.x_train))
    assert set(np.unique(np.asarray(a.y_train))) <= set(range(10))


def test_english_corpus_is_shipped_small_and_licensed():
    files = importlib.resources.files("tasks").joinpath("data")
    text = files.joinpath("english.txt").read_text("ascii")
    assert 400_000 < len(text) <= 600_000
    assert set(text) <= set(ALPHABET)
    assert "Python Software Foundation" in files.joinpath("LICENSE-PSF.txt").read_text()
    assert "PSF" in files.joinpath("README.md").read_text()
    data = datasets.load("english")
    assert data.info.num_outputs == len(ALPHABET) == 96
    assert int(data.x_train.max()) < 96 and data.x_test.shape[0] > 40_000
    np.testing.assert_array_equal(encode("Hi\n\t"), [ALPHABET.index(c) for c in "Hi\n?"])


def test_synthetic_data_follows_its_seed():
    t0, t1 = load_teacher(0), load_teacher(1)
    assert t0.x_train.shape == (4096, 16) and t0.y_train.shape == (4096, 4)
    np.testing.assert_array_equal(t0.y_train, load_teacher(0).y_train)
    assert not np.allclose(t0.y_train, t1.y_train)
    lg = load_logistic(0)
    counts = np.bincount(np.asarray(lg.y_train), minlength=4)
    assert lg.x_train.shape == (4096, 32) and counts.min() > 300  # every class present


def test_datasets_are_loaded_once_per_process():
    assert datasets.load("digits8") is datasets.load("digits8")
    assert tasks.build(TaskSpec("mlp", "digits8", {"hidden": [], "activation": "relu"}, 8)) \
        is tasks.build(TaskSpec("mlp", "digits8", {"hidden": [], "activation": "relu"}, 8))


@pytest.fixture
def image_npz(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "tiny.npz"
    np.savez(path, x_train=rng.integers(0, 256, (40, 16, 16)).astype(np.uint8),
             y_train=rng.integers(0, 3, 40), x_test=rng.integers(0, 256, (10, 16, 16)),
             y_test=rng.integers(0, 3, 10))
    return path


def test_npz_images_are_resized_and_train(image_npz):
    name = f"npz:{image_npz}"
    info = datasets.info(name)
    assert info == datasets.DatasetInfo("image", (8, 8, 1), 3)
    data = datasets.load(name)
    assert data.x_train.shape == (40, 8, 8, 1) and float(data.x_train.max()) <= 1.0
    task = tasks.build(TaskSpec("mlp", name, {"hidden": [4], "activation": "relu"}, 8))

    @jax.jit
    def evaluate(key):
        params = task.init(key)
        return task.loss(params, task.sample_batch(key), key), task.test_metrics(params)

    loss, metrics = evaluate(jax.random.key(0))
    assert np.isfinite(float(loss)) and task.name.startswith("mlp_npz_")
    assert set(metrics) == {"loss", "accuracy"}


def test_npz_tokens_make_a_text_dataset(tmp_path):
    path = tmp_path / "tokens.npz"
    np.savez(path, train_tokens=np.arange(300) % 7, test_tokens=np.arange(100) % 7)
    task = tasks.build(TaskSpec("rnn", f"npz:{path}",
                                {"cell": "gru", "hidden": 8, "embed": 4, "seq": 10}, 4))
    assert datasets.info(f"npz:{path}") == datasets.DatasetInfo("text", (), 7, "tokens")
    inputs, targets = task.sample_batch(jax.random.key(0))
    assert inputs.shape == (4, 10) and int(inputs.max()) < 7


@pytest.mark.parametrize("content, message", [
    (b"not a zip file", "cannot read dataset file"),
    (None, "lacks y_train, x_test, y_test"),
])
def test_unreadable_npz_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.npz"
    if content is None:
        np.savez(path, x_train=np.zeros((4, 3)))
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError) as err:
        datasets.info(f"npz:{path}")
    assert message in str(err.value) and str(path) in str(err.value)
    assert "x_train, y_train, x_test, y_test" in str(err.value)


def test_missing_npz_file_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="cannot read dataset file .*missing.npz"):
        TaskSpec("mlp", f"npz:{tmp_path}/missing.npz", {"hidden": [], "activation": "relu"}, 8)


def test_external_dataset_offline_names_the_extra_and_the_file_alternative(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_extras(name, *args, **kwargs):
        if name in ("tensorflow_datasets", "datasets"):
            raise ImportError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_extras)
    datasets.external.load_external.cache_clear()
    with pytest.raises(ValueError) as err:
        datasets.load("cifar10")
    message = str(err.value)
    assert "pip install 'velo[datasets]'" in message and "npz:/path/to/file.npz" in message
    assert "tensorflow_datasets not installed" in message
    assert datasets.info("cifar10").input_shape == (8, 8, 3)  # known without loading
