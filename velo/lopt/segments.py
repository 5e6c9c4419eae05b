"""Segments: per-tensor vectors of every tensor of a model, concatenated into one buffer.

XLA on CPU compiles every kernel separately (tens of milliseconds each), so work done once per
tensor makes compile time grow with the number of tensors. The learned optimizer's small
per-tensor work (scalars, Adafactor row and column factors, their statistics) is therefore done
once for all tensors on concatenated buffers: a static `Segments` layout says which entries
belong to which tensor, and per-tensor reductions are segment sums.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class Segments:
    """A buffer made of consecutive pieces, one per segment (static and hashable).

    Attributes:
      lengths: entries of each segment, in buffer order (0 for a segment with none).
    """

    lengths: tuple[int, ...]

    @property
    def num(self) -> int:
        return len(self.lengths)

    @property
    def size(self) -> int:
        return sum(self.lengths)

    @functools.cached_property
    def ids(self) -> np.ndarray:
        """``[size]`` int32: the segment of each entry."""
        return np.repeat(np.arange(self.num, dtype=np.int32), self.lengths)

    @functools.cached_property
    def offsets(self) -> tuple[int, ...]:
        """Start of each segment in the buffer."""
        return tuple(int(o) for o in np.cumsum((0, *self.lengths[:-1])))

    def sum(self, x: jax.Array) -> jax.Array:
        """``[..., size]`` -> ``[..., num]`` sums per segment (0 for an empty one)."""
        sums = jax.ops.segment_sum(
            jnp.moveaxis(x, -1, 0), self.ids, self.num, indices_are_sorted=True
        )
        return jnp.moveaxis(sums, 0, -1)

    def mean(self, x: jax.Array) -> jax.Array:
        """``[..., size]`` -> ``[..., num]`` means per segment (0 for an empty one)."""
        return self.sum(x) / np.maximum(np.asarray(self.lengths, np.float32), 1.0)

    def expand(self, x: jax.Array) -> jax.Array:
        """``[..., num]`` per-segment values -> ``[..., size]``, each repeated over its entries."""
        return jnp.take(x, self.ids, axis=-1)

    def piece(self, x: jax.Array, start: int, stop: int) -> jax.Array:
        """``[..., size]`` -> the entries of segments ``start`` to ``stop - 1``."""
        begin = self.offsets[start] if start < self.num else self.size
        end = self.offsets[stop] if stop < self.num else self.size
        return x[..., begin:end]
