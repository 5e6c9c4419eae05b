"""The per-tensor LSTM hypernetwork: one LSTM, weights shared across tensors, batched over them.

Each tensor's input is embedded, then given model-wide context by adding a max-pool over all
tensors of a second embedding (DeepSets). The LSTM output drives two heads: softmax mixing
weights over the bank of per-parameter MLP weight sets, and the tensor's log step multiplier
(exp-parameterised, so the step is positive and its scale is learned in log space).
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from velo.lopt.config import Config

Carry = tuple[jax.Array, jax.Array]


class Hypernet(nn.Module):
    """Inputs ``[n_tensors, F]`` and LSTM carry ``(c, h)``, each ``[n_tensors, lstm_size]``.

    Returns the new carry, ``[n_tensors, bank_size]`` mixing logits and ``[n_tensors]`` log step
    multipliers.
    """

    lstm_size: int
    bank_size: int
    init_step: float
    head_scale: float = 0.01

    @nn.compact
    def __call__(self, inputs: jax.Array, carry: Carry):
        embed = nn.Dense(self.lstm_size, name="embed")(inputs)
        context = nn.relu(nn.Dense(self.lstm_size, name="context")(inputs))
        x = embed + jnp.max(context, axis=0, keepdims=True)
        carry, out = nn.OptimizedLSTMCell(self.lstm_size, name="lstm")(carry, x)
        # Small heads: the initial optimizer is the hand-designed bank mean at `init_step`,
        # barely modulated by the (random) LSTM until meta-training shapes it.
        small = nn.initializers.normal(self.head_scale / math.sqrt(self.lstm_size))
        logits = nn.Dense(self.bank_size, kernel_init=small, name="mix")(out)
        log_step = nn.Dense(
            1,
            kernel_init=small,
            bias_init=nn.initializers.constant(math.log(self.init_step)),
            name="log_step",
        )(out)[:, 0]
        return carry, logits, log_step


def make_hypernet(config: Config) -> Hypernet:
    return Hypernet(config.lstm_size, config.bank_size, config.init_step)


def zero_carry(num_tensors: int, config: Config) -> Carry:
    zeros = jnp.zeros((num_tensors, config.lstm_size), jnp.float32)
    return zeros, zeros
