"""Scale-freeness of the learned optimizer's inputs and the shape of its update."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from velo import lopt
from velo.lopt import accumulators, factors, features, loss_buffer

CONFIG = lopt.preset("tiny")


def element_inputs(p, grads):
    """`features.ElementInputs` of ``p`` after the gradients ``grads``, its `Scales` and
    `FactorLayout` (a group of one tensor)."""
    layout = factors.FactorLayout((p.shape,), (1,))
    moments, shared = accumulate(layout, [[g[None]] for g in grads])
    scales = factors.scales(shared, layout, jnp.int32(len(grads)), CONFIG)
    sampled = layout.group_samples(shared.sampled, 0, CONFIG.stats_sample)
    group = (p[None], grads[-1][None], moments[0], sampled)
    x = jax.tree.map(lambda a: a[0], features.group_inputs(*group, scales, layout, 0))
    return x, scales, layout


def accumulate(layout, steps):
    """Per-group `TensorMoments` and the `SharedMoments` of the groups of ``layout`` after
    ``steps``, each a list of per-group ``[k, *shape]`` gradients."""
    update = jax.vmap(functools.partial(accumulators.update_moments, config=CONFIG))
    moments = [
        jax.tree.map(lambda a, k=k: jnp.stack([a] * k), accumulators.init_moments(s, CONFIG))
        for s, k in zip(layout.shapes, layout.group_sizes, strict=True)
    ]
    shared = layout.zero_moments(CONFIG)

    @jax.jit  # one program per step, not one per operation
    def step(moments, shared, g):
        moments = [update(m, x) for m, x in zip(moments, g, strict=True)]
        squares = [jax.vmap(accumulators.gradient_squares)(x) for x in g]
        return moments, factors.accumulate(shared, g, squares, layout, CONFIG)

    for g in steps:
        moments, shared = step(moments, shared, g)
    return moments, shared


def observe(p, grads):
    """LSTM features and all RMS-normalised MLP features (the row and column ones broadcast
    from their factors) of ``p`` after the gradients ``grads``."""
    x, scales, layout = element_inputs(p, grads)
    summary = features.summaries(features.sample_means(x)[None], scales, layout)
    tensor_feats, rms = (a[0] for a in features.summary_features(summary))
    row_feats, col_feats = factors.factor_features(scales)
    rows, cols = layout.group_rows(row_feats, 0)[0], layout.group_cols(col_feats, 0)
    every = [*features.element_features(x), *rows, *(rows if cols is None else cols[0])]
    normalised = [jnp.broadcast_to(f, p.shape) / r for f, r in zip(every, rms, strict=True)]
    return tensor_feats, jnp.stack(normalised)


@pytest.mark.parametrize("shape", [(24, 16), (40,), (3, 4, 6)])
def test_features_ignore_weight_and_gradient_scale(shape):
    keys = jax.random.split(jax.random.key(0), 4)
    p = jax.random.normal(keys[0], shape) * 0.1 + 0.02
    grads = [jax.random.normal(k, shape) * 1e-2 for k in keys[1:]]
    observe_jit = jax.jit(observe)
    base_tensor, base_elem = observe_jit(p, grads)
    assert base_elem.shape == (features.NUM_ELEMENT_FEATURES, *shape)
    for p_scale, g_scale in [(1e3, 1.0), (1e-3, 1.0), (1.0, 1e4), (1.0, 1e-4), (7.0, 0.03)]:
        tensor, elem = observe_jit(p * p_scale, [g * g_scale for g in grads])
        np.testing.assert_allclose(tensor, base_tensor, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(elem, base_elem, rtol=1e-3, atol=1e-4)
    assert np.isfinite(base_tensor).all() and np.isfinite(base_elem).all()


def test_large_tensor_statistics_use_a_fixed_sample():
    shape = (lopt.sampling.STATS_SAMPLE // 8, 40)  # 5x the sample size
    p = jax.random.normal(jax.random.key(0), shape)
    g = jax.random.normal(jax.random.key(1), shape)
    tensor_feats, rms = jax.jit(observe)(p, [g])
    # The sampled RMS of p is close to the exact one; the p features are mean/variance ratios.
    np.testing.assert_allclose(tensor_feats[1], 1.0, atol=0.02)  # var(p) / mean(p^2), mean 0
    assert np.isfinite(rms).all()


@pytest.mark.parametrize("kind", lopt.config.STATS_SAMPLES)
def test_sample_positions(kind):
    """Which elements each `Config.stats_sample` reads: all of a small tensor; of a large one,
    about `STATS_SAMPLE` spread over the whole tensor, in contiguous blocks for "blocks"."""
    x = features.ElementInputs(*(None,) * len(features.ElementInputs._fields))
    small = jnp.arange(lopt.sampling.STATS_SAMPLE, dtype=jnp.float32).reshape(-1, 64)
    taken = features._sample(x._replace(p=small), small.shape, kind).p
    np.testing.assert_array_equal(taken, np.arange(lopt.sampling.STATS_SAMPLE))
    size = lopt.sampling.STATS_SAMPLE * 24 + 1000
    taken = np.asarray(
        features._sample(x._replace(p=jnp.arange(size, dtype=jnp.float32)), (size,), kind).p
    ).astype(int)
    assert abs(len(taken) / lopt.sampling.STATS_SAMPLE - 1) < 0.05
    assert taken[0] == 0 and taken[-1] > size * 0.95
    run = lopt.sampling.SAMPLE_BLOCK if kind == "blocks" else 1
    starts = taken[::run]
    assert np.all(taken.reshape(-1, run) - starts[:, None] == np.arange(run))  # contiguous runs
    assert len(set(np.diff(starts))) == 1  # evenly spaced
    if kind == "blocks":  # ...and in every column range of a matrix with rows of 4 blocks
        columns = starts % (4 * lopt.sampling.SAMPLE_BLOCK)
        assert set(columns) == {k * lopt.sampling.SAMPLE_BLOCK for k in range(4)}


def test_blocks_sample_agrees_with_strided_statistics():
    """On a tensor without structure, both samples estimate the same statistics."""
    shape = (lopt.sampling.STATS_SAMPLE // 8, 40)
    keys = jax.random.split(jax.random.key(3), 3)
    p = jax.random.normal(keys[0], shape) * 0.1 + 0.02
    grads = [jax.random.normal(k, shape) * 1e-2 for k in keys[1:]]
    x, _, _ = element_inputs(p, grads)
    means = {s: np.asarray(features.sample_means(x, sample=s)) for s in ("strided", "blocks")}
    strided, blocks = means["strided"], means["blocks"]
    assert not np.array_equal(strided, blocks)  # different elements...
    # ...the same means and mean squares, to sampling error; except that of rsqrt_v, a mean of
    # 1 / v over two gradients, which the few elements with v near 0 dominate.
    light = [4 + i for i, name in enumerate(features.PER_ELEMENT_FEATURES) if name != "rsqrt_v"]
    np.testing.assert_allclose(blocks[light], strided[light], rtol=0.05)
    np.testing.assert_allclose(blocks[:4], strided[:4], atol=0.01)


def test_config_rejects_an_unknown_sample():
    with pytest.raises(ValueError, match="stats_sample must be one of"):
        lopt.Config(stats_sample="random")


def test_loss_features_ignore_shift_and_scale():
    decays = loss_buffer.loss_decays(200, CONFIG)
    losses = 2.0 + jnp.cos(jnp.arange(40.0) / 5.0) - jnp.arange(40.0) / 40.0

    @jax.jit
    def feats(ls):
        def fold(buf, t_loss):
            return loss_buffer.update_loss_buffer(buf, t_loss[1], t_loss[0], decays), None

        steps = jnp.arange(len(ls), dtype=jnp.int32)
        buf, _ = jax.lax.scan(fold, loss_buffer.init_loss_buffer(CONFIG), (steps, ls))
        return loss_buffer.loss_features(buf, jnp.int32(len(ls)), decays)

    base = feats(losses)
    assert base.shape == (2 * CONFIG.num_loss_emas - 1,)
    assert np.abs(base).max() <= 1.0 and np.abs(base).max() > 0.1
    np.testing.assert_allclose(feats(1e3 * losses - 5.0), base, atol=1e-4)
    np.testing.assert_array_equal(feats(losses[:2]), 0.0)  # nothing until 3 losses are seen


def test_max_min_is_one_reduction_with_jnp_results():
    """The loss buffer's extremes come from one variadic reduce, equal to jnp's max and min
    (NaN included)."""
    a, b = jax.random.normal(jax.random.key(0), (2, 10))
    top, low, size = loss_buffer._max_min(a, b, jnp.abs(a))
    assert (top, low, size) == (jnp.max(a), jnp.min(b), jnp.max(jnp.abs(a)))
    hlo = jax.jit(loss_buffer._max_min).lower(a, b).as_text()
    assert hlo.count("stablehlo.reduce") == 1
    assert np.isnan(loss_buffer._max_min(a.at[3].set(jnp.nan), b)[0])
    assert np.isnan(loss_buffer._max_min(a, b.at[0].set(jnp.nan))[1])


def test_progress_features():
    at = [features.progress_features(jnp.int32(t), 100, CONFIG) for t in (0, 50, 100)]
    assert at[0][0] < 0 < at[2][0] and np.all(np.diff(np.stack(at), axis=0) > 0)


def test_update_is_relative_to_the_tensor_scale():
    """Scaling a weight matrix scales its update (and only then by the same factor)."""
    meta_params = lopt.init_meta_params(jax.random.key(0), CONFIG)
    opt = lopt.optax_lopt(10, meta_params=meta_params, config=CONFIG)
    p = jax.random.normal(jax.random.key(1), (16, 8)) * 0.2
    g = jax.random.normal(jax.random.key(2), (16, 8))

    @jax.jit
    def update(p, g):
        return opt.update({"w": g}, opt.init({"w": p}), {"w": p}, loss=1.0)[0]["w"]

    base = update(p, g)
    np.testing.assert_allclose(update(5.0 * p, g), 5.0 * base, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(update(p, 100.0 * g), base, rtol=1e-4, atol=1e-7)
    # Initial meta-params: a normalised-momentum step of about init_step * RMS(p) per element.
    rms = lambda a: float(jnp.sqrt(jnp.mean(a**2)))  # noqa: E731
    assert 0.5 < rms(base) / (CONFIG.init_step * rms(p)) < 2.0
    # First step: Adam's, -sign(g) (bias-corrected m / sqrt(v)), up to the bank's small noise.
    assert np.corrcoef(np.ravel(base), -np.sign(np.ravel(g)))[0, 1] > 0.95


def test_feature_table_is_pinned_to_the_feature_versions():
    """Renaming, reordering or resizing a feature must come with new feature versions: old
    meta-parameters would otherwise read the wrong inputs without any error."""
    import hashlib

    table = (features.ELEMENT_FEATURES, features.SUMMARY.blocks, features.TENSOR_FEATURES.blocks)
    digest = hashlib.sha256(repr(table).encode()).hexdigest()[:16]
    assert digest == "facad8786eea438b", "feature table changed: bump the rules' feature_version"
    assert {n: r.feature_version for n, r in lopt.rules.RULES.items()} == {"v1": 1, "v2": 2}
    assert len(features.ELEMENT_FEATURES) == len(set(features.ELEMENT_FEATURES)) == 30
    assert features.element_index("p") == 2 and features.element_index("m1_v") == 7
    # Consumers index by name, and the widths follow from what is built.
    assert features.lstm_input_size(CONFIG) == (
        len(CONFIG.progress_offsets) + 2 * CONFIG.num_loss_emas - 1 + features.NUM_TENSOR_FEATURES
    )
    with pytest.raises(ValueError, match="no element feature"):
        features.element_index("momentum")


def test_factor_buffers_round_trip_and_give_the_adafactor_estimate():
    """All tensors' factors live in concatenated buffers; each group reads back its own, and
    inv_rows * col_scale is rsqrt of row * col / mean(row) over the last two axes."""
    shapes = [(5, 6), (5, 6), (3,), (2, 3, 4), ()]
    keys = jax.random.split(jax.random.key(2), len(shapes))
    groups = lopt.groups.Groups.from_leaves([jnp.zeros(s) for s in shapes])
    layout = factors.FactorLayout.from_groups(groups, [jnp.zeros(s) for s in shapes])

    grads = [jnp.stack([jax.random.normal(keys[i], shapes[i]) for i in idx])
             for idx in groups.indices]  # fmt: skip
    _, shared = accumulate(layout, [grads])
    count = jnp.int32(1)
    slowest = accumulators.debias(CONFIG.factored_decays[-1], count)
    factored = accumulators.debias(jnp.asarray(CONFIG.factored_decays), count)
    scales = jax.jit(lambda shared: factors.scales(shared, layout, count, CONFIG))(shared)
    for group, g in enumerate(grads):
        # This group's raw factored EMAs after one gradient, [k, 3, ...].
        weight = 1.0 - jnp.asarray(CONFIG.factored_decays)
        raw_rows, raw_cols = (
            None if x is None else x[:, None] * weight.reshape(-1, *(1,) * (x.ndim - 1))
            for x in jax.vmap(accumulators.gradient_squares)(g)
        )
        s = jnp.mean(raw_rows[:, -1], axis=tuple(range(1, raw_rows.ndim - 1)))  # slowest
        s = s.reshape(-1, *(1,) * (raw_rows.ndim - 1)) * slowest + 1e-30
        rows = raw_rows * factored.reshape(1, -1, *(1,) * (raw_rows.ndim - 2)) / s
        np.testing.assert_allclose(layout.group_rows(scales.rows, group), rows, rtol=1e-5)
        if raw_cols is None:
            assert layout.group_cols(scales.col_scale, group) is None
            continue
        cols = raw_cols * factored.reshape(1, -1, *(1,) * (raw_cols.ndim - 2)) / s
        estimate = rows * cols / jnp.mean(rows, axis=-2, keepdims=True)
        inv = layout.group_rows(scales.inv_rows, group) * layout.group_cols(scales.col_scale, group)
        np.testing.assert_allclose(inv, jax.lax.rsqrt(estimate + 1e-10), rtol=1e-4)


def test_shares_equal_the_products_tensor_by_tensor():
    """`factors.shares` (a matmul per size class of factor vectors) against each group's
    weights times its factor features; below rank 2 both kinds of weights apply to the rows."""
    shapes = [(5, 6), (5, 6), (3,), (2, 3, 4), (), (40, 2), (7,)]
    leaves = [jnp.zeros(s) for s in shapes]
    layout = factors.FactorLayout.from_groups(lopt.groups.Groups.from_leaves(leaves), leaves)
    keys = jax.random.split(jax.random.key(4), 5)
    n, h = len(shapes), 4
    w_rows, w_cols = (jax.random.normal(k, (n, 6, h)) for k in keys[:2])
    bias = jax.random.normal(keys[2], (n, h))
    feats = (jax.random.normal(keys[3], (6, layout.rows.size)),
             jax.random.normal(keys[4], (6, layout.cols.size)))  # fmt: skip
    shares = jax.jit(lambda *args: factors.shares(*args, layout))(w_rows, w_cols, bias, feats)
    for group, (row_share, col_share) in enumerate(shares):
        w_r, w_c, b = (layout.group_slice(a, group) for a in (w_rows, w_cols, bias))
        rows, cols = layout.group_rows(feats[0], group), layout.group_cols(feats[1], group)
        if cols is None:
            w_r = w_r + w_c
            assert col_share is None
        else:
            want = jnp.einsum("kfh,kf...->kh...", w_c, cols)
            np.testing.assert_allclose(col_share, want, rtol=1e-5, atol=1e-5)
        want = jnp.einsum("kfh,kf...->kh...", w_r, rows)
        want = want + b.reshape(*b.shape, *(1,) * (rows.ndim - 2))
        np.testing.assert_allclose(row_share, want, rtol=1e-5, atol=1e-5)


def test_size_classes_keep_equal_lengths_together_and_bound_the_padding():
    lengths = (16384,) * 12 + (0,) + (1024,) * 20 + (10,) + (256,) * 30 + (1000,)
    classes = factors._size_classes(lengths, slack=0)
    assert sorted(t for c in classes for t in c) == [t for t, n in enumerate(lengths) if n]
    for members in classes:
        assert members == sorted(members)
        padded = max(lengths[t] for t in members) * len(members)
        assert padded <= 1.25 * sum(lengths[t] for t in members)
    for n in set(lengths) - {0}:
        assert sum(any(lengths[t] == n for t in c) for c in classes) == 1
    small = (100, 10, 1)  # padding 16k entries costs nothing: the slack merges them
    assert len(factors._size_classes(small, slack=0)) == 3
    assert factors._size_classes(small) == [[0, 1, 2]]


def test_all_sample_means_stacks_every_tensors_means_in_group_order():
    """`all_sample_means` over groups of different sizes (one sampled) equals `sample_means`
    tensor by tensor, tensors in group order."""
    shapes = [(3, 5), (lopt.sampling.STATS_SAMPLE // 4, 8)]
    keys = iter(jax.random.split(jax.random.key(5), 16))
    tensors = [[element_inputs(jax.random.normal(next(keys), s), [jax.random.normal(next(keys), s)])
                for _ in range(k)] for s, k in zip(shapes, (2, 1), strict=True)]  # fmt: skip
    groups = [jax.tree.map(lambda *a: jnp.stack(a), *(x for x, _, _ in t)) for t in tensors]
    dropped = ("g", "p")
    means = jax.jit(features.all_sample_means, static_argnums=(1, 2))(groups, dropped, "blocks")
    each = jax.jit(features.sample_means, static_argnums=(1, 2))
    expected = [each(x, dropped, "blocks") for t in tensors for x, _, _ in t]
    np.testing.assert_allclose(means, np.stack(expected), rtol=1e-6)
    assert means.shape == (3, 4 + len(features.measured(dropped)))
