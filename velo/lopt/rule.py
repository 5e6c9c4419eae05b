"""The interface between the learned optimizer's machinery and an update rule.

`scale_by_lopt` does the same work for every rule: it folds the gradient into the accumulators,
summarises each tensor, runs the LSTM hypernetwork (one scalar "step output" per tensor plus the
mixing weights of the per-parameter MLP) and runs that MLP on every element. A `Rule` says what
those outputs mean: how the per-tensor outputs become step sizes, and how the MLP's per-element
outputs become an update. Each rule lives in its own module (`rule_v1`, `rule_v2`) and is looked
up by `Config.rule` in `rules.py`.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import NamedTuple

import jax

from velo.lopt.config import Config
from velo.lopt.features import ElementInputs

# (step output [n], steps done [] int32, num_steps, config) -> [n] step sizes.
TensorSteps = Callable[[jax.Array, jax.Array, object, Config], jax.Array]
# (MLP outputs, element inputs, feature RMS [F], RMS of the tensor at init [] (None unless
# `Config.scale_reference` is "initial"), step [],
# weight decay, config) -> update of one tensor, in the tensor's shape (float32).
TensorUpdate = Callable[
    [list[jax.Array], ElementInputs, jax.Array, jax.Array, jax.Array, object, Config], jax.Array
]


class Rule(NamedTuple):
    """An update rule of the learned optimizer.

    Attributes:
      name: the `Config.rule` that selects it.
      feature_version: version of the inputs and outputs' meaning, stored in checkpoints;
        changes whenever meta-parameters trained for the old meaning would compute garbage.
      num_outputs: outputs per element of the per-parameter MLP.
      step_head: flax name of the hypernetwork's per-tensor step output layer.
      step_bias: the initial bias of that output, from the config.
      tensor_steps: per-tensor step sizes from the step output (`TensorSteps`).
      tensor_update: one tensor's update from the MLP's outputs (`TensorUpdate`).
    """

    name: str
    feature_version: int
    num_outputs: int
    step_head: str
    step_bias: Callable[[Config], float]
    tensor_steps: TensorSteps
    tensor_update: TensorUpdate


def decayed(update: jax.Array, p: jax.Array, weight_decay) -> jax.Array:
    """``update + weight_decay * p``, or ``update`` itself for a weight decay that is a Python
    zero (the default): XLA cannot drop ``0 * p`` (it is NaN for an infinite p), so the update
    would read every parameter for nothing."""
    if isinstance(weight_decay, numbers.Number) and weight_decay == 0:
        return update
    return update + weight_decay * p
