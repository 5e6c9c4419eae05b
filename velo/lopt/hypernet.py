"""The per-tensor LSTM hypernetwork: one LSTM, weights shared across tensors, batched over them.

Each tensor's input is embedded, then given model-wide context by adding a max-pool over all
tensors of a second embedding (DeepSets). The LSTM output drives two heads: softmax mixing
weights over the bank of per-parameter MLP weight sets, and one scalar per tensor, its step
output, which the update rule turns into a step size (rule v1: a log step; rule v2: a bounded
modulation of a prior schedule).

References:
  Metz et al., "VeLO: Training Versatile Learned Optimizers by Scaling Up", 2022,
  https://arxiv.org/abs/2211.09760
  Zaheer et al., "Deep Sets", 2017, https://arxiv.org/abs/1703.06114
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.linen.recurrent import DenseParams

from velo.lopt import rules
from velo.lopt.config import Config

Carry = tuple[jax.Array, jax.Array]


class Hypernet(nn.Module):
    """Inputs ``[n_tensors, F]`` and LSTM carry ``(c, h)``, each ``[n_tensors, lstm_size]``.

    Returns the new carry, ``[n_tensors, bank_size]`` mixing logits and ``[n_tensors]`` step
    outputs (layer `step_head`, bias initialised to `step_bias`).
    """

    lstm_size: int
    bank_size: int
    step_head: str
    step_bias: float
    head_scale: float = 0.01

    @nn.compact
    def __call__(self, inputs: jax.Array, carry: Carry):
        # Both embeddings in one product: XLA splits a product of the concatenated inputs into
        # one per part, so two products here compiled to four kernels.
        embed, context = (DenseParams(self.lstm_size, name=n)(inputs) for n in ("embed", "context"))
        both = inputs @ jnp.concatenate([embed[0], context[0]], axis=1)
        both = both + jnp.concatenate([embed[1], context[1]])
        context = nn.relu(both[:, self.lstm_size :])
        x = both[:, : self.lstm_size] + jnp.max(context, axis=0, keepdims=True)
        carry, out = nn.OptimizedLSTMCell(self.lstm_size, name="lstm")(carry, x)
        # Small heads: the initial optimizer is the hand-designed bank mean at `init_step`,
        # barely modulated by the (random) LSTM until meta-training shapes it.
        small = nn.initializers.normal(self.head_scale / math.sqrt(self.lstm_size))
        logits = nn.Dense(self.bank_size, kernel_init=small, name="mix")(out)
        step = nn.Dense(
            1,
            kernel_init=small,
            bias_init=nn.initializers.constant(self.step_bias),
            name=self.step_head,
        )(out)[:, 0]
        return carry, logits, step


def make_hypernet(config: Config) -> Hypernet:
    rule = rules.get(config)
    return Hypernet(config.lstm_size, config.bank_size, rule.step_head, rule.step_bias(config))


def zero_carry(num_tensors: int, config: Config) -> Carry:
    zeros = jnp.zeros((num_tensors, config.lstm_size), jnp.float32)
    return zeros, zeros
