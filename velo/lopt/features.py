"""What the learned optimizer sees: per-element MLP inputs and per-tensor LSTM inputs.

Every feature is scale-free. Gradient quantities are divided by ``sqrt(s)``, with ``s`` the
tensor mean of E[g**2] (read cheaply from the slow factored moment); the per-element features
are then divided by their RMS over the tensor, and the per-tensor summaries are ratios. So
multiplying a tensor's weights, or its gradients, by a constant leaves all features unchanged up
to rounding (and to epsilons far below any realistic scale).

Cost: the features are recomputed rather than stored (30 floats per parameter would dwarf the
optimizer state). 12 of the 30 are row or column factors: their statistics come from the small
factor vectors, and the MLP sums their contributions on those vectors (see `param_mlp.apply`).
The statistics of the other 18 come from one variadic reduction, over every element for tensors
of up to `sampling.STATS_SAMPLE` elements and over a fixed sample of that size above
(`sampling.py`): the sample bounds the per-tensor cost (XLA on CPU does not fuse 20-odd
reductions into one pass) and, being fixed, keeps results deterministic and identical sharded
or not.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from velo.lopt import sampling
from velo.lopt.accumulators import TensorMoments
from velo.lopt.config import Config
from velo.lopt.factors import EPS, TINY, FactorLayout, Scales, square_means
from velo.lopt.loss_buffer import LossBuffer, init_loss_buffer, loss_decays, loss_features

# The feature table: every input of the per-parameter MLP and of the LSTM, by name, in order.
# Consumers index by name (`element_index`, `SUMMARY[...]`, `TENSOR_FEATURES[...]`); changing a
# name, its meaning or the order changes `config.FEATURE_VERSION` (a test pins the table).
# Decays are numbered 1-3 (fast to slow); "_v" divides by sqrt(second moment), "_f" by the
# square root of the Adafactor estimate at the same decay.
PER_ELEMENT_FEATURES = (
    "g", "g_clipped", "p", "m1", "m2", "m3", "v",
    "m1_v", "m2_v", "m3_v", "rsqrt_v", "g_v",
    "g_f1", "g_f2", "g_f3", "m1_f1", "m2_f2", "m3_f3",
)  # fmt: skip
ROW_FACTOR_FEATURES = ("row1", "row2", "row3", "rsqrt_row1", "rsqrt_row2", "rsqrt_row3")
COL_FACTOR_FEATURES = ("col1", "col2", "col3", "rsqrt_col1", "rsqrt_col2", "rsqrt_col3")
ELEMENT_FEATURES = PER_ELEMENT_FEATURES + ROW_FACTOR_FEATURES + COL_FACTOR_FEATURES
NUM_ELEMENT_FEATURES = len(ELEMENT_FEATURES)
PER_ELEMENT = len(PER_ELEMENT_FEATURES)
ROW_FEATURES = slice(PER_ELEMENT, PER_ELEMENT + len(ROW_FACTOR_FEATURES))
COL_FEATURES = slice(ROW_FEATURES.stop, NUM_ELEMENT_FEATURES)
# The per-element features whose mean squares the LSTM reads (`summary_features`): their
# statistics are computed even when the MLP drops them.
SUMMARISED = ("p", "m1", "m2", "m3")
MAX_RANK = 4


def element_index(name: str) -> int:
    """Position of element feature ``name`` in `ELEMENT_FEATURES`."""
    if name not in ELEMENT_FEATURES:
        raise ValueError(f"no element feature {name!r}; known: {', '.join(ELEMENT_FEATURES)}")
    return ELEMENT_FEATURES.index(name)


@dataclasses.dataclass(frozen=True)
class Layout:
    """Named contiguous blocks of a feature vector: ``((name, width), ...)``."""

    blocks: tuple[tuple[str, int], ...]

    @property
    def size(self) -> int:
        return sum(width for _, width in self.blocks)

    def __getitem__(self, name: str) -> slice:
        start = 0
        for block, width in self.blocks:
            if block == name:
                return slice(start, start + width)
            start += width
        raise KeyError(f"no block {name!r} in {[b for b, _ in self.blocks]}")


# `summaries`: means over (a sample of) the tensor, of the factor vectors, and static facts.
SUMMARY = Layout(
    (
        ("mean_p", 1),
        ("mean_m", 3),
        ("mean_square", NUM_ELEMENT_FEATURES),  # of every element feature, in table order
        ("slow", 3),  # sqrt, value and log of the slow factored second moment
        ("rank", MAX_RANK + 1),  # one-hot of min(rank, MAX_RANK)
        ("log_size", 1),
    )
)
# The per-tensor LSTM inputs `summary_features` makes from a summary.
TENSOR_FEATURES = Layout(
    (
        ("p_mean", 1),  # mean(p) / RMS(p)
        ("p_variance", 1),  # var(p) / mean(p**2)
        ("log_m_ms", 3),  # log mean(m**2), squashed
        ("m_mean_ratio", 3),  # mean(m)**2 / mean(m**2)
        ("slow_spread", 1),  # log(mean(sqrt(v_slow))**2 / mean(v_slow)), squashed
        ("slow_log_gap", 1),  # mean(log v_slow) - log mean(v_slow), scaled
        ("rank", MAX_RANK + 1),
        ("log_size", 1),
    )
)
NUM_TENSOR_FEATURES = TENSOR_FEATURES.size
SUMMARY_SIZE = SUMMARY.size


class ElementInputs(NamedTuple):
    """Float32 per-element quantities of one tensor of shape ``S``, gradient ones divided by s.

    The full-size fields are the raw arrays; the properties `g`, `momenta`, `second` and
    `inv_factored` scale them, or build them from small factors, when read. Two reasons, both
    about what XLA fuses into the elementwise pass instead of writing out to memory:
    a sample (`sample_means`) then reads only the sampled elements, so every full-size input
    has the pass as its single consumer; and the per-decay quantities are one array per decay,
    sliced from the raw stacks before any arithmetic, because XLA refuses to fuse an op that
    its consumer reads through more than a few slices (it would duplicate its code).

    Attributes:
      p: ``S`` parameters.
      raw_g: ``S`` gradient.
      raw_momenta: ``[k, *S]`` EMAs of the first k = `Config.full_momenta` momenta, not
        bias-corrected.
      raw_sampled: ``[3 - k, n]`` EMAs of the others at the statistics sample of the tensor
        (`accumulators.SharedMoments.sampled`), or None (k = 3).
      raw_second: ``S`` second-moment EMA, not bias-corrected.
      inv_root: scalar 1 / sqrt(s).
      momenta_scale: ``[3, 1, ...]`` bias correction / sqrt(s) of each momentum.
      second_scale: scalar bias correction / s of the second moment.
      inv_rows: ``[3, ...]`` rsqrt of the row factors (rank >= 2, broadcastable) or of the
        full second moments (below), / s (`factors.Scales`).
      col_scale: ``[3, ...]`` `factors.Scales.col_scale` (rank >= 2, broadcastable; None
        below).
    """

    p: jax.Array
    raw_g: jax.Array
    raw_momenta: jax.Array
    raw_sampled: jax.Array | None
    raw_second: jax.Array
    inv_root: jax.Array
    momenta_scale: jax.Array
    second_scale: jax.Array
    inv_rows: jax.Array
    col_scale: jax.Array | None

    @property
    def g(self) -> jax.Array:
        """``S`` gradient / sqrt(s)."""
        return self.raw_g * self.inv_root

    @property
    def momenta(self) -> tuple[jax.Array | None, ...]:
        """3 x ``S``: bias-corrected momenta / sqrt(s), fast to slow; None for those kept at
        the statistics sample only (`raw_sampled`)."""
        scaled = [m * c for m, c in zip(self.raw_momenta, self.momenta_scale, strict=False)]
        return (*scaled, *(None,) * (len(self.momenta_scale) - len(scaled)))

    @property
    def second(self) -> jax.Array:
        """``S`` bias-corrected second moment / s."""
        return self.raw_second * self.second_scale

    @property
    def inv_factored(self) -> tuple[jax.Array, ...]:
        """3 x ``S``: rsqrt of the Adafactor estimate row * col / mean(row), from the small
        factors (for rank < 2, `inv_rows`)."""
        if self.col_scale is None:
            return tuple(self.inv_rows)
        return tuple(r * c for r, c in zip(self.inv_rows, self.col_scale, strict=True))


def group_inputs(
    p: jax.Array, g: jax.Array, moments: TensorMoments, sampled: jax.Array | None, x: Scales,
    layout: FactorLayout, group: int,
) -> ElementInputs:
    """``ElementInputs`` of group ``group``'s tensors, every field with a leading ``[k]`` axis,
    from its float32 ``[k, *S]`` stacks ``p``, ``g`` and ``moments``, its ``[k, 3 - k', n]``
    sampled momenta (`FactorLayout.group_samples`, or None) and the `Scales` of all tensors."""
    ones = (1,) * (p.ndim - 1)
    momenta_scale = layout.group_slice(x.momenta_scale, group)
    return ElementInputs(
        p, g, moments.ema[:, :-1], sampled, moments.ema[:, -1],
        inv_root=layout.group_slice(x.inv_root, group).reshape(-1, *ones),
        momenta_scale=momenta_scale.reshape(*momenta_scale.shape, *ones),
        second_scale=layout.group_slice(x.second_scale, group).reshape(-1, *ones),
        inv_rows=layout.group_rows(x.inv_rows, group),
        col_scale=layout.group_cols(x.col_scale, group),
    )  # fmt: skip


def element_features(x: ElementInputs, dropped: tuple[str, ...] = ()) -> list[jax.Array | None]:
    """The `PER_ELEMENT_FEATURES` of the per-parameter MLP (before RMS normalisation), in
    table order, each broadcastable to S; None for the ``dropped`` ones (`Config.dropped_inputs`),
    which are then never computed. (The row and column features act through
    `factors.shares`, on the factor vectors.)

    Only one transcendental per element (rsqrt of the second moment): the factored ones are
    products of rsqrts of the small row and column vectors.
    """
    r = jax.lax.rsqrt(x.second + EPS)
    g, momenta, inv_factored = x.g, x.momenta, x.inv_factored
    feats = [g, jnp.clip(g * r, -1.0, 1.0), x.p, *momenta, x.second]
    feats += [*(_times(m, r) for m in momenta), r, g * r, *(g * f for f in inv_factored)]
    feats += [_times(m, f) for m, f in zip(momenta, inv_factored, strict=True)]
    assert len(feats) == PER_ELEMENT, "element_features disagrees with the table"
    feats = [None if n in dropped else f for n, f in zip(PER_ELEMENT_FEATURES, feats, strict=True)]
    missing = [n for n, f in zip(PER_ELEMENT_FEATURES, feats, strict=True) if f is None]
    assert set(missing) <= set(dropped), f"{missing} read from momenta kept at the sample only"
    return feats


def _times(a: jax.Array | None, b: jax.Array) -> jax.Array | None:
    """``a * b``, or None for a momentum that is kept at the statistics sample only."""
    return None if a is None else a * b


def sample_means(
    x: ElementInputs, dropped: tuple[str, ...] = (), sample: str = "strided"
) -> jax.Array:
    """``[4 + len(measured(dropped))]`` one tensor's means of p, of the momenta and of the
    squares of its `measured` per-element features: one variadic reduction over (a sample of)
    the tensor. ``sample`` is `Config.stats_sample`.

    The sample is taken of the inputs, not the features: the full-size features then have a
    single consumer (the elementwise update pass), so XLA fuses them there instead of
    materialising them.
    """
    return jnp.stack(_sample_sums(x, dropped, sample)) / sampling.size(x.p.shape, sample)


def all_sample_means(
    inputs: list[ElementInputs], dropped: tuple[str, ...] = (), sample: str = "strided"
) -> jax.Array:
    """``[n, 4 + len(measured(dropped))]`` `sample_means` of every tensor, from the
    `ElementInputs` of each shape group (leading ``[k]`` axes), tensors in group order.

    The per-tensor sums of all groups are put together by one concatenation: a stack per group
    compiled to a kernel per group.
    """
    sums = [jax.vmap(lambda x: _sample_sums(x, dropped, sample))(x) for x in inputs]
    sizes = [sampling.size(x.p.shape[1:], sample) for x in inputs]
    counts = np.repeat(sizes, [len(x.p) for x in inputs]).astype(np.float32)
    channels = len(sums[0])
    flat = jnp.concatenate([s[c] for c in range(channels) for s in sums])
    return flat.reshape(channels, -1).T / counts[:, None]


def _sample_sums(x: ElementInputs, dropped: tuple[str, ...], sample: str) -> tuple:
    """The sums over `sample_means`' sample of one tensor: a tuple of scalars."""
    sample = _sample(x, x.p.shape, sample)
    feats = element_features(sample)
    kept = [feats[PER_ELEMENT_FEATURES.index(n)] for n in measured(dropped)]
    return _sums([sample.p, *sample.momenta, *(jnp.square(f) for f in kept)])


def measured(dropped: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The per-element features whose mean squares are computed: all but the ``dropped`` ones
    the LSTM does not read (`SUMMARISED`)."""
    return tuple(n for n in PER_ELEMENT_FEATURES if n not in dropped or n in SUMMARISED)


def summaries(
    means: jax.Array, x: Scales, layout: FactorLayout, dropped: tuple[str, ...] = ()
) -> jax.Array:
    """``[n, SUMMARY_SIZE]`` raw statistics of all tensors (`SUMMARY`), from their
    ``[n, 4 + len(measured(dropped))]`` `sample_means` and the factors' square means. A dropped
    feature's mean square is set to 1 (its RMS normalises nothing); this is done here, once for
    all tensors, rather than per shape group."""
    # Built with statistics on the leading axis, as in `summary_features`: XLA then fuses the
    # concatenations (the transposes cancel).
    means = means.T
    kept = {PER_ELEMENT_FEATURES.index(n): i for i, n in enumerate(measured(dropped), 4)}
    if len(kept) < PER_ELEMENT:
        one = jnp.ones_like(means[:1])
        squares = [means[kept[i], None] if i in kept else one for i in range(PER_ELEMENT)]
        means = jnp.concatenate([means[:4], *squares])
    rows, cols, slow = square_means(x, layout)
    ranks = np.minimum([len(s) for s in layout.tensor_shapes], MAX_RANK)
    sizes = [math.prod(s) for s in layout.tensor_shapes]
    static = np.concatenate(
        [np.eye(MAX_RANK + 1)[ranks], np.log1p(sizes)[:, None] / 10.0], axis=1
    ).astype(np.float32)
    # `SUMMARY` order: the sample means hold mean_p, mean_m and the per-element squares, and
    # the factor squares follow them, completing "mean_square" in table order.
    summary = jnp.concatenate([means, rows.T, cols.T, slow.T, static.T])
    assert summary.shape[0] == SUMMARY_SIZE, "summaries disagree with SUMMARY"
    return summary.T


def summary_features(summary: jax.Array) -> tuple[jax.Array, jax.Array]:
    """From ``[..., SUMMARY_SIZE]`` summaries (`summaries`):

    Returns:
      ``[..., NUM_TENSOR_FEATURES]`` LSTM inputs (`TENSOR_FEATURES`) and
      ``[..., NUM_ELEMENT_FEATURES]`` RMS of each element feature, used to normalise them.
    """
    # Blocks on the leading axis: XLA on CPU fuses a concatenation along it with the ops that
    # make its operands; along the last axis it wrote every operand out (a kernel each).
    x = jnp.moveaxis(summary, -1, 0)
    p_mean, m_mean = x[SUMMARY["mean_p"]], x[SUMMARY["mean_m"]]
    squares = x[SUMMARY["mean_square"]]
    p_ms = squares[element_index("p"), None]
    m_ms = squares[np.array([element_index(f"m{i}") for i in (1, 2, 3)])]
    sqrt_slow, slow, log_slow = x[SUMMARY["slow"]]
    lstm = {
        "p_mean": p_mean * jax.lax.rsqrt(p_ms + TINY),
        "p_variance": (p_ms - jnp.square(p_mean)) / (p_ms + TINY),
        "log_m_ms": _log_ratio(m_ms, 1.0),
        "m_mean_ratio": jnp.square(m_mean) / (m_ms + TINY),
        "slow_spread": _log_ratio(jnp.square(sqrt_slow), slow)[None],
        "slow_log_gap": ((log_slow - jnp.log(slow + EPS)) / 5.0)[None],
        "rank": x[SUMMARY["rank"]],
        "log_size": x[SUMMARY["log_size"]],
    }
    assert tuple(lstm) == tuple(name for name, _ in TENSOR_FEATURES.blocks)
    feats = jnp.concatenate(list(lstm.values()))
    return jnp.moveaxis(feats, 0, -1), jnp.moveaxis(jnp.sqrt(squares + TINY), 0, -1)


def _sample(x: ElementInputs, shape: tuple[int, ...], kind: str) -> ElementInputs:
    """Every input flattened over ``shape`` (leading stack axes kept) to the statistics sample
    (`sampling.take`) of ``kind`` (`Config.stats_sample`); the momenta kept at the sample only
    (`raw_sampled`) already are, and join the others in decay order."""
    taken = jax.tree.map(
        lambda a: sampling.take(a, shape, kind), x._replace(raw_momenta=None, raw_sampled=None)
    )
    momenta = None if x.raw_momenta is None else sampling.take(x.raw_momenta, shape, kind)
    if x.raw_sampled is not None:
        momenta = jnp.concatenate([momenta, x.raw_sampled], axis=-2)
    return taken._replace(raw_momenta=momenta)


def _sums(channels: list[jax.Array]) -> tuple[jax.Array, ...]:
    """Sums of equal-length 1-D arrays, as ONE variadic reduce."""
    zeros = tuple(jnp.zeros((), jnp.float32) for _ in channels)
    return jax.lax.reduce(
        tuple(channels), zeros, lambda a, b: tuple(u + v for u, v in zip(a, b, strict=True)), (0,)
    )


def _log_ratio(num, den):
    """log(num / den) squashed into [-2, 2]: sizes of ratios that span many decades."""
    return jnp.clip(jnp.log(num + TINY) - jnp.log(den + TINY), -10.0, 10.0) / 5.0


def progress_features(count: jax.Array, num_steps, config: Config) -> jax.Array:
    """``[len(progress_offsets)]`` tanh(10 (f - s)) for f = min(t/T, `max_progress`),
    t = ``count``, T = ``num_steps``."""
    frac = count.astype(jnp.float32) / jnp.asarray(num_steps, jnp.float32)
    frac = jnp.minimum(frac, config.max_progress)
    return jnp.tanh(10.0 * (frac - jnp.asarray(config.progress_offsets, jnp.float32)))


def global_features(
    count: jax.Array, num_steps, losses: LossBuffer, decays: jax.Array, config: Config
) -> jax.Array:
    """The LSTM inputs every tensor shares: training progress after ``count`` steps, then the
    loss features of ``losses`` (which has seen ``count + 1`` losses)."""
    return jnp.concatenate(
        [progress_features(count, num_steps, config), loss_features(losses, count + 1, decays)]
    )


def lstm_input_size(config: Config) -> int:
    """Width of the LSTM input, read off what `global_features` and `summary_features` build."""
    zero = jnp.zeros((), jnp.int32)
    shared = jax.eval_shape(
        lambda: global_features(zero, 1, init_loss_buffer(config), loss_decays(1, config), config)
    )
    return shared.shape[0] + NUM_TENSOR_FEATURES
