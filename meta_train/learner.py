"""What meta-training optimises: meta-parameters and the optimizer they define.

References:
  Metz et al., "VeLO: Training Versatile Learned Optimizers by Scaling Up", 2022.
  https://arxiv.org/abs/2211.09760
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

MetaParams = Any


class Learner(NamedTuple):
    """A family of optimizers indexed by meta-parameters.

    Attributes:
      name: identifies the family in logs and checkpoints.
      init: ``init(key) -> meta_params``, the starting point of meta-training.
      optimizer: ``optimizer(meta_params, num_steps) -> GradientTransformationExtraArgs``;
        ``meta_params`` is traced (vmapped over the population), ``num_steps`` is the horizon.
      config: the learned optimizer's own config (saved with exported checkpoints), or None.
    """

    name: str
    init: Callable[[jax.Array], MetaParams]
    optimizer: Callable[[MetaParams, int], optax.GradientTransformationExtraArgs]
    config: Any = None


@functools.cache
def lopt_learner(preset: str) -> Learner:
    """velo's learned optimizer at `velo.lopt.preset(preset)` (cached: compiled code is reused)."""
    from velo import lopt

    if preset not in lopt.PRESETS:
        raise ValueError(f"unknown learned-optimizer preset lopt={preset!r}; choose one of: "
                         f"{', '.join(lopt.PRESETS)}")
    config = lopt.preset(preset)

    def optimizer(meta_params, num_steps):
        return lopt.optax_lopt(num_steps, meta_params=meta_params, config=config)

    return Learner(f"velo.lopt:{preset}", functools.partial(lopt.init_meta_params, config=config),
                   optimizer, config)


@functools.cache
def adam_learner(learning_rate: float = 1e-3) -> Learner:
    """`optax.adam` whose log learning rate is the only meta-parameter, from ``learning_rate``.

    The cheapest learner: the benchmark's reference point (each member runs its own Adam) and a
    fast stand-in for testing the meta-training machinery.
    """

    def init(key):
        del key
        return {"log_lr": jnp.log(jnp.asarray(learning_rate, jnp.float32))}

    def optimizer(meta_params, num_steps):
        del num_steps
        return optax.with_extra_args_support(optax.adam(jnp.exp(meta_params["log_lr"])))

    return Learner(f"adam:{learning_rate}", init, optimizer)
