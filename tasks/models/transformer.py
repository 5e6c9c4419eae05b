"""Causal transformer character language model."""

from __future__ import annotations

import flax.linen as nn
import jax

from tasks.models.block import TransformerBlock


class TransformerLM(nn.Module):
    """Token plus learned position embeddings, causal blocks, final norm, linear read-out.

    Attributes:
      layers: number of transformer blocks.
      width: model width.
      heads: attention heads per block.
      vocab: vocabulary size.
      max_len: longest sequence (size of the position table).
    """

    layers: int
    width: int
    heads: int
    vocab: int
    max_len: int

    @nn.compact
    def __call__(self, tokens: jax.Array) -> jax.Array:
        """``[batch, time]`` int tokens (time <= max_len) -> ``[batch, time, vocab]`` logits."""
        x = nn.Embed(self.vocab, self.width, name="embed")(tokens)
        positions = self.param(
            "positions", nn.initializers.normal(0.02), (self.max_len, self.width)
        )
        x = x + positions[: tokens.shape[1]]
        for i in range(self.layers):
            x = TransformerBlock(self.width, self.heads, causal=True, name=f"block_{i}")(x)
        return nn.Dense(self.vocab, name="head")(nn.LayerNorm(name="norm_final")(x))
