"""Rule "v1": VeLO's update rule, with the step relative to the tensor's scale.

For a tensor with parameters ``p``, MLP outputs ``(d, m)`` per element and LSTM step output
``s``, the update is::

    -exp(s) * (clip(d * exp(mag_mult * m), +-max_direction) * max(RMS(p), floor) + wd * p)

Nothing bounds ``exp(s)``: the LSTM sets each tensor's step freely (see `rule_v2` for a
bounded rule).

References:
  Metz et al., "VeLO: Training Versatile Learned Optimizers by Scaling Up", 2022,
  https://arxiv.org/abs/2211.09760
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from velo.lopt import fastmath
from velo.lopt.config import Config
from velo.lopt.features import ElementInputs, element_index
from velo.lopt.rule import Rule, decayed

# exp(mag_mult * m) is capped at exp(10) before the clip, so it cannot overflow to inf * 0.
_MAX_LOG_MAGNITUDE = 10.0


def tensor_steps(step_output: jax.Array, count: jax.Array, num_steps, config: Config) -> jax.Array:
    """``[n]`` step sizes exp(s): the LSTM's log step, unbounded."""
    del count, num_steps, config
    return jnp.exp(step_output)


def tensor_update(
    outputs: list[jax.Array],
    x: ElementInputs,
    feature_rms: jax.Array,
    init_rms: jax.Array,
    step: jax.Array,
    weight_decay,
    config: Config,
) -> jax.Array:
    """``-step * (clip(d * exp(mag_mult * m)) * max(RMS(p), floor) + weight_decay * p)``."""
    del init_rms
    d, m = outputs
    magnitude = fastmath.exp(jnp.minimum(config.mag_mult * m, _MAX_LOG_MAGNITUDE))
    direction = jnp.clip(d * magnitude, -config.max_direction, config.max_direction)
    scale = jnp.maximum(feature_rms[element_index("p")], config.param_scale_floor)
    return -step * decayed(direction * scale, x.p, weight_decay)


RULE = Rule(
    name="v1",
    feature_version=1,
    num_outputs=2,
    step_head="log_step",
    step_bias=lambda config: math.log(config.init_step),
    tensor_steps=tensor_steps,
    tensor_update=tensor_update,
)
