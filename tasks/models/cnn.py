"""Convolutional classifier for images (2-D) and signals (1-D)."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax


class ConvNet(nn.Module):
    """3-wide convolutions that halve the resolution each layer, global average pool, linear head.

    The spatial rank follows the input, so the same module reads ``[b, h, w, c]`` images and
    ``[b, length, c]`` signals.

    Attributes:
      channels: output channels of each convolution.
      num_outputs: number of classes.
      downsample: ``"stride"`` (stride-2 convolutions) or ``"pool"`` (2x average pooling after
        each stride-1 convolution).
      activation: name of a `flax.linen` nonlinearity.
    """

    channels: Sequence[int]
    num_outputs: int
    downsample: str = "stride"
    activation: str = "relu"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """``[batch, *spatial, c]`` -> ``[batch, num_outputs]``."""
        act = getattr(nn, self.activation)
        rank = x.ndim - 2
        stride = 2 if self.downsample == "stride" else 1
        for i, c in enumerate(self.channels):
            x = act(nn.Conv(c, (3,) * rank, strides=stride, padding="SAME", name=f"conv_{i}")(x))
            if self.downsample == "pool":
                x = nn.avg_pool(x, (2,) * rank, strides=(2,) * rank, padding="SAME")
        x = x.mean(axis=tuple(range(1, rank + 1)))
        return nn.Dense(self.num_outputs, name="head")(x)
