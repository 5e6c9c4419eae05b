"""Recurrent character language model."""

from __future__ import annotations

import flax.linen as nn
import jax

CELLS = {"vanilla": nn.SimpleCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}


class RNNLM(nn.Module):
    """Embedding, one recurrent layer, linear read-out to next-token logits.

    Attributes:
      cell: ``"vanilla"`` (tanh), ``"lstm"`` or ``"gru"``.
      hidden: recurrent state width.
      embed: token embedding width.
      vocab: vocabulary size.
    """

    cell: str
    hidden: int
    embed: int
    vocab: int

    @nn.compact
    def __call__(self, tokens: jax.Array) -> jax.Array:
        """``[batch, time]`` int tokens -> ``[batch, time, vocab]`` logits."""
        x = nn.Embed(self.vocab, self.embed, name="embed")(tokens)
        x = nn.RNN(CELLS[self.cell](self.hidden), name="rnn")(x)
        return nn.Dense(self.vocab, name="head")(x)
