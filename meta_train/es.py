"""Evolution-strategy estimators (through evosax) and fitness shaping across tasks.

evosax strategies shape a single fitness vector. Losses of different tasks live on different
scales, so here fitness is ``[tasks, population]``: it is shaped within each task (centred ranks,
SNES weights or the sign of the antithetic difference), averaged over tasks, and only then handed
to the strategy, whose own shaping is the identity. A non-finite loss ranks worst (a task where
every member failed contributes nothing), so a diverging inner run can never put a NaN into the
meta-update.

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

import jax
import jax.numpy as jnp
import optax
from evosax.core.fitness_shaping import (
    centered_rank_fitness_shaping_fn,
    identity_fitness_shaping_fn,
    weights_fitness_shaping_fn,
)

from meta_train.config import Config


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
    """
    from evosax.algorithms import PGPE, SNES, NoiseReuseES, Open_ES, PersistentES

    common = dict(
        population_size=config.population, solution=template,
        optimizer=outer_optimizer(config), fitness_shaping_fn=identity_fitness_shaping_fn,
    )
    schedule = optax.constant_schedule(config.sigma)
    if config.estimator == "open_es":
        es = Open_ES(use_antithetic_sampling=True, std_schedule=schedule, **common)
        return es, es.default_params
    if config.estimator == "pes":
        es = PersistentES(std_schedule=schedule, **common)
        return es, es.default_params.replace(K=config.chunk)
    if config.estimator == "nres":
        es = NoiseReuseES(std_schedule=schedule, **common)
        return es, es.default_params.replace(K=config.chunk)
    cls = {"pgpe": PGPE, "snes": SNES}[config.estimator]
    es = cls(**common)
    return es, es.default_params.replace(std_init=jnp.asarray(config.sigma, jnp.float32))


def shape_fitness(fitness: jax.Array, config: Config, es_params) -> jax.Array:
    """Shape ``[tasks, population]`` fitness (lower is better) within tasks; average over tasks.

    Returns:
      ``[population]`` finite shaped fitness in the convention of ``config.estimator``.
    """
    failed = ~jnp.isfinite(fitness)
    clean = jnp.where(failed, jnp.inf, fitness)
    if config.shaping == "sign":
        per_task = jax.vmap(_antithetic_sign)(clean)
    elif config.estimator == "snes":
        per_task = weights_fitness_shaping_fn(None, clean, None, es_params)
    else:
        per_task = centered_rank_fitness_shaping_fn(None, clean, None, None)
    per_task = jnp.where(jnp.all(failed, axis=-1, keepdims=True), 0.0, per_task)
    return jnp.mean(per_task, axis=0)


def _antithetic_sign(fitness: jax.Array) -> jax.Array:
    """``±sign(f+ - f-) / 2`` for members ``[+eps_1..+eps_k, -eps_1..-eps_k]``; inf loses."""
    plus, minus = jnp.split(fitness, 2)
    diff = jnp.where(plus == minus, 0.0, jnp.where(plus > minus, 1.0, -1.0))
    return 0.5 * jnp.concatenate([diff, -diff])
