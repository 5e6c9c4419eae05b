"""Truncated ES (``pes``, ``nres``): members' runs advance one ``chunk`` of steps per generation.

A trajectory begun at generation s draws its tasks, horizon T and the members' shared keys from
``fold_in(fold_in(run_key, s), 1)``. Each generation asks the strategy for a population, advances
every member's run by ``chunk`` steps from where the previous generation left it, and uses the
chunk's mean normalised loss as fitness; after T / chunk generations the trajectory ends and the
next generation begins a new one. PES accumulates each member's perturbations over the trajectory
(unbiased for the whole unroll); NRES reuses one perturbation for the whole trajectory (lower
variance). Both are evosax strategies; here only the unroll is scheduled.

References:
  Vicol, Metz, Sohl-Dickstein, "Unbiased Gradient Estimation in Unrolled Computation Graphs with
  Persistent Evolution Strategies", ICML 2021. https://arxiv.org/abs/2112.13835
  Li, Harrison, Sohl-Dickstein, Smith, Metz, "Variance-Reduced Gradient Estimation via
  Noise-Reuse in Online Evolution Strategies", NeurIPS 2023. https://arxiv.org/abs/2304.12180
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from meta_train import devices, population, sampler
from meta_train.run import Generation, Plan, Run


def plan(run: Run, generation: int, carry: Plan | None) -> Plan:
    """``carry`` (the running trajectory) or a new trajectory, with ``generation``'s keys."""
    # Tag 0 here, tag 1 in `begin`: the two never share a key.
    k_ask, k_tell = jax.random.split(
        jax.random.fold_in(jax.random.fold_in(run.run_key, generation), 0))
    carry = carry if carry is not None else begin(run, generation)
    return carry._replace(generation=generation, ask_key=k_ask, tell_key=k_tell)


def begin(run: Run, start: int) -> Plan:
    """Tasks, horizon and keys of the trajectory begun at generation ``start``; no states yet."""
    key = jax.random.fold_in(jax.random.fold_in(run.run_key, start), 1)
    k_tasks, k_horizon, k_data = jax.random.split(key, 3)
    task_list = run.task_source(run.config, k_tasks, start)
    keys = [tuple(jax.random.split(jax.random.fold_in(k_data, m))) for m in range(len(task_list))]
    horizon = sampler.horizon(run.config, k_horizon)
    return Plan(start, start, task_list, horizon, keys, None, None,
                run.es_params.replace(T=jnp.asarray(horizon)), [])


def evaluate(run: Run, pop, plan: Plan) -> Generation:
    """Advance every member's run on every task of ``plan`` by one chunk."""
    chunk = run.config.chunk
    states = plan.states or [
        run.runner.init(task, pop, plan.horizon, run.shared(init_key))
        for task, (init_key, _) in zip(plan.tasks, plan.keys, strict=True)
    ]
    advanced, fitness = [], []
    for task, state, (_, data_key) in zip(plan.tasks, states, plan.keys, strict=True):
        state, sums = run.runner.advance(task, pop, state, run.shared(data_key), plan.horizon, 0)
        advanced.append(state)
        fitness.append(sums / chunk)
    done = (plan.generation - plan.start + 1) * chunk >= plan.horizon
    steps = run.config.population * len(plan.tasks) * chunk
    return Generation(fitness, steps, None if done else plan._replace(states=advanced))


def abstract_plan(run: Run, start: int, es_state) -> Plan:
    """The trajectory begun at ``start`` with the shapes, dtypes and shardings of its states, so
    a checkpoint can restore them."""
    trajectory = begin(run, start)
    pop, _ = jax.eval_shape(run.es.ask, jax.random.key(0), es_state, trajectory.es_params)
    keys = run.shared(jax.random.key(0))
    sharding = devices.sharded(run.mesh)
    states = []
    for task in trajectory.tasks:
        fn = population.init_members(task, run.learner, run.mesh)
        shapes = jax.eval_shape(fn, pop, jnp.int32(trajectory.horizon), keys)
        states.append(jax.tree.map(
            lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), shapes))
    return trajectory._replace(states=states)
