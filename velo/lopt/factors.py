"""Every tensor's scales and Adafactor factors, computed at once on concatenated buffers.

The per-element pass needs, per tensor, a few scalars (1 / sqrt(s) and bias corrections) and
small vectors: the row and column factors of the second moment at 3 decays, their rsqrt, and
what the MLP's first layer makes of them. Computed tensor by tensor, this small work was most of
the compiled program (XLA on CPU compiles each kernel separately); here the scales, the factors
and their statistics are computed once for all tensors on buffers that concatenate every
tensor's factors (`segments.Segments`), so they compile to the same few kernels whatever the
model. The factored moments themselves live on these buffers (`accumulators.SharedMoments`,
updated by `accumulate`), so their EMAs are one kernel each too. The factor features' share of
the MLP's first layer (`shares`) is a batched matmul per class of similar-length factor vectors.

Buffers, tensors in group order (`groups.Groups`), each tensor's entries flattened:
  rows: ``[3, R]``: for rank >= 2 the ``prod(S[:-1])`` row factors; below rank 2 the full
    second-moment EMAs (``prod(S)`` entries), which then also serve as column factors.
  cols: ``[3, C]``: for rank >= 2 the ``prod(S[:-2]) * S[-1]`` column factors; none below.
For rank > 2 the factorisation is over the last two axes, batched over the leading ones: each run
of ``S[-2]`` row entries is a block, whose mean row factor scales the Adafactor estimate.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from velo.lopt import sampling
from velo.lopt.accumulators import SharedMoments, debias, init_shared, is_factored, update_shared
from velo.lopt.config import Config
from velo.lopt.groups import Groups
from velo.lopt.segments import Segments

# Relative epsilon under rsqrt: second moments are O(1) after dividing by s.
EPS = 1e-10
TINY = 1e-30


@dataclasses.dataclass(frozen=True)
class FactorLayout:
    """Where each tensor's factors sit in the buffers (static and hashable).

    Attributes:
      shapes: per group, the shape of its tensors.
      group_sizes: per group, its number of tensors.
    """

    shapes: tuple[tuple[int, ...], ...]
    group_sizes: tuple[int, ...]

    @classmethod
    def from_groups(cls, groups: Groups, leaves: list) -> FactorLayout:
        shapes = tuple(tuple(jnp.shape(leaves[idx[0]])) for idx in groups.indices)
        return cls(shapes, groups.sizes)

    @functools.cached_property
    def tensor_shapes(self) -> tuple[tuple[int, ...], ...]:
        """The shape of every tensor, in group order."""
        return sum(((s,) * k for s, k in zip(self.shapes, self.group_sizes, strict=True)), ())

    @functools.cached_property
    def is_vector(self) -> np.ndarray:
        """``[n]`` bool: the tensor has rank < 2 (full moments, no column factors)."""
        return np.array([not is_factored(s) for s in self.tensor_shapes], bool)

    @functools.cached_property
    def rows(self) -> Segments:
        return Segments(tuple(math.prod(_row_shape(s)) for s in self.tensor_shapes))

    @functools.cached_property
    def cols(self) -> Segments:
        return Segments(tuple(math.prod(_col_shape(s) or (0,)) for s in self.tensor_shapes))

    @functools.cached_property
    def blocks(self) -> Segments:
        """The row buffer cut into blocks: runs of ``S[-2]`` rows (rank >= 2), or a whole
        tensor (rank < 2)."""
        lengths = []
        for s in self.tensor_shapes:
            lengths += [s[-2]] * math.prod(s[:-2]) if is_factored(s) else [math.prod(s)]
        return Segments(tuple(lengths))

    @functools.cached_property
    def col_blocks(self) -> np.ndarray:
        """``[C]`` int32: the block (of `blocks`) whose rows share each column entry."""
        ids, start = [], 0
        for s in self.tensor_shapes:
            if is_factored(s):
                lead = math.prod(s[:-2])
                ids.append(start + np.repeat(np.arange(lead, dtype=np.int32), s[-1]))
                start += lead
            else:
                start += 1
        return np.concatenate(ids) if ids else np.zeros((0,), np.int32)

    @functools.cached_property
    def group_starts(self) -> tuple[int, ...]:
        """Index of each group's first tensor."""
        return tuple(int(o) for o in np.cumsum((0, *self.group_sizes[:-1])))

    def join(self, stacks: list[jax.Array | None]) -> jax.Array:
        """Per group ``[k, *shape]`` stacks (None for none) -> ``[total]``, tensors in group
        order, each flattened. A 1-D concatenation: XLA on CPU fuses it, and the ops that make
        its operands, into its consumer; a concatenation along the last axis of ``[c, n]``
        pieces it wrote out, with a kernel for each operand."""
        parts = [x.reshape(-1) for x in stacks if x is not None]
        return jnp.concatenate(parts) if parts else jnp.zeros((0,))

    def samples(self, kind: str) -> Segments:
        """The statistics-sample buffer (`SharedMoments.sampled`): each tensor's
        `sampling.size` entries for `Config.stats_sample` ``kind``."""
        return Segments(tuple(sampling.size(s, kind) for s in self.tensor_shapes))

    def zero_moments(self, config: Config) -> SharedMoments:
        """Zero `SharedMoments` for these tensors."""
        samples = self.samples(config.stats_sample).size
        return init_shared(self.rows.size, self.cols.size, samples, config)

    def group_samples(self, buffer: jax.Array | None, group: int, kind: str):
        """``[c, N]`` sample buffer -> group ``group``'s ``[k, c, n]`` (None for None)."""
        if buffer is None:
            return None
        n = sampling.size(self.shapes[group], kind)
        return self._unconcat(self.samples(kind), buffer, group, (n,))

    def group_rows(self, buffer: jax.Array, group: int) -> jax.Array:
        """``[c, R]`` -> group ``group``'s ``[k, c, *row shape]``, broadcastable to its tensors."""
        return self._unconcat(self.rows, buffer, group, _row_shape(self.shapes[group]))

    def group_cols(self, buffer: jax.Array, group: int) -> jax.Array | None:
        """``[c, C]`` -> group ``group``'s ``[k, c, *column shape]`` (None below rank 2)."""
        shape = _col_shape(self.shapes[group])
        return None if shape is None else self._unconcat(self.cols, buffer, group, shape)

    def group_slice(self, x: jax.Array, group: int) -> jax.Array:
        """``[n, ...]`` per-tensor values -> group ``group``'s ``[k, ...]``."""
        start = self.group_starts[group]
        return x[start : start + self.group_sizes[group]]

    def _unconcat(self, segments, buffer, group, shape) -> jax.Array:
        start = self.group_starts[group]
        piece = segments.piece(buffer, start, start + self.group_sizes[group])
        piece = piece.reshape(buffer.shape[0], self.group_sizes[group], *shape)
        return jnp.moveaxis(piece, 1, 0)


def _row_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (*shape[:-1], 1) if is_factored(shape) else shape


def _col_shape(shape: tuple[int, ...]) -> tuple[int, ...] | None:
    return (*shape[:-2], 1, shape[-1]) if is_factored(shape) else None


class Scales(NamedTuple):
    """Every tensor's scalars and factors, gradient quantities divided by its s.

    Attributes:
      inv_root: ``[n]`` 1 / sqrt(s), s = the tensor mean of the slowest factored moment.
      momenta_scale: ``[n, 3]`` bias correction / sqrt(s) of each momentum.
      second_scale: ``[n]`` bias correction / s of the second moment.
      rows, inv_rows: ``[3, R]`` bias-corrected row factors / s and rsqrt(rows + eps).
      cols, inv_cols: ``[3, C]`` the same for the column factors.
      col_scale: ``[3, C]`` inv_cols * sqrt(mean row factor of the block): times inv_rows, the
        rsqrt of the Adafactor estimate row * col / mean(row).
    """

    inv_root: jax.Array
    momenta_scale: jax.Array
    second_scale: jax.Array
    rows: jax.Array
    inv_rows: jax.Array
    cols: jax.Array
    inv_cols: jax.Array
    col_scale: jax.Array


def accumulate(
    shared: SharedMoments, g: list[jax.Array], squares: list, layout: FactorLayout,
    config: Config, skip=None,
) -> SharedMoments:
    """`accumulators.update_shared` on the float32 per-group ``[k, *S]`` gradients ``g`` and
    their `accumulators.gradient_squares` (leading ``[k]`` axes), each kind concatenated over all
    tensors (``skip`` as in `accumulators.update_moments`; the squares, which `scale_by_lopt`
    does not zero, are zeroed here, on the concatenations)."""
    sample = None
    if shared.sampled is not None:
        take = functools.partial(sampling.take, kind=config.stats_sample)
        sample = layout.join([jax.vmap(lambda x: take(x, x.shape))(x) for x in g])
    rows, cols = (layout.join(list(s)) for s in zip(*squares, strict=True))
    if skip is not None:
        rows, cols = (jnp.where(skip, 0.0, x) for x in (rows, cols))
    return update_shared(shared, rows, cols, sample, config, skip)


def scales(moments: SharedMoments, layout: FactorLayout, count: jax.Array, config: Config):
    """`Scales` of all tensors from their `SharedMoments` after ``count`` >= 1 gradients."""
    raw_rows, raw_cols = moments.rows, moments.cols
    if raw_cols is None:
        raw_cols = jnp.zeros((len(config.factored_decays), 0))
    s = layout.rows.mean(raw_rows[-1]) * debias(config.factored_decays[-1], count) + TINY
    inv_root = jax.lax.rsqrt(s)
    momenta_scale = debias(jnp.asarray(config.momentum_decays), count) * inv_root[:, None]
    factored = debias(jnp.asarray(config.factored_decays), count)[:, None] / s
    rows = raw_rows * layout.rows.expand(factored)
    cols = raw_cols * layout.cols.expand(factored)
    inv_rows, inv_cols = jax.lax.rsqrt(rows + EPS), jax.lax.rsqrt(cols + EPS)
    root_mean = jnp.sqrt(layout.blocks.mean(rows))
    col_scale = inv_cols * jnp.take(root_mean, layout.col_blocks, axis=-1)
    second_scale = debias(config.second_moment_decay, count) / s
    return Scales(inv_root, momenta_scale, second_scale, rows, inv_rows, cols, inv_cols, col_scale)


def square_means(x: Scales, layout: FactorLayout) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Per tensor: ``[n, 6]`` means of the squared row features (rows, then their rsqrt),
    ``[n, 6]`` of the column features (below rank 2 the rows again), and ``[n, 3]`` means of
    sqrt, value and log of the slowest row factor."""
    slow = x.rows[-1]
    # One segment mean per buffer (each is a scatter-add kernel plus transposes).
    slow = jnp.stack([jnp.sqrt(slow), slow, jnp.log(slow + EPS)])
    rows = layout.rows.mean(jnp.concatenate([jnp.square(x.rows), jnp.square(x.inv_rows), slow]))
    rows, slow = rows[:-3], rows[-3:]
    cols = layout.cols.mean(jnp.concatenate([jnp.square(x.cols), jnp.square(x.inv_cols)]))
    cols = jnp.where(layout.is_vector, rows, cols)
    return rows.T, cols.T, slow.T


def factor_features(x: Scales) -> tuple[jax.Array, jax.Array]:
    """The row and column features of the MLP's table on the factor buffers: ``[6, R]``
    (rows, then their rsqrt) and ``[6, C]`` (the same for columns)."""
    return jnp.concatenate([x.rows, x.inv_rows]), jnp.concatenate([x.cols, x.inv_cols])


def shares(w_rows, w_cols, bias, feats, layout: FactorLayout) -> list[tuple]:
    """The factor features' share of every first-layer unit, per group, computed on the factor
    vectors: a few batched matmuls for all tensors (`_segment_products`).

    Args:
      w_rows, w_cols: ``[n, 6, H]`` (normalised) first-layer weights of the row and column
        features of all tensors; below rank 2, where the column features are the row ones, both
        apply to rows.
      bias: ``[n, H]`` first-layer bias, folded into the row share.
      feats: the `factor_features` of all tensors.
      layout: the `FactorLayout`.

    Returns:
      Per group, ``[k, H, *row shape]``: the bias plus the row features' share, and ``[k, H,
      *column shape]``: the column features' share (None below rank 2); both broadcast to the
      group's tensors.
    """
    w_rows = w_rows + jnp.where(layout.is_vector[:, None, None], w_cols, 0.0)
    rows = _segment_products(w_rows, feats[0], layout.rows)
    cols = _segment_products(w_cols, feats[1], layout.cols)
    out = []
    for group, shape in enumerate(layout.shapes):
        start, k = layout.group_starts[group], layout.group_sizes[group]
        row_share = _group_piece(rows, start, k, _row_shape(shape))
        row_share = row_share + bias[start : start + k].reshape(k, -1, *(1,) * len(shape))
        col_shape = _col_shape(shape)
        col_share = None if col_shape is None else _group_piece(cols, start, k, col_shape)
        out.append((row_share, col_share))
    return out


def _group_piece(products: dict, start: int, k: int, shape: tuple[int, ...]) -> jax.Array:
    """Tensors ``start`` to ``start + k - 1``'s ``[k, H, *shape]`` from `_segment_products`.
    A group's tensors share a size class and sit next to each other in it: one slice, no stack
    (XLA wrote the operands of a stack of per-tensor slices out, a kernel each)."""
    array, position = products[start]
    return array[position : position + k, :, : math.prod(shape)].reshape(k, -1, *shape)


def _segment_products(w: jax.Array, buffer: jax.Array, segments: Segments) -> dict:
    """Per non-empty segment t, where ``w[t].T @ buffer[:, segment t]`` is: ``(products,
    position)`` with ``products[position, :, :length]`` it (``[H, length]``), from ``[n, F, H]``
    weights and an ``[F, size]`` buffer.

    Segments of similar length form a size class, padded to its longest (`_size_classes`), and
    every class is one gather and one batched matmul: a matmul per shape group compiled to
    three kernels, with its operands sliced out, and a weight gathered per buffer entry was
    fused by XLA into every elementwise pass that reads the shares.
    """
    out: dict = {}
    for members in _size_classes(segments.lengths):
        lengths = np.array([segments.lengths[t] for t in members], np.int32)
        starts = np.array([segments.offsets[t] for t in members], np.int32)
        pos = np.arange(lengths.max(), dtype=np.int32)
        valid = pos < lengths[:, None]
        index = np.where(valid, starts[:, None] + pos, 0)
        padded = jnp.where(valid, jnp.take(buffer, index, axis=1), 0.0)  # [F, m, width]
        products = jnp.einsum("mfh,fmw->mhw", w[np.array(members)], padded)
        out.update({t: (products, j) for j, t in enumerate(members)})
    return out


def _size_classes(lengths: tuple[int, ...], slack: int = 1 << 14) -> list[list[int]]:
    """The non-empty segments in classes, each in segment order, so that padding a class to its
    longest member adds at most a quarter of its entries (plus ``slack``). Segments of equal
    length (a shape group's tensors among them) always share a class: lengths are taken longest
    first, all segments of a length at once, and join the open class while that bound holds."""
    by_length: dict[int, list[int]] = {}
    for t, n in enumerate(lengths):
        if n:
            by_length.setdefault(n, []).append(t)
    classes: list[list[int]] = []
    for n in sorted(by_length, reverse=True):
        same = by_length[n]
        if classes:
            members = classes[-1]
            width = lengths[members[0]]
            total = sum(lengths[m] for m in members) + n * len(same)
            if width * (len(members) + len(same)) <= 1.25 * total + slack:
                members += same
                continue
        classes.append(list(same))
    return [sorted(members) for members in classes]
