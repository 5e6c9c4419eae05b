"""Full-unroll ES: every generation trains each member from scratch for a whole horizon.

Generation g draws its tasks, one horizon T and the members' shared keys from
``fold_in(run_key, g)``; every member trains on every task for T steps (in chunks, by programs
compiled once per task: T is traced), and its fitness is the mean normalised training loss over
the last ``fitness_tail`` of the unroll. Unbiased for the whole horizon, at the price of a full
unroll per meta-update. Serves ``open_es``, ``pgpe`` and ``snes``.

References:
  Salimans, Ho, Chen, Sidor, Sutskever, "Evolution Strategies as a Scalable Alternative to
  Reinforcement Learning", 2017. https://arxiv.org/abs/1703.03864
  Sehnke et al., "Parameter-exploring policy gradients", Neural Networks, 2010.
  Schaul, Glasmachers, Schmidhuber, "High Dimensions and Heavy Tails for Natural Evolution
  Strategies", GECCO 2011.
  Metz et al., "VeLO: Training Versatile Learned Optimizers by Scaling Up", 2022.
  https://arxiv.org/abs/2211.09760
"""

from __future__ import annotations

import jax

from meta_train import sampler
from meta_train.run import Generation, Plan, Run
from meta_train.validation import tail_steps


def plan(run: Run, generation: int, carry: Plan | None = None) -> Plan:
    """Tasks, horizon and keys of ``generation``; full-unroll ES carries nothing over."""
    del carry
    key = jax.random.fold_in(run.run_key, generation)
    k_tasks, k_horizon, k_ask, k_tell, k_data = jax.random.split(key, 5)
    task_list = run.task_source(run.config, k_tasks, generation)
    keys = [tuple(jax.random.split(jax.random.fold_in(k_data, m))) for m in range(len(task_list))]
    return Plan(generation, generation, task_list, sampler.horizon(run.config, k_horizon), keys,
                k_ask, k_tell, run.es_params, [])


def evaluate(run: Run, pop, plan: Plan) -> Generation:
    """Train ``pop`` (``[N, ...]`` meta-parameters, sharded) on every task of ``plan``."""
    tail = tail_steps(run.config, plan.horizon)
    fitness = [
        run.runner.fitness(task, pop, run.shared(init_key), run.shared(data_key), plan.horizon,
                           tail)
        for task, (init_key, data_key) in zip(plan.tasks, plan.keys, strict=True)
    ]
    return Generation(fitness, run.config.population * len(plan.tasks) * plan.horizon, None)
