"""The learned update agrees with updates recorded from an earlier implementation.

Speed work rewrites how the update is computed, never what it computes: a rewrite must give the
recorded parameters to float rounding (fused multiply-adds and reordered sums round
differently), or change `FEATURE_VERSION` and be evaluated anew. The model covers every code
path: ranks 0-4, a stacked group of equal shapes, and a tensor large enough to be summarised
from a strided sample. Regenerate the record only for a versioned feature change:

    VELO_RECORD=1 .venv/bin/python -m pytest tests/test_lopt_recorded.py
"""

import dataclasses
import functools
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from velo import lopt

RECORD = pathlib.Path(__file__).parent / "data" / "lopt_recorded.npz"
STEPS = 3
V2_OPTIONS = dataclasses.replace(
    lopt.preset("v2"), orthogonalize=True, adam_for_vectors=True, scale_reference="initial"
)
CASES = {
    "velo_small": dict(checkpoint="velo_small"),
    "init_v2": dict(checkpoint="init:v2", weight_decay=0.01),
    "init_v2_options": dict(
        meta_params=lopt.init_meta_params(jax.random.key(3), V2_OPTIONS), config=V2_OPTIONS
    ),
}
# Elements of the sampled tensor kept in the record (all of the others are kept).
_BIG_KEEP = np.s_[::97]


def model_params():
    shapes = {"scalar": (), "bias": (7,), "w_a": (5, 6), "w_b": (5, 6), "w3": (2, 3, 4),
              "conv": (3, 3, 2, 4), "big": (300, 240)}  # fmt: skip
    keys = jax.random.split(jax.random.key(11), len(shapes))
    pairs = zip(shapes.items(), keys, strict=True)
    return {n: 0.3 * jax.random.normal(k, s) for (n, s), k in pairs}


def run(case: dict) -> dict:
    """Parameters after `STEPS` updates with fixed pseudo-random gradients and losses."""
    options = dict(case)
    names = ("checkpoint", "meta_params", "config")
    meta_params, config = lopt.checkpoint.resolve(*(options.pop(n, None) for n in names))
    step = _step(config, tuple(sorted(options.items())))
    params = model_params()
    state = lopt.optax_lopt(20, meta_params=meta_params, config=config, **options).init(params)
    for t in range(STEPS):
        params, state = step(meta_params, params, state, t)
    out = {n: np.asarray(p) for n, p in params.items()}
    out["big"] = out["big"].reshape(-1)[_BIG_KEEP]
    return out


@functools.cache
def _step(config, options: tuple):
    """One compiled step per config and options, shared by the runs that differ only in their
    meta-parameters (an argument, not a constant of the program)."""

    @jax.jit
    def step(meta_params, params, state, t):
        opt = lopt.optax_lopt(20, meta_params=meta_params, config=config, **dict(options))
        key = jax.random.fold_in(jax.random.key(5), t)
        keys = jax.random.split(key, len(params))
        grads = {n: (1.0 + t) * jax.random.normal(k, p.shape)
                 for (n, p), k in zip(params.items(), keys, strict=True)}  # fmt: skip
        updates, state = opt.update(grads, state, params, loss=2.0 / (1.0 + t))
        return jax.tree.map(jnp.add, params, updates), state

    return step


def flat(name: str, params: dict) -> dict:
    return {f"{name}/{k}": v for k, v in params.items()}


@pytest.mark.parametrize("name", sorted(CASES))
def test_update_matches_the_record(name):
    got = flat(name, run(CASES[name]))
    if os.environ.get("VELO_RECORD"):
        old = dict(np.load(RECORD)) if RECORD.exists() else {}
        RECORD.parent.mkdir(exist_ok=True)
        np.savez_compressed(RECORD, **{**old, **got})
        pytest.skip(f"recorded {name} into {RECORD}")
    record = np.load(RECORD)
    start = flat(name, {n: np.asarray(p) for n, p in model_params().items()})
    start[f"{name}/big"] = start[f"{name}/big"].reshape(-1)[_BIG_KEEP]
    for key, value in got.items():
        moved = record[key] - start[key]
        # Relative to the tensor's whole move: every tensor moved, so this cannot pass by
        # comparing zeros.
        assert np.abs(moved).max() > 1e-4, key
        atol = 2e-5 * np.abs(moved).max()
        np.testing.assert_allclose(value - start[key], moved, rtol=0, atol=atol, err_msg=key)


def test_dropped_inputs_ignore_their_rows_and_match_zero_rows():
    """`Config.dropped_inputs` skips features exactly: with their ``w1`` rows zeroed, the full
    table computes the same update, and with the dropped config the rows are never read."""
    meta_params, config = lopt.checkpoint.resolve("velo_small", None, None)
    # p and m2 are also LSTM inputs (their statistics stay); the rest go entirely.
    dropped = ("g", "g_clipped", "p", "m2", "g_v", "g_f1", "g_f2", "g_f3", "m3_f3")
    zeroed = lopt.param_mlp.without_inputs(meta_params, dropped)
    small = dataclasses.replace(config, dropped_inputs=dropped)
    full = run(dict(meta_params=zeroed, config=config))
    ignored = run(dict(meta_params=meta_params, config=small))
    for name, value in run(dict(meta_params=zeroed, config=small)).items():
        np.testing.assert_allclose(value, full[name], rtol=1e-6, atol=1e-7, err_msg=name)
        np.testing.assert_array_equal(ignored[name], value, err_msg=name)
    unzeroed = run(dict(meta_params=meta_params, config=config))
    assert not np.allclose(unzeroed["w_a"], full["w_a"], rtol=1e-5, atol=0)


def test_momenta_kept_at_the_sample_give_the_same_updates():
    """The default checkpoint's MLP reads only the fastest momentum per element, so the other
    two are kept at the statistics sample only (`SharedMoments.sampled`): half the state, the
    same updates as keeping them in full."""
    meta_params, lean = lopt.checkpoint.resolve(None, None, None)
    assert lean.full_momenta == 1
    params = model_params()
    state = lopt.optax_lopt(20, meta_params=meta_params, config=lean).init(params)
    big = [m.ema for m in state.inner.moments if m.ema.shape[2:] == (300, 240)][0]
    assert big.shape == (1, 2, 300, 240)  # one tensor: its fastest momentum and second moment
    n = sum(lopt.sampling.size(x.shape, lean.stats_sample) for x in jax.tree.leaves(params))
    assert state.inner.shared.sampled.shape == (2, n) and n < 72000 // 2
    full = dataclasses.replace(lean, dropped_inputs=("g",))
    assert full.full_momenta == 3
    zeroed = lopt.param_mlp.without_inputs(meta_params, lean.dropped_inputs)
    want = run(dict(meta_params=zeroed, config=full))
    for name, value in run(dict(meta_params=meta_params, config=lean)).items():
        np.testing.assert_allclose(value, want[name], rtol=1e-6, atol=1e-7, err_msg=name)
