"""Staggered truncated ES (``stagger=True``): slots that begin and end trajectories apart.

There are S = ``tasks_per_generation`` slots, each owning P = ``population`` members of the
strategy's S * P (antithetic pairs stay inside a slot, `meta_train.es.slot_members`). Each slot
runs its own trajectory: a task, a horizon T and the members' keys drawn from
``fold_in(fold_in(fold_in(run_key, start), 1), slot)``, its own inner states and perturbations;
its members train only on its task, one chunk per generation. When a slot's trajectory ends, the
next generation begins a new one for that slot alone, and `meta_train.es.Staggered` resets only
that slot's perturbations (NRES: fresh draws; PES: a zero accumulator). Fitness is shaped within
each slot. The cost per generation, S * P * chunk inner steps, is that of P members on S tasks.

The first trajectory of each slot (begun at generation 0) ends after a random number of chunks,
uniform in 1..T/chunk and drawn from that trajectory's key; every later one runs its full T. So
the slots start out of phase and stay so, as learned_optimization's independent workers do.
learned_optimization desynchronises by starting the inner step counter at a random offset with
fresh parameters (``random_initial_iteration_offset``); truncating the first trajectory instead
needs no state that pretends to have trained, and the learned optimizer always sees a run from
step 0.

References:
  learned_optimization (google/learned_optimization): truncated training with many workers,
  ``random_initial_iteration_offset``.
  Metz et al., "VeLO: Training Versatile Learned Optimizers by Scaling Up", 2022 (phase 1: a
  random initial offset of up to 10k steps). https://arxiv.org/abs/2211.09760
  Moudgil, Knyazev, Belilovsky, "Celo2", ICLR 2026 (PES, ``random_initial_iteration_offset``
  2000). https://arxiv.org/abs/2602.19142
  Li, Harrison, Sohl-Dickstein, Smith, Metz, "Variance-Reduced Gradient Estimation via
  Noise-Reuse in Online Evolution Strategies", NeurIPS 2023. https://arxiv.org/abs/2304.12180
  Vicol, Metz, Sohl-Dickstein, "Unbiased Gradient Estimation in Unrolled Computation Graphs with
  Persistent Evolution Strategies", ICML 2021. https://arxiv.org/abs/2112.13835
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp

from meta_train import devices, sampler, truncated
from meta_train.es import slot_members
from meta_train.run import Generation, Plan, Run
from tasks import Task


def plan(run: Run, generation: int, carry: Plan | None) -> Plan:
    """``generation``'s plan: the slots of ``carry`` whose trajectory goes on, and a new
    trajectory (no states yet) for every other slot.

    The plan holds per slot ``start``, ``horizon``, ``tasks``, ``keys`` and ``states`` (tuples
    and lists of S); ``es_params.begins`` marks the slots that begin here.
    """
    slots = []
    for slot in range(run.config.tasks_per_generation):
        if carry is not None and generation < carry.start[slot] + length(
                run, slot, carry.start[slot], carry.horizon[slot]):
            slots.append((carry.start[slot], carry.tasks[slot], carry.horizon[slot],
                          carry.keys[slot], carry.states[slot]))
        else:
            slots.append((generation, *begin(run, slot, generation), None))
    return _plan(run, generation, slots)


def begin(run: Run, slot: int, start: int) -> tuple[Task, int, tuple[jax.Array, jax.Array]]:
    """``(task, horizon, (init_key, data_key))`` of ``slot``'s trajectory begun at ``start``:
    pool entry ``slot`` with ``slot_per_pool_entry``, else a draw of the run's task source."""
    k_task, k_horizon, k_data, _ = _keys(run, slot, start)
    if run.config.slot_per_pool_entry:
        task = sampler.task_pool(run.config, start)[slot]
    else:
        one = dataclasses.replace(run.config, tasks_per_generation=1)
        task = run.task_source(one, k_task, start)[0]
    return task, sampler.horizon(run.config, k_horizon), tuple(jax.random.split(k_data))


def length(run: Run, slot: int, start: int, horizon: int) -> int:
    """Generations (chunks) of ``slot``'s trajectory begun at ``start``: ``horizon / chunk``,
    except the slot's first (``start`` 0), which ends after a uniform 1..horizon/chunk."""
    chunks = horizon // run.config.chunk
    if start:
        return chunks
    return 1 + int(jax.random.randint(_keys(run, slot, start)[3], (), 0, chunks))


def evaluate(run: Run, pop, plan: Plan) -> Generation:
    """Advance each slot's members on its task by one chunk (fresh runs where it begins)."""
    advanced, fitness = zip(*(
        truncated.advance(run, task, members, horizon, keys, state)
        for task, members, horizon, keys, state in zip(
            plan.tasks, slot_populations(run, pop), plan.horizon, plan.keys, plan.states,
            strict=True)
    ), strict=True)
    chunk = run.config.chunk
    reached = [(plan.generation - start + 1) * chunk for start in plan.start]
    tail = [int(steps > (1.0 - run.config.fitness_tail) * horizon)
            for steps, horizon in zip(reached, plan.horizon, strict=True)]
    return Generation(list(fitness), run.config.members * chunk,
                      plan._replace(states=list(advanced)),
                      {"horizons": list(plan.horizon), "trajectory_steps": reached,
                       "fitness_slots": tail},
                      jnp.asarray(tail, jnp.float32))


def slot_populations(run: Run, pop) -> tuple:
    """Per slot, its members of ``pop`` (``[S * P, ...]``) as ``[P, ...]``, sharded."""
    return run.cache(("slots", run.config.tasks_per_generation, run.config.population,
                      run.mesh), _split(run), pop, out_shardings=devices.sharded(run.mesh))


def abstract_plan(run: Run, starts: list[int], es_state) -> Plan:
    """The slots' trajectories begun at ``starts`` with the shapes, dtypes and shardings of
    their states, so a checkpoint can restore them."""
    slots = [(start, *begin(run, slot, start), None) for slot, start in enumerate(starts)]
    abstract = _plan(run, 0, slots)
    pop, _ = jax.eval_shape(run.es.ask, jax.random.key(0), es_state, abstract.es_params)
    members = jax.eval_shape(_split(run), pop)[0]
    return abstract._replace(states=truncated.abstract_states(run, abstract.tasks, members))


def _plan(run: Run, generation: int, slots: list[tuple]) -> Plan:
    """The plan of ``slots``, ``(start, task, horizon, keys, states)`` each."""
    starts, task_list, horizons, keys, states = (list(field) for field in zip(*slots,
                                                                               strict=True))
    k_ask, k_tell = truncated.generation_keys(run, generation)
    begins = jnp.asarray([start == generation for start in starts])
    return Plan(generation, tuple(starts), task_list, tuple(horizons), keys, k_ask, k_tell,
                run.es_params._replace(begins=begins), states)


def _keys(run: Run, slot: int, start: int) -> jax.Array:
    """``[4]`` keys of ``slot``'s trajectory begun at ``start``: task, horizon, data, length."""
    # Tag 1, as `truncated.begin`: never a generation's ask and tell keys (tag 0).
    key = jax.random.fold_in(jax.random.fold_in(run.run_key, start), 1)
    return jax.random.split(jax.random.fold_in(key, slot), 4)


def _split(run: Run) -> Callable:
    """``fn(pop) -> per slot, its members`` (`meta_train.es.slot_members`)."""
    members = slot_members(run.config.tasks_per_generation, run.config.population)
    return lambda pop: tuple(jax.tree.map(lambda x, row=row: x[row], pop) for row in members)
