"""The ``base`` meta-training preset (rule v2 on CPU) and the options it turns on: a pool that
keeps every family, horizons weighted by generations, and one long validation run."""

from __future__ import annotations

import collections
import dataclasses
import json

import jax
import numpy as np
import pytest

import tasks
from meta_train import config as config_lib
from meta_train import sampler
from meta_train.store import _check_same_run
from meta_train.validation import GEOMETRIC_FLOOR, task_steps
from meta_train.validation import mean as validation_mean
from tasks import Task
from tasks.heldout import HELDOUT
from tasks.long import LONG
from velo import lopt, overrides

BASE = config_lib.preset("base")
# Functions a `Task` needs but `task_steps` never calls.
_TASK_FIELDS = dict(init=None, loss=None, sample_batch=None)
REQUIRED = {"mlp", "autoencoder", "quadratic", "cnn", "rnn", "transformer"}


@pytest.fixture(scope="module")
def pool():
    return sampler.task_pool(BASE, 0)


def test_base_recipe():
    assert lopt.preset(BASE.lopt).rule == "v2"
    assert BASE.estimator in config_lib.TRUNCATED
    assert BASE.horizons[0] <= 300 and BASE.horizons[-1] >= 10_000
    assert BASE.max_reparam_exponent == 3
    assert REQUIRED <= set(BASE.families)
    assert BASE.validation_long_steps >= 5000


def test_base_config_round_trips_for_resume():
    saved = json.loads(json.dumps(BASE.to_dict()))
    _check_same_run(saved, BASE, "runs/base")  # what --resume compares
    _check_same_run(saved, overrides.apply(BASE, {"generations": 40_000}), "runs/base")
    with pytest.raises(ValueError, match="chunk"):
        _check_same_run(saved, overrides.apply(BASE, {"chunk": 25}), "runs/base")


def test_base_pool_has_every_family_and_no_heldout_spec(pool):
    families = [t.spec["family"] for t in pool]
    # pool_by_family: slot i holds families[i % 6].
    assert families == [BASE.families[i % len(BASE.families)] for i in range(len(pool))]
    assert set(families) == REQUIRED
    held = [spec for spec, _ in (*HELDOUT.values(), *LONG.values())]
    assert not any(tasks.in_support(spec, BASE.distribution) for spec in held)
    for task in (*pool, *sampler.validation_tasks(BASE)):
        assert tasks.TaskSpec(**task.spec) not in held
        assert tasks.in_support(tasks.TaskSpec(**task.spec), BASE.distribution)
        assert 0 < task.flops_per_step <= BASE.max_task_flops
        assert abs(task.spec["reparam_exponent"]) <= 3


def test_pool_by_family_needs_families():
    with pytest.raises(ValueError, match="pool_by_family"):
        dataclasses.replace(BASE, families=())


def test_balanced_horizons_give_each_bucket_equal_generations():
    # Drawn with probability proportional to 1/T, a T-step trajectory (T / chunk generations)
    # gets the same expected number of generations in every bucket.
    keys = jax.random.split(jax.random.key(0), 200)
    counts = collections.Counter(sampler.horizon(BASE, k) for k in keys)
    inverse = np.array([1 / h for h in BASE.horizons])
    expected = inverse / inverse.sum()  # [0.74, 0.22, 0.06, 0.02] for 250 ... 10,000
    observed = np.array([counts[h] for h in BASE.horizons]) / len(keys)
    np.testing.assert_allclose(observed, expected, atol=0.1)
    uniform = dataclasses.replace(BASE, balance_horizons=False)
    counts = collections.Counter(sampler.horizon(uniform, k) for k in keys[:80])
    assert all(8 < counts[h] < 32 for h in BASE.horizons), counts


def test_long_validation_goes_to_the_cheapest_network():
    def task(family, flops):
        return Task(name=f"{family}{flops}", spec={"family": family}, flops_per_step=flops,
                    **_TASK_FIELDS)

    val = [task("mlp", 5e4), task("quadratic", 1e3), task("cnn", 2e4)]
    assert task_steps(BASE, val) == [5000, 1000, 1000]
    val = [task("rnn", 5e4), task("quadratic", 1e3), task("mlp", 2e4)]
    assert task_steps(BASE, val) == [1000, 1000, 5000]
    assert task_steps(dataclasses.replace(BASE, validation_long_steps=0), val) == [1000] * 3
    assert task_steps(BASE, [task("quadratic", 1e3)]) == [5000]


def test_validation_has_one_task_per_listed_family():
    val = sampler.validation_tasks(BASE)
    assert len(val) == BASE.validation_tasks == len(BASE.validation_families)
    assert [t.spec["family"] for t in val] == list(BASE.validation_families)
    assert set(BASE.validation_families) == REQUIRED - {"rnn"}


def test_geometric_validation_mean_floors_tiny_losses():
    assert validation_mean([0.1, 0.4], geometric=False) == pytest.approx(0.25)
    assert validation_mean([0.1, 0.4], geometric=True) == pytest.approx(0.2)
    # A task trained to ~0 counts as the floor, not as -160 in log space.
    floor = GEOMETRIC_FLOOR
    assert validation_mean([0.1, 1e-70], geometric=True) == pytest.approx((0.1 * floor) ** 0.5)
    assert BASE.validation_geometric
