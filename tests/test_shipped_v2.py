"""The rule-v2 checkpoint that ships beside the default (`checkpoints/velo_v2`): it loads, matches
the code and the ``base`` recipe it was meta-trained with, is stable at 10x on three cheap
problems, told the budget or the whole run (the checks of `test_lopt_v2`), and beats Adam at its
default learning rate on a quick held-out task."""

import os

import numpy as np
import optax
import pytest
from test_lopt_v2 import PROBLEMS, check_stable_at_10x, long_runs
from test_shipped_checkpoint import load_shipped, trained_with

import tasks
import velo
from meta_train import config as meta_config
from velo import lopt
from velo.lopt import shipped
from velo.train import train

NAME = "velo_v2"


@pytest.fixture(scope="module")
def loaded():
    return load_shipped(NAME)


def test_loads_with_the_config_of_the_code_and_its_recipe(loaded):
    meta_params, config, metadata = loaded
    assert config == lopt.preset("v2")
    recipe = trained_with(metadata)
    assert recipe == meta_config.preset("base")  # `--preset base` reproduces it
    assert recipe.trainable == ("hypernet/step",)
    assert metadata["generation"] == 2220
    # Only the step head moved: everything else is init:v2.
    init, _ = lopt.checkpoint.init_checkpoint("init:v2")
    np.testing.assert_array_equal(meta_params["bank"]["w1"], init["bank"]["w1"])
    assert not np.array_equal(meta_params["hypernet"]["step"]["kernel"],
                              init["hypernet"]["step"]["kernel"])
    card = open(os.path.join(shipped.path(NAME), "README.md")).read()
    for section in ("velo eval --suite heldout", "velo eval --suite long", "Known limitations",
                    "meta_train.png"):
        assert section in card, section


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_stable_at_10x_the_budget_and_past_num_steps(loaded, name):
    meta_params, config, _ = loaded
    check_stable_at_10x(long_runs(name, config)(meta_params))


def test_beats_default_adam_on_a_quick_heldout_task():
    task = tasks.get("digits4_mlp")
    steps = task.default_steps
    ours = train(task, velo.optax_lopt(steps, checkpoint=NAME), steps, seed=0,
                 chunk=steps).losses
    adam = train(task, optax.adam(1e-3), steps, seed=0, chunk=steps).losses
    tail = steps // 10
    assert np.mean(ours[-tail:]) < 0.8 * np.mean(adam[-tail:])
