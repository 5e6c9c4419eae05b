"""Staggered truncated ES (``stagger=True``): slots with their own trajectories and members.

Small and fast: the one-parameter Adam learner on 4-dimensional quadratics with different
minima (so a member trained on the wrong task shows), chunks of 10 steps, horizons of 1-4 chunks.
"""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from meta_train import config as config_lib
from meta_train import devices, staggered
from meta_train.es import make_strategy, outer_optimizer, shape_fitness, slot_members
from meta_train.learner import adam_learner
from meta_train.log import read as read_log
from meta_train.loop import CACHE, meta_train
from meta_train.run import make_run
from meta_train.store import _check_same_run
from tasks import Task

SLOTS, PER_SLOT, CHUNK = 3, 4, 10
CONFIG = dataclasses.replace(
    config_lib.preset("tiny"), estimator="nres", stagger=True, seed=7, population=PER_SLOT,
    tasks_per_generation=SLOTS, task_pool=0, families=(), horizon_min=10, horizon_max=40,
    horizon_buckets=3, chunk=CHUNK, sigma=0.3, learning_rate=0.05, generations=8,
    validate_every=0, checkpoint_every=1, keep_checkpoints=20,
)
LEARNER = adam_learner(1e-2)


def _quadratic(target: float) -> Task:
    """``|w - target|^2`` over 4 dimensions from ``w ~ N(0, 1)``."""

    def loss(params, batch, key):
        del batch, key
        return jnp.sum((params["w"] - target) ** 2)

    return Task(f"quadratic{target}", {"family": "quadratic"},
                lambda key: {"w": jax.random.normal(key, (4,))}, loss, lambda key: None,
                normalizer=4.0 * (1.0 + target**2))


TASKS = [_quadratic(t) for t in (1.0, 3.0, 10.0)]


def _source(config, key, generation):
    """``config.tasks_per_generation`` of `TASKS`, drawn by ``key``."""
    del generation
    picks = jax.random.randint(key, (config.tasks_per_generation,), 0, len(TASKS))
    return [TASKS[int(i)] for i in picks]


def _train(out, config=CONFIG, **kwargs):
    return meta_train(config, str(out), learner=LEARNER, task_source=_source, num_devices=2,
                      **kwargs)


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    out = tmp_path_factory.mktemp("stagger") / "whole"
    return out, _train(out)


def _trajectories(records, slot):
    """``[(start generation, steps reached, horizon)]`` of ``slot``'s trajectories."""
    runs = []
    for r in records:
        step, horizon = r["trajectory_steps"][slot], r["horizons"][slot]
        if step == CHUNK:
            runs.append([r["generation"] - 1, step, horizon])
        runs[-1][1:] = [step, horizon]
    return [tuple(run) for run in runs]


def test_slots_begin_and_end_apart(whole):
    _, result = whole
    records = result.records
    assert all(len(r["tasks"]) == SLOTS and len(r["trajectory_steps"]) == SLOTS
               for r in records)
    per_slot = [_trajectories(records, s) for s in range(SLOTS)]
    firsts = [runs[0] for runs in per_slot]
    assert all(start == 0 and 0 < steps <= horizon for start, steps, horizon in firsts)
    # The first truncation cut at least one slot short of its horizon, and the slots begin
    # their second trajectories at different generations.
    assert any(steps < horizon for _, steps, horizon in firsts)
    assert len({runs[1][0] for runs in per_slot}) > 1
    for runs in per_slot:  # later trajectories run their whole horizon (the last may go on)
        for _, steps, horizon in runs[1:-1]:
            assert steps == horizon
        for (start, steps, _), (next_start, _, _) in zip(runs, runs[1:], strict=False):
            assert next_start == start + steps // CHUNK
    assert result.records[-1]["model_steps_per_s"] > 0
    assert all(np.isfinite(r["meta_loss"]) for r in records)


def test_each_slot_trains_only_its_task():
    run = make_run(CONFIG, LEARNER, devices.make_mesh(2), CACHE, _source)
    state = run.initial_state()
    plan = staggered.plan(run, 0, None)
    assert len({t.name for t in plan.tasks}) > 1  # slots on different tasks
    pop, _ = run.ask(plan, state)
    generation = staggered.evaluate(run, pop, plan)
    host = jax.tree.map(np.asarray, pop)
    for slot, members in enumerate(slot_members(SLOTS, PER_SLOT)):
        own = devices.put(jax.tree.map(lambda x, m=members: x[m], host),
                          devices.sharded(run.mesh))
        init_key, data_key = plan.keys[slot]
        states = run.runner.init(plan.tasks[slot], own, plan.horizon[slot],
                                 run.shared(init_key))
        _, sums = run.runner.advance(plan.tasks[slot], own, states, run.shared(data_key),
                                     plan.horizon[slot], 0)
        np.testing.assert_array_equal(np.asarray(generation.fitness[slot]),
                                      np.asarray(sums / CHUNK))


def test_slot_members_keep_antithetic_pairs_and_shape_within_slots():
    members = slot_members(2, 4)
    np.testing.assert_array_equal(members, [[0, 1, 4, 5], [2, 3, 6, 7]])
    config = dataclasses.replace(CONFIG, tasks_per_generation=2)
    fitness = jnp.array([[1.0, 2.0, 3.0, 4.0], [jnp.nan] * 4])
    shaped = np.asarray(shape_fitness(fitness, config, None))
    ranks = np.array([-1 / 2, -1 / 6, 1 / 6, 1 / 2])  # slot 0's centred ranks; slot 1 failed
    np.testing.assert_allclose(shaped[members[0]], ranks, atol=1e-6)
    np.testing.assert_array_equal(shaped[members[1]], 0.0)
    sign = np.asarray(shape_fitness(jnp.array([[1.0, 2.0, 2.0, 1.0], [3.0, 3.0, 1.0, 4.0]]),
                                    dataclasses.replace(config, shaping="sign"), None))
    np.testing.assert_array_equal(sign[members[0]], [-0.5, 0.5, 0.5, -0.5])
    np.testing.assert_array_equal(sign[members[1]], [0.5, -0.5, -0.5, 0.5])


def _strategy(estimator):
    config = dataclasses.replace(CONFIG, estimator=estimator)
    es, params = make_strategy(config, {"w": jnp.zeros(6)})
    state = es.init(jax.random.key(0), {"w": jnp.arange(6.0)}, params)
    return config, es, params, state


def _ask(es, params, state, begins, key):
    return es.ask(jax.random.key(key), state, params._replace(begins=jnp.array(begins)))


def _rows(x, slot):
    return np.asarray(x)[slot_members(SLOTS, PER_SLOT)[slot]]


def test_nres_resets_only_beginning_slots_and_updates_as_by_hand():
    config, es, params, state = _strategy("nres")
    pop, state = _ask(es, params, state, [True] * SLOTS, 1)
    first = np.asarray(state.pert)
    shaped = jnp.linspace(-1.0, 1.0, SLOTS * PER_SLOT)
    state, _ = es.tell(jax.random.key(2), pop, shaped, state, params)
    pop, asked = _ask(es, params, state, [False, True, False], 3)
    pert = np.asarray(asked.pert)
    for slot in (0, 2):  # continuing slots keep their directions
        np.testing.assert_array_equal(_rows(pert, slot), _rows(first, slot))
    fresh = _rows(pert, 1)
    assert not np.any(fresh == _rows(first, 1))
    np.testing.assert_array_equal(fresh[:PER_SLOT // 2], -fresh[PER_SLOT // 2:])  # antithetic
    np.testing.assert_allclose(np.asarray(pop["w"]), np.asarray(state.mean) + pert, rtol=1e-6)
    assert int(asked.inner_step_counter) == int(state.inner_step_counter)
    # The mean moves by the outer optimizer on sum_i shaped_i pert_i / (sigma^2 N).
    shaped = jnp.linspace(1.0, -0.5, SLOTS * PER_SLOT)
    told, _ = es.tell(jax.random.key(4), pop, shaped, asked, params)
    grad = np.asarray(shaped) @ pert / config.sigma**2 / (SLOTS * PER_SLOT)
    updates, _ = outer_optimizer(config).update(jnp.asarray(grad), asked.opt_state, asked.mean)
    np.testing.assert_allclose(np.asarray(told.mean),
                               np.asarray(optax.apply_updates(asked.mean, updates)), rtol=1e-6)
    # evosax's own reset never fires: a continuing slot keeps its directions generations on.
    _, again = _ask(es, params, told, [False] * SLOTS, 5)
    np.testing.assert_array_equal(np.asarray(again.pert), pert)


def test_pes_accumulators_reset_per_slot():
    _, es, params, state = _strategy("pes")
    pop, state = _ask(es, params, state, [True] * SLOTS, 1)
    first = np.asarray(state.pert_accum)
    state, _ = es.tell(jax.random.key(2), pop, jnp.zeros(SLOTS * PER_SLOT), state, params)
    np.testing.assert_array_equal(np.asarray(state.pert_accum), first)  # no global reset
    pop, asked = _ask(es, params, state, [True, False, False], 3)
    drawn = np.asarray(pop["w"]) - np.asarray(state.mean)
    accum = np.asarray(asked.pert_accum)
    np.testing.assert_allclose(_rows(accum, 0), _rows(drawn, 0), atol=1e-6)
    for slot in (1, 2):
        np.testing.assert_allclose(_rows(accum, slot), _rows(first + drawn, slot), atol=1e-6)


def test_same_seed_same_run_other_seed_other_run(whole, tmp_path):
    _, result = whole
    again = _train(tmp_path / "again", dataclasses.replace(CONFIG, generations=4))
    other = _train(tmp_path / "other", dataclasses.replace(CONFIG, generations=4, seed=3))
    logged = [r for r in result.records if r["generation"] <= 4]
    assert [r["meta_loss"] for r in again.records] == [r["meta_loss"] for r in logged]
    assert [r["trajectory_steps"] for r in again.records] == [
        r["trajectory_steps"] for r in logged]
    assert [r["meta_loss"] for r in other.records] != [r["meta_loss"] for r in logged]


def test_resume_mid_trajectories_is_bit_identical(whole, tmp_path):
    out, result = whole
    split = tmp_path / "split"
    first = _train(split, dataclasses.replace(CONFIG, generations=3))
    steps = first.records[-1]["trajectory_steps"]
    assert any(s < h for s, h in zip(steps, first.records[-1]["horizons"], strict=True))
    resumed = _train(split, resume=True)
    assert resumed.generation == CONFIG.generations
    for a, b in zip(_leaves(result.meta_params), _leaves(resumed.meta_params), strict=True):
        np.testing.assert_array_equal(a, b)
    keys = ("meta_loss", "tasks", "trajectory_steps", "horizons", "update_norm")
    assert [[r[k] for k in keys] for r in read_log(str(split))] == [
        [r[k] for k in keys] for r in read_log(str(out))]


def test_stagger_needs_a_truncated_estimator_and_old_base_runs_do_not_resume():
    with pytest.raises(ValueError, match="stagger needs a truncated estimator"):
        dataclasses.replace(CONFIG, estimator="open_es")
    base = config_lib.preset("base")
    assert base.stagger and base.estimator == "nres" and base.members == 48
    old = dataclasses.replace(base, stagger=False, slot_per_pool_entry=False, population=16,
                              tasks_per_generation=2, learning_rate=3e-4).to_dict()
    del old["stagger"]  # written before the field existed
    with pytest.raises(ValueError, match="stagger: saved False vs now True"):
        _check_same_run(json.loads(json.dumps(old)), base, "runs/base")


def test_fitness_tail_leaves_out_the_slots_before_their_tail(tmp_path):
    config = dataclasses.replace(CONFIG, fitness_tail=0.5)
    records = _train(tmp_path / "tail", config).records
    for r in records:
        want = [int(s > 0.5 * h) for s, h in zip(r["trajectory_steps"], r["horizons"],
                                                   strict=True)]
        assert r["fitness_slots"] == want
    first = next(i for i, r in enumerate(records) if any(r["fitness_slots"]))
    assert all(r["update_norm"] == 0.0 for r in records[:first])
    assert records[first]["update_norm"] > 0.0
    assert 0 < first or any(not all(r["fitness_slots"]) for r in records), \
        "the test config never left a slot out"


def test_shape_fitness_weights_zero_a_slot():
    fitness = jnp.array([[1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0], [1.0, 1.0, 2.0, 0.0]])
    full = np.asarray(shape_fitness(fitness, CONFIG, None))
    weighted = np.asarray(shape_fitness(fitness, CONFIG, None, jnp.array([1.0, 0.0, 1.0])))
    members = slot_members(SLOTS, PER_SLOT)
    np.testing.assert_array_equal(weighted[members[1]], 0.0)
    np.testing.assert_array_equal(weighted[members[[0, 2]]], full[members[[0, 2]]])
