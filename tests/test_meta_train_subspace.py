"""Meta-training a subspace of the meta-parameters (`Config.trainable`) and slots that keep
their pool entry (`Config.slot_per_pool_entry`), the two changes of the ``base`` recipe."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from meta_train import config as config_lib
from meta_train import sampler
from meta_train.export import export
from meta_train.learner import adam_learner, lopt_learner
from meta_train.loop import meta_train
from velo import lopt

PRESET = "v2_tiny"
STEP = ("hypernet/step",)


@pytest.fixture(scope="module")
def learner():
    return lopt_learner(PRESET, STEP)


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def test_subspace_starts_at_the_untrained_init(learner):
    init, _ = lopt.checkpoint.init_checkpoint(f"init:{PRESET}")
    sub = learner.init(jax.random.key(123))  # the key is ignored: the frozen part fixes it
    assert list(sub) == ["hypernet/step"]
    assert sum(x.size for x in jax.tree.leaves(sub)) == lopt.preset(PRESET).lstm_size + 1
    for got, want in zip(_leaves(learner.expand(sub)), _leaves(init), strict=True):
        np.testing.assert_array_equal(got, want)


def test_expand_writes_only_the_trainable_leaves(learner):
    init, _ = lopt.checkpoint.init_checkpoint(f"init:{PRESET}")
    moved = jax.tree.map(lambda x: x + 1.0, learner.init(None))
    full = learner.expand(moved)
    np.testing.assert_array_equal(full["hypernet"]["step"]["bias"],
                                  init["hypernet"]["step"]["bias"] + 1.0)
    np.testing.assert_array_equal(full["bank"]["w1"], init["bank"]["w1"])
    np.testing.assert_array_equal(full["hypernet"]["lstm"]["hf"]["kernel"],
                                  init["hypernet"]["lstm"]["hf"]["kernel"])
    # expand is pure: the frozen tree is not changed by writing into its copy.
    np.testing.assert_array_equal(learner.expand(learner.init(None))["hypernet"]["step"]["bias"],
                                  init["hypernet"]["step"]["bias"])


def test_subspace_optimizer_is_the_init_optimizer_and_moves_with_the_step_bias(learner):
    params = {"w": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4), "b": jnp.zeros(4)}
    grads = jax.tree.map(lambda x: jnp.cos(3.0 * x) + 0.1, params)

    def update(opt):
        state = opt.init(params)
        updates, _ = opt.update(grads, state, params, loss=jnp.float32(1.0))
        return updates

    learned = jax.jit(lambda sub: update(learner.optimizer(sub, 100)))  # one program for both
    sub = learner.init(None)
    same = learned(sub)
    want = jax.jit(lambda: update(lopt.optax_lopt(100, checkpoint=f"init:{PRESET}")))()
    for got, ref in zip(_leaves(same), _leaves(want), strict=True):
        np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-9)
    # A larger step bias scales every step by exp(b * (tanh(u + 1) - tanh(u))), u ~ 0.
    bigger = jax.tree.map(lambda x: x, sub)
    bigger["hypernet/step"]["bias"] = sub["hypernet/step"]["bias"] + 1.0
    moved = learned(bigger)
    ratio = np.linalg.norm(moved["w"]) / np.linalg.norm(want["w"])
    b = lopt.preset(PRESET).step_bound
    np.testing.assert_allclose(ratio, np.exp(b * np.tanh(1.0)), rtol=0.05)


def test_bad_trainable_paths_are_refused():
    with pytest.raises(ValueError, match="no 'stepp' under hypernet; known: .*step"):
        lopt_learner(PRESET, ("hypernet/stepp",))
    with pytest.raises(ValueError, match="not nested"):
        dataclasses.replace(config_lib.preset("base"), trainable=("hypernet", "hypernet/step"))
    with pytest.raises(ValueError, match="slot_per_pool_entry needs"):
        dataclasses.replace(config_lib.preset("base"), task_pool=5)


def test_base_trains_only_the_step_head():
    base = config_lib.preset("base")
    assert base.trainable == STEP
    learner = lopt_learner(base.lopt, base.trainable)
    dims = sum(x.size for x in jax.tree.leaves(learner.init(None)))
    assert dims == lopt.preset(base.lopt).lstm_size + 1 < lopt.num_meta_params(
        lopt.preset(base.lopt)) / 500
    assert base.slot_per_pool_entry and base.tasks_per_generation == base.task_pool


SLOTS = 2
TINY = dataclasses.replace(
    config_lib.preset("tiny"), estimator="nres", stagger=True, seed=3, population=4,
    tasks_per_generation=SLOTS, task_pool=SLOTS, slot_per_pool_entry=True,
    families=("quadratic",), horizon_min=10, horizon_max=20, horizon_buckets=2, chunk=10,
    generations=5, validate_every=0, checkpoint_every=5,
)


def test_each_slot_keeps_its_pool_entry(tmp_path):
    pool = [task.name for task in sampler.task_pool(TINY, 0)]
    assert len(set(pool)) == SLOTS
    result = meta_train(TINY, str(tmp_path / "run"), learner=adam_learner(1e-2), num_devices=1)
    assert [r["tasks"] for r in result.records] == [pool] * TINY.generations


def test_export_writes_the_full_meta_parameters(tmp_path):
    config = dataclasses.replace(TINY, lopt=PRESET, trainable=STEP, generations=1,
                                 checkpoint_every=1, horizon_min=10, horizon_max=10)
    result = meta_train(config, str(tmp_path / "run"), num_devices=1)
    assert list(result.meta_params) == ["hypernet/step"]
    path = export(str(tmp_path / "run"), str(tmp_path / "lopt"))
    meta_params, saved, _ = lopt.load(path)
    assert saved == lopt.preset(PRESET)
    np.testing.assert_array_equal(meta_params["hypernet"]["step"]["kernel"],
                                  result.meta_params["hypernet/step"]["kernel"])
    init, _ = lopt.checkpoint.init_checkpoint(f"init:{PRESET}")
    np.testing.assert_array_equal(meta_params["bank"]["w1"], init["bank"]["w1"])
    assert not np.array_equal(meta_params["hypernet"]["step"]["kernel"],
                              init["hypernet"]["step"]["kernel"])
