"""The pretrained learned optimizer that ships with velo: it loads, matches the code, is the
default, is velo_small without the MLP inputs it drops, has a model card, and beats Adam at its
default learning rate on a quick held-out task.

The quality gate trains one quick task at its own budget with each optimizer; its cost is compiling
the learned optimizer's program, which a shorter run would not reduce.
"""

import dataclasses
import os

import jax
import numpy as np
import optax
import pytest

import tasks
import velo
from meta_train import config as meta_config
from velo import cli, lopt, overrides
from velo.lopt import param_mlp, shipped
from velo.lopt.features import PER_ELEMENT_FEATURES, element_index
from velo.train import train

NAME = lopt.DEFAULT_CHECKPOINT


def load_shipped(name: str):
    """``(meta_params, config, metadata)`` of the shipped checkpoint ``name``."""
    assert name in shipped.names(), f"checkpoints/{name} is missing from the package"
    return lopt.load(shipped.path(name))


def trained_with(metadata: dict) -> meta_config.Config:
    """The meta-training config a checkpoint records, as a `meta_train.config.Config`."""
    return overrides.apply(meta_config.Config(), metadata["meta_train_config"])


@pytest.fixture(scope="module")
def loaded():
    return load_shipped(NAME)


def test_loads_with_the_config_of_the_code(loaded):
    meta_params, config, metadata = loaded
    # The `small` preset whose per-parameter MLP reads only the Adam direction per element,
    # with the statistics sample that reads contiguous blocks.
    only_adam = tuple(n for n in PER_ELEMENT_FEATURES if n != "m1_v")
    expected = dataclasses.replace(
        lopt.preset("small"), dropped_inputs=only_adam, stats_sample="blocks"
    )
    assert config == expected
    assert lopt.num_meta_params(config) == 45_857
    # Its meta-training config is the `small` preset of this code, field by field.
    assert trained_with(metadata) == meta_config.preset("small")
    assert metadata["generation"] > 0 and metadata["validation"] is not None


def test_is_velo_small_without_its_dropped_inputs(loaded):
    meta_params, config, _ = loaded
    small, small_config, _ = load_shipped("velo_small")
    as_saved = dataclasses.replace(config, dropped_inputs=(), stats_sample="strided")
    assert small_config == as_saved == lopt.preset("small")
    rows = [element_index(n) for n in config.dropped_inputs]
    w1 = small["bank"]["w1"]
    assert np.all(np.abs(w1[:, rows]).sum(axis=(0, 2)) > 0), "velo_small reads every input"
    expected = param_mlp.without_inputs(small, config.dropped_inputs)
    jax.tree.map(np.testing.assert_array_equal, meta_params, expected)


def test_is_the_default_and_has_a_model_card(loaded):
    meta_params, _, _ = loaded
    default, _ = lopt.checkpoint.resolve(None, None, None)
    jax.tree.map(np.testing.assert_array_equal, default, meta_params)
    card = open(os.path.join(shipped.path(NAME), "README.md")).read()
    for section in ("velo eval --suite heldout", "velo stability", "Known limitations",
                    "meta_train.png"):
        assert section in card, section
    assert os.path.isfile(os.path.join(shipped.path(NAME), "meta_train.png"))


def test_velo_info_lists_it(capsys):
    assert cli.main(["info"]) == 0
    assert f"{NAME} (default): 45,857 meta-parameters" in capsys.readouterr().out


def test_beats_default_adam_on_a_quick_heldout_task():
    task = tasks.get("digits4_mlp")
    assert task.name in [t.name for t in tasks.quick_suite()]
    steps = task.default_steps
    ours = train(task, velo.optax_lopt(steps), steps, seed=0, chunk=steps).losses
    adam = train(task, optax.adam(1e-3), steps, seed=0, chunk=steps).losses
    tail = steps // 10
    # Faster: lower mean loss over the run, and lower loss at the end.
    assert np.mean(ours) < 0.8 * np.mean(adam), (np.mean(ours), np.mean(adam))
    assert np.mean(ours[-tail:]) < 0.8 * np.mean(adam[-tail:])

