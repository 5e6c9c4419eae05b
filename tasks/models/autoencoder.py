"""MLP autoencoder."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax


class MLPAutoencoder(nn.Module):
    """Encoder through ``hidden`` (the last width is the code), mirrored decoder, linear output.

    Attributes:
      hidden: encoder widths, e.g. ``(64, 16)`` gives ``d -> 64 -> 16 -> 64 -> d``.
      activation: name of a `flax.linen` nonlinearity.
    """

    hidden: Sequence[int]
    activation: str = "relu"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """``[batch, ...]`` -> ``[batch, prod(...)]`` reconstruction of the flattened input."""
        act = getattr(nn, self.activation)
        x = x.reshape(x.shape[0], -1)
        widths = [*self.hidden, *reversed(self.hidden[:-1])]
        h = x
        for i, width in enumerate(widths):
            h = act(nn.Dense(width, name=f"layer_{i}")(h))
        return nn.Dense(x.shape[-1], name="reconstruction")(h)
