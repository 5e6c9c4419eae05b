"""Evolution-strategy estimators (through evosax) and fitness shaping across tasks.

evosax strategies shape a single fitness vector. Losses of different tasks live on different
scales, so here fitness is ``[tasks, population]``: it is shaped within each task (centred ranks,
SNES weights or the sign of the antithetic difference), averaged over tasks, and only then handed
to the strategy, whose own shaping is the identity. A non-finite loss ranks worst (a task where
every member failed contributes nothing), so a diverging inner run can never put a NaN into the
meta-update. With ``stagger`` the members are split into slots, one per task, shaped within their
slot; `Staggered` resets each slot's perturbations when it begins a trajectory.

References:
  Lange, "evosax: JAX-based Evolution Strategies", 2022. https://arxiv.org/abs/2212.04180
  Salimans, Ho, Chen, Sidor, Sutskever, "Evolution Strategies as a Scalable Alternative to
  Reinforcement Learning", 2017. https://arxiv.org/abs/1703.03864
  Sehnke et al., "Parameter-exploring policy gradients", Neural Networks 23(4), 2010.
  Schaul, Glasmachers, Schmidhuber, "High Dimensions and Heavy Tails for Natural Evolution
  Strategies", GECCO 2011.
  Vicol, Metz, Sohl-Dickstein, "Unbiased Gradient Estimation in Unrolled Computation Graphs with
  Persistent Evolution Strategies", ICML 2021. https://arxiv.org/abs/2112.13835
  Li, Harrison, Sohl-Dickstein, Smith, Metz, "Variance-Reduced Gradient Estimation via
  Noise-Reuse in Online Evolution Strategies", NeurIPS 2023. https://arxiv.org/abs/2304.12180
  Metz et al., "VeLO: Training Versatile Learned Optimizers by Scaling Up", 2022.
  https://arxiv.org/abs/2211.09760
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from evosax.core.fitness_shaping import (
    centered_rank_fitness_shaping_fn,
    identity_fitness_shaping_fn,
    weights_fitness_shaping_fn,
)

from meta_train.config import TRUNCATED, Config


def outer_optimizer(config: Config) -> optax.GradientTransformation:
    """Adam on the ES gradient estimate, clipped to ``config.clip`` global norm first."""
    return optax.chain(optax.clip_by_global_norm(config.clip), optax.adam(config.learning_rate))


def make_strategy(config: Config, template):
    """The evosax strategy named by ``config.estimator`` and its params.

    Args:
      config: the run's config (estimator, population, sigma, outer optimizer, chunk).
      template: a meta-parameter pytree fixing the search space's structure.

    Returns:
      ``(strategy, params)``; the strategy minimises the (already shaped) fitness it is told.
      With ``config.stagger``, a `Staggered` wrapper of the truncated strategy and `SlotParams`.
    """
    from evosax.algorithms import PGPE, SNES, NoiseReuseES, Open_ES, PersistentES

    common = dict(
        population_size=config.members, solution=template,
        optimizer=outer_optimizer(config), fitness_shaping_fn=identity_fitness_shaping_fn,
    )
    schedule = optax.constant_schedule(config.sigma)
    if config.estimator == "open_es":
        es = Open_ES(use_antithetic_sampling=True, std_schedule=schedule, **common)
        return es, es.default_params
    if config.estimator in TRUNCATED:
        cls = {"pes": PersistentES, "nres": NoiseReuseES}[config.estimator]
        es = cls(std_schedule=schedule, **common)
        params = es.default_params.replace(K=config.chunk)
        if not config.stagger:
            return es, params
        # T out of reach: the wrapper resets slots, evosax never resets every member at once.
        params = params.replace(T=jnp.iinfo(jnp.int32).max)
        return (Staggered(es, config.tasks_per_generation),
                SlotParams(params, np.zeros(config.tasks_per_generation, bool)))
    cls = {"pgpe": PGPE, "snes": SNES}[config.estimator]
    es = cls(**common)
    return es, es.default_params.replace(std_init=jnp.asarray(config.sigma, jnp.float32))


def shape_fitness(fitness: jax.Array, config: Config, es_params,
                  weights: jax.Array | None = None) -> jax.Array:
    """Shape ``[tasks, population]`` fitness (lower is better) within tasks; average over tasks.

    With ``config.stagger`` the rows are slots, each of its own members: each row is shaped
    within itself, multiplied by its entry of ``weights`` (``[slots]``; 0 leaves a slot out of
    this generation's estimate) and goes to its members (`slot_members`), with no average.

    Returns:
      ``[config.members]`` finite shaped fitness in the convention of ``config.estimator``.
    """
    shaped = shape_per_task(fitness, config, es_params)
    if not config.stagger:
        return jnp.mean(shaped, axis=0)
    return to_members(shaped if weights is None else shaped * weights[:, None])


def shape_per_task(fitness: jax.Array, config: Config, es_params) -> jax.Array:
    """``[tasks, population]`` fitness shaped within each row; a row where every member failed
    (non-finite) is all zeros."""
    failed = ~jnp.isfinite(fitness)
    clean = jnp.where(failed, jnp.inf, fitness)
    if config.shaping == "sign":
        per_task = jax.vmap(_antithetic_sign)(clean)
    elif config.estimator == "snes":
        per_task = weights_fitness_shaping_fn(None, clean, None, es_params)
    else:
        per_task = centered_rank_fitness_shaping_fn(None, clean, None, None)
    return jnp.where(jnp.all(failed, axis=-1, keepdims=True), 0.0, per_task)


def _antithetic_sign(fitness: jax.Array) -> jax.Array:
    """``±sign(f+ - f-) / 2`` for members ``[+eps_1..+eps_k, -eps_1..-eps_k]``; inf loses."""
    plus, minus = jnp.split(fitness, 2)
    diff = jnp.where(plus == minus, 0.0, jnp.where(plus > minus, 1.0, -1.0))
    return 0.5 * jnp.concatenate([diff, -diff])


def slot_members(slots: int, population: int) -> np.ndarray:
    """``[slots, population]``: the members each slot owns in a strategy of ``slots *
    population`` members.

    evosax draws ``N`` members as ``[+eps_1..+eps_{N/2}, -eps_1..-eps_{N/2}]``. Slot ``s`` owns
    the pairs of block ``s`` (indices ``s * population/2`` up to ``(s + 1) * population/2``)
    and their twins, in that order: each row is itself ``[+eps..., -eps...]``, so antithetic
    pairs stay inside a slot and shape within it as a task's members do.
    """
    half = population // 2
    block = np.arange(slots)[:, None] * half + np.arange(half)
    return np.concatenate([block, block + slots * half], axis=1)


def to_members(per_slot: jax.Array) -> jax.Array:
    """``[slots, population]`` values as ``[slots * population]`` in member order."""
    slots, population = per_slot.shape
    return jnp.zeros(slots * population, per_slot.dtype).at[
        slot_members(slots, population)].set(per_slot)


class SlotParams(NamedTuple):
    """Params of a `Staggered` strategy.

    Attributes:
      strategy: the wrapped strategy's params, with ``T`` out of reach.
      begins: ``[slots]`` bool, the slots whose members begin a trajectory at this ask.
    """

    strategy: Any
    begins: jax.Array


@dataclasses.dataclass(frozen=True, eq=False)
class Staggered:
    """A truncated evosax strategy (`PersistentES`, `NoiseReuseES`) whose members are split into
    slots (`slot_members`) that begin their trajectories at different generations.

    evosax resets every member at once, when its inner step counter reaches ``T``; here ``T`` is
    out of reach and `ask` resets only the members of the slots that begin: NRES draws them fresh
    perturbations while the others keep theirs, PES zeroes their accumulated perturbations.
    Everything else is the wrapped strategy's own: the gradient ``fitness @ pert / std**2 / N``
    and the outer optimizer are unchanged.

    Attributes:
      strategy: the wrapped ``PersistentES`` or ``NoiseReuseES`` of ``slots * population``
        members.
      slots: the number of slots.
    """

    strategy: Any
    slots: int

    def init(self, key: jax.Array, mean, params: SlotParams):
        return self.strategy.init(key, mean, params.strategy)

    def ask(self, key: jax.Array, state, params: SlotParams):
        """``(population [N, ...], state)``, the members of ``params.begins`` reset first."""
        from evosax.algorithms import PersistentES

        inner = params.strategy
        per_slot = self.strategy.population_size // self.slots
        begins = to_members(jnp.repeat(params.begins[:, None], per_slot, axis=1))[:, None]
        if isinstance(self.strategy, PersistentES):
            state = state.replace(pert_accum=jnp.where(begins, 0.0, state.pert_accum))
            return self.strategy.ask(key, state, inner)
        # NRES draws perturbations when its counter is 0 and reuses `state.pert` otherwise: draw
        # fresh ones for every member, keep them for the slots that begin, then ask with a
        # non-zero counter so the population is mean + the merged perturbations.
        _, drawn = self.strategy.ask(key, state.replace(inner_step_counter=0), inner)
        merged = state.replace(pert=jnp.where(begins, drawn.pert, state.pert),
                               inner_step_counter=1)
        population, asked = self.strategy.ask(key, merged, inner)
        return population, asked.replace(inner_step_counter=state.inner_step_counter)

    def tell(self, key: jax.Array, population, fitness: jax.Array, state, params: SlotParams):
        return self.strategy.tell(key, population, fitness, state, params.strategy)

    def get_mean(self, state):
        return self.strategy.get_mean(state)
