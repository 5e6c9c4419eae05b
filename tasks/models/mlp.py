"""Multi-layer perceptron."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax


class MLP(nn.Module):
    """Flattens its input and applies ``Dense -> activation`` per hidden width, then a linear head.

    Attributes:
      hidden: widths of the hidden layers (may be empty: a linear model).
      num_outputs: width of the output layer.
      activation: name of a `flax.linen` nonlinearity (``relu``, ``gelu``, ``tanh``).
    """

    hidden: Sequence[int]
    num_outputs: int
    activation: str = "relu"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """``[batch, ...]`` -> ``[batch, num_outputs]``."""
        act = getattr(nn, self.activation)
        x = x.reshape(x.shape[0], -1)
        for i, width in enumerate(self.hidden):
            x = act(nn.Dense(width, name=f"hidden_{i}")(x))
        return nn.Dense(self.num_outputs, name="head")(x)
