"""Truncated ES (``pes``, ``nres``): members' runs advance one ``chunk`` of steps per generation.

A trajectory begun at generation s draws its tasks, horizon T and the members' shared keys from
``fold_in(fold_in(run_key, s), 1)``. Each generation asks the strategy for a population, advances
every member's run by ``chunk`` steps from where the previous generation left it, and uses the
chunk's mean normalised loss as fitness; after T / chunk generations the trajectory ends and the
next generation begins a new one. PES accumulates each member's perturbations over the trajectory
(unbiased for the whole unroll); NRES reuses one perturbation for the whole trajectory (lower
variance). Both are evosax strategies; here only the unroll is scheduled.

All tasks of a trajectory share its horizon and start, and every member trains on each: with
NRES the same directions serve every generation of a 10,000-step trajectory. With ``stagger``
(`meta_train.staggered`, which reuses `advance` and `abstract_states` from here) each task has
its own slot of members, trajectory and perturbations instead, the slots out of phase from a
random first truncation.

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
    k_ask, k_tell = generation_keys(run, generation)
    carry = carry if carry is not None else begin(run, generation)
    return carry._replace(generation=generation, ask_key=k_ask, tell_key=k_tell)


def generation_keys(run: Run, generation: int) -> tuple[jax.Array, jax.Array]:
    """``(ask_key, tell_key)`` of ``generation``."""
    # Tag 0 here, tag 1 for trajectories (`begin`): the two never share a key.
    return tuple(jax.random.split(
        jax.random.fold_in(jax.random.fold_in(run.run_key, generation), 0)))


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
    states = plan.states or [None] * len(plan.tasks)
    advanced, fitness = zip(*(
        advance(run, task, pop, plan.horizon, keys, state)
        for task, keys, state in zip(plan.tasks, plan.keys, states, strict=True)
    ), strict=True)
    done = (plan.generation - plan.start + 1) * run.config.chunk >= plan.horizon
    steps = run.config.population * len(plan.tasks) * run.config.chunk
    return Generation(list(fitness), steps,
                      None if done else plan._replace(states=list(advanced)))


def advance(run: Run, task, pop, horizon: int, keys: tuple[jax.Array, jax.Array], state=None):
    """One chunk more of the runs of ``pop`` (``[n, ...]``, sharded) on ``task``, from fresh
    runs of ``horizon`` steps when ``state`` is None: ``(states, [n] chunk mean loss)``."""
    init_key, data_key = keys
    if state is None:
        state = run.runner.init(task, pop, horizon, run.shared(init_key))
    state, sums = run.runner.advance(task, pop, state, run.shared(data_key), horizon, 0)
    return state, sums / run.config.chunk


def abstract_plan(run: Run, start: int, es_state) -> Plan:
    """The trajectory begun at ``start`` with the shapes, dtypes and shardings of its states, so
    a checkpoint can restore them."""
    trajectory = begin(run, start)
    pop, _ = jax.eval_shape(run.es.ask, jax.random.key(0), es_state, trajectory.es_params)
    return trajectory._replace(states=abstract_states(run, trajectory.tasks, pop))


def abstract_states(run: Run, task_list: list, pop) -> list:
    """Per task, the shapes, dtypes and shardings of fresh runs of ``pop`` (abstract)."""
    keys = run.shared(jax.random.key(0))
    sharding = devices.sharded(run.mesh)
    states = []
    for task in task_list:
        fn = population.init_members(task, run.learner, run.mesh)
        shapes = jax.eval_shape(fn, pop, jnp.int32(0), keys)  # shapes do not depend on T
        states.append(jax.tree.map(
            lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), shapes))
    return states
