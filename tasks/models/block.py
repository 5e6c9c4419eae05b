"""Pre-norm transformer block, shared by the language model and the ViT."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


class TransformerBlock(nn.Module):
    """``x + attention(norm(x))``, then ``x + mlp(norm(x))`` with a 4x wide GELU MLP.

    Attributes:
      width: model width (divisible by ``heads``).
      heads: attention heads.
      causal: mask attention to earlier positions (language models).
    """

    width: int
    heads: int
    causal: bool

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """``[batch, time, width]`` -> same shape."""
        mask = nn.make_causal_mask(jnp.ones(x.shape[:2])) if self.causal else None
        h = nn.LayerNorm(name="norm_attention")(x)
        x = x + nn.MultiHeadDotProductAttention(self.heads, name="attention")(h, h, mask=mask)
        h = nn.LayerNorm(name="norm_mlp")(x)
        h = nn.gelu(nn.Dense(4 * self.width, name="mlp_in")(h))
        return x + nn.Dense(self.width, name="mlp_out")(h)
