"""The fixed statistics sample of a large tensor (`Config.stats_sample`).

A tensor of up to `STATS_SAMPLE` elements is summarised over all of them; a larger one over a
fixed sample of about that many: every k-th element (``"strided"``) or every k-th run of
`SAMPLE_BLOCK` contiguous elements (``"blocks"``, k odd). Being fixed, the sample keeps results
deterministic and identical sharded or not; momenta that the per-parameter MLP never reads per
element are kept at the sample only (`accumulators.SharedMoments.sampled`).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

STATS_SAMPLE = 1 << 15
# Contiguous elements per block of the ``"blocks"`` sample: 512 bytes of float32.
SAMPLE_BLOCK = 128


def take(a: jax.Array, shape: tuple[int, ...], kind: str) -> jax.Array:
    """``a``, whose trailing axes broadcast to ``shape`` (leading axes are kept), flattened to
    the sample of a tensor of ``shape``: ``[*lead, size(shape, kind)]``.

    With an even k and rows of a power of two blocks, every block would start in the same
    column (a 1024 x 512 matrix would be sampled in its first 128 columns only), so k is odd.
    """
    block, blocks, stride, stop = _plan(shape, kind)
    lead = a.shape[: a.ndim - len(shape)]
    flat = jnp.broadcast_to(a, (*lead, *shape)).reshape(*lead, -1)
    runs = flat[..., : blocks * block].reshape(*lead, blocks, block)
    return runs[..., :stop:stride, :].reshape(*lead, -1)


def size(shape: tuple[int, ...], kind: str) -> int:
    """Number of elements in the sample of a tensor of ``shape``."""
    block, _, stride, stop = _plan(shape, kind)
    return len(range(0, stop, stride)) * block


def _plan(shape: tuple[int, ...], kind: str) -> tuple[int, int, int, int]:
    """``(block, blocks, stride, stop)``: the flat tensor is cut into ``blocks`` runs of
    ``block`` elements and every ``stride``-th run before ``stop`` is sampled."""
    n = math.prod(shape)
    block = SAMPLE_BLOCK if kind == "blocks" and n > STATS_SAMPLE else 1
    blocks = n // block
    stride = max(1, blocks // (STATS_SAMPLE // block))
    if block > 1:
        stride |= 1
    return block, blocks, stride, (blocks // stride) * stride
