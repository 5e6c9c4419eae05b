"""Small vision transformer for 8x8 (or 4x4) images and 1-D signals."""

from __future__ import annotations

import flax.linen as nn
import jax

from tasks.models.block import TransformerBlock


class ViT(nn.Module):
    """Non-overlapping patches embedded linearly, learned positions, blocks, mean pool, head.

    Attributes:
      patch: patch side (pixels or samples); trailing pixels that do not fill a patch are dropped.
      width: model width.
      layers: number of transformer blocks.
      heads: attention heads per block.
      num_outputs: number of classes.
    """

    patch: int
    width: int
    layers: int
    heads: int
    num_outputs: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """``[batch, *spatial, c]`` -> ``[batch, num_outputs]``."""
        rank = x.ndim - 2
        x = nn.Conv(self.width, (self.patch,) * rank, strides=self.patch, padding="VALID",
                    name="patch_embed")(x)
        x = x.reshape(x.shape[0], -1, self.width)
        positions = self.param("positions", nn.initializers.normal(0.02), x.shape[1:])
        x = x + positions
        for i in range(self.layers):
            x = TransformerBlock(self.width, self.heads, causal=False, name=f"block_{i}")(x)
        x = nn.LayerNorm(name="norm_final")(x).mean(axis=1)
        return nn.Dense(self.num_outputs, name="head")(x)
