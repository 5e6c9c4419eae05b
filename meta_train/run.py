"""The pieces every generation of one run shares, and the two records a generation passes on.

A generation is ask -> evaluate -> tell. `Run.ask` samples the population from the ES state; an
estimator (`meta_train.full`, `meta_train.truncated` or `meta_train.staggered`) turns a `Plan`
(tasks, horizon, keys) and the population into a `Generation` (fitness per task); `Run.tell`
shapes that fitness and moves the ES state. Ask and tell are compiled once per strategy and mesh.

All randomness of generation g derives from ``fold_in(run_key, g)``: a resumed run repeats
exactly what an uninterrupted one would have done.

References:
  Lange, "evosax: JAX-based Evolution Strategies", 2022. https://arxiv.org/abs/2212.04180
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from meta_train import devices, population
from meta_train.compiled import CompileCache
from meta_train.config import Config
from meta_train.es import make_strategy, shape_fitness
from meta_train.learner import Learner
from meta_train.stop import never
from tasks import Task

TaskSource = Callable[[Config, jax.Array, int], list[Task]]
"""``source(config, key, generation) -> tasks``: the training tasks of one generation (or of a
truncated-ES trajectory begun there); `meta_train.sampler.generation_tasks` by default."""

_STRATEGY_FIELDS = ("estimator", "members", "stagger", "sigma", "learning_rate", "clip",
                    "chunk")
_STRATEGIES: dict = {}


class Plan(NamedTuple):
    """What one generation trains on, and with which keys.

    Attributes:
      generation: the generation (0-based) this plan is for.
      start: the generation that drew ``tasks``, ``horizon`` and ``keys``: ``generation`` itself
        for full-unroll ES, the trajectory's first generation for truncated ES; staggered, per
        slot.
      tasks: the task instances; every member trains on each (staggered: one per slot, its
        members train on it).
      horizon: total inner steps of every run, a multiple of ``chunk``; staggered, per slot.
      keys: per task, ``(init_key, data_key)``, shared by all members.
      ask_key: the strategy's key for sampling the population.
      tell_key: the strategy's key for its update.
      es_params: the strategy's params (truncated ES: with ``T = horizon``; staggered:
        `meta_train.es.SlotParams` with the slots that begin).
      states: truncated ES: per task, the members' `TrainState`s (leading population axis)
        continued from the previous generation; empty at a trajectory's start and in full ES;
        staggered, None for a slot that begins.
    """

    generation: int
    start: int
    tasks: list[Task]
    horizon: int
    keys: list[tuple[jax.Array, jax.Array]]
    ask_key: jax.Array | None
    tell_key: jax.Array | None
    es_params: Any
    states: list[Any]


class Generation(NamedTuple):
    """What an estimator's ``evaluate`` returns.

    Attributes:
      fitness: per task (staggered: per slot, of its members), ``[population]`` mean
        normalised training loss (lower is better), sharded over the ``pop`` axis.
      steps: inner model steps trained by this generation, over all members and tasks.
      carry: the plan the next generation continues (truncated ES inside a trajectory), or None.
      extra: more fields for the generation's log record (staggered: each slot's horizon and the
        inner step its runs reached), or None.
      weights: staggered: ``[slots]`` factor on each slot's shaped fitness (0 = not in the
        estimate, `Config.fitness_tail`); None = all 1.
    """

    fitness: list[jax.Array]
    steps: int
    carry: Plan | None
    extra: dict | None = None
    weights: jax.Array | None = None


@dataclasses.dataclass(frozen=True)
class Run:
    """What every generation of one run uses.

    Attributes:
      config: the run's config.
      learner: what is meta-trained.
      mesh: the ``pop`` mesh the population is sharded over.
      cache: compiled programs, shared between runs of one process.
      es: the evosax strategy.
      es_params: its params (host arrays).
      run_key: the key every generation's keys fold in from.
      runner: trains members on tasks.
      task_source: draws each generation's tasks.
    """

    config: Config
    learner: Learner
    mesh: Mesh
    cache: CompileCache
    es: Any
    es_params: Any
    run_key: jax.Array
    runner: population.Runner
    task_source: TaskSource

    def initial_state(self):
        """The replicated ES state of generation 0: the learner's init as the mean."""
        init_key, es_key, _ = jax.random.split(jax.random.key(self.config.seed), 3)
        state = self.es.init(es_key, self.learner.init(init_key), self.es_params)
        return devices.replicate(state, self.mesh)

    def ask(self, plan: Plan, es_state):
        """``(population [N, ...] sharded, ES state after asking)`` for ``plan``."""
        shardings = (devices.sharded(self.mesh), devices.replicated(self.mesh))
        return self.cache(("ask", self.es, self.mesh), self.es.ask,
                          devices.replicate(plan.ask_key, self.mesh), es_state, plan.es_params,
                          out_shardings=shardings)

    def tell(self, plan: Plan, pop, fitness: list[jax.Array], es_state, weights=None):
        """``(new ES state, [tasks, N] fitness, norm of the mean's update)``, all replicated;
        ``weights`` as `Generation.weights`."""
        config, es = self.config, self.es
        weights = jnp.ones(len(fitness)) if weights is None else jnp.asarray(weights)

        def tell(key, pop, fitness, state, params, weights):
            fitness = jnp.stack(fitness)
            shaped = shape_fitness(fitness, config, params, weights)
            new, _ = es.tell(key, pop, shaped, state, params)
            return new, fitness, jnp.linalg.norm(new.mean - state.mean)

        return self.cache(("tell", es, config.shaping, len(fitness), self.mesh), tell,
                          devices.replicate(plan.tell_key, self.mesh), pop, tuple(fitness),
                          es_state, plan.es_params, devices.replicate(weights, self.mesh),
                          out_shardings=devices.replicated(self.mesh))

    def shared(self, key: jax.Array) -> jax.Array:
        """``[population]`` copies of ``key`` sharded like the population (staggered: like a
        slot's members)."""
        return devices.shared_keys(key, self.mesh, self.config.population)

    def key_record(self, generation: int) -> list[int]:
        """The PRNG key of ``generation`` as checkpoints record it: a resume must re-derive it."""
        key = jax.random.fold_in(self.run_key, generation)
        return np.asarray(jax.random.key_data(key)).tolist()


def make_run(config: Config, learner: Learner, mesh: Mesh, cache: CompileCache,
             task_source: TaskSource, on_chunk: Callable = never) -> Run:
    """The `Run` of ``config``; the strategy is shared by runs that differ only elsewhere.

    ``on_chunk`` is called with the outputs of every compiled chunk (`population.Runner`)."""
    strategy_key = (learner, *(getattr(config, f) for f in _STRATEGY_FIELDS))
    if strategy_key not in _STRATEGIES:
        _STRATEGIES[strategy_key] = make_strategy(config, learner.init(jax.random.key(0)))
    es, es_params = _STRATEGIES[strategy_key]
    run_key = jax.random.split(jax.random.key(config.seed), 3)[2]
    runner = population.Runner(learner, mesh, cache, config.chunk, on_chunk)
    return Run(config, learner, mesh, cache, es, jax.tree.map(jnp.asarray, es_params), run_key,
               runner, task_source)
