"""Shape groups: the trained leaves of a model, stacked by shape and dtype.

Compile time, not run time, is what a learned optimizer costs most on small models, and XLA's
grows with the size of the program. Tensors of equal shape and dtype are therefore stacked and
processed as one group under `jax.vmap`, so a model whose layers repeat (a transformer) compiles
the per-tensor computation once per distinct shape, not once per tensor.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp


def is_trained(leaf: Any) -> bool:
    """Whether the learned optimizer updates ``leaf``: a non-empty floating-point array."""
    return jnp.issubdtype(jnp.result_type(leaf), jnp.floating) and jnp.size(leaf) > 0


class Groups(NamedTuple):
    """Which leaves of a flattened pytree form each group (static, hashable).

    Attributes:
      indices: per group, the positions of its leaves in the flat leaf list; groups in order of
        their first leaf. Integer, boolean and size-0 leaves belong to no group.
    """

    indices: tuple[tuple[int, ...], ...]

    @classmethod
    def from_leaves(cls, leaves: list[Any]) -> Groups:
        """Group the trained leaves (`is_trained`) by (shape, dtype)."""
        groups: dict[tuple, list[int]] = {}
        for i, x in enumerate(leaves):
            if is_trained(x):
                groups.setdefault((jnp.shape(x), jnp.result_type(x)), []).append(i)
        return cls(tuple(tuple(idx) for idx in groups.values()))

    @property
    def num_tensors(self) -> int:
        """Number of trained tensors, over all groups."""
        return sum(len(idx) for idx in self.indices)

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(len(idx) for idx in self.indices)

    def stack(self, leaves: list[Any]) -> list[jax.Array]:
        """Per group, its leaves as one float32 ``[group size, *shape]`` array."""
        return [_stack([leaves[i] for i in idx]) for idx in self.indices]

    def unstack(self, stacks: list[jax.Array], like: list[Any]) -> list[jax.Array]:
        """Leaves in the order and dtypes of ``like`` from per-group ``stacks``; leaves in no
        group get zeros."""
        out = [jnp.zeros_like(x) for x in like]
        for idx, stack in zip(self.indices, stacks, strict=True):
            for k, i in enumerate(idx):
                out[i] = stack[k].astype(jnp.result_type(like[i]))
        return out

    def zeros(self, leaves: list[Any], init: Any) -> tuple[Any, ...]:
        """Per group, ``init(shape)`` (a pytree of zero arrays) with a leading group axis."""
        return tuple(
            _stacked_zeros(len(idx), init(jnp.shape(leaves[idx[0]]))) for idx in self.indices
        )


def _stacked_zeros(n: int, tree: Any) -> Any:
    """``tree`` with a leading axis of ``n`` on every array, all zeros."""
    return jax.tree.map(lambda x: jnp.zeros((n, *x.shape), x.dtype), tree)


def _stack(arrays: list[jax.Array]) -> jax.Array:
    """Float32 ``[len(arrays), ...]``; a free reshape for a single array."""
    arrays = [jnp.asarray(a).astype(jnp.float32) for a in arrays]
    return arrays[0][None] if len(arrays) == 1 else jnp.stack(arrays)
