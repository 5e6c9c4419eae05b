"""The per-parameter MLP: RMS-normalised features -> its outputs per element (rule v1: direction d
and log-magnitude m; rule v2: direction d).

Its weights are emitted per tensor by the hypernetwork as a softmax mix over a bank of K weight
sets. The MLP is written out unit by unit on per-feature arrays rather than as a matmul over a
stacked ``[..., 30]`` array, so XLA fuses feature construction and the whole MLP into a single
elementwise loop that never materialises the features.

References:
  Metz et al., "VeLO: Training Versatile Learned Optimizers by Scaling Up", 2022,
  https://arxiv.org/abs/2211.09760
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from velo.lopt.config import Config
from velo.lopt.features import ELEMENT_FEATURES, NUM_ELEMENT_FEATURES, PER_ELEMENT, element_index
from velo.lopt.rules import get as get_rule

# Adam's direction (fast momentum over the root second moment): the initial MLP passes it through.
PASS_THROUGH_FEATURE = "m1_v"


class MLPWeights(NamedTuple):
    """Weights of one MLP (or a stack of them, with leading axes).

    Attributes:
      w1: ``[F, H]``; b1: ``[H]``; w2: ``[H, H]``; b2: ``[H]``; w3: ``[H, O]``; b3: ``[O]``,
      O = the rule's `num_outputs`. Output 0 is the direction d (rule v1: output 1 is the
      log-magnitude m).
    """

    w1: jax.Array
    b1: jax.Array
    w2: jax.Array
    b2: jax.Array
    w3: jax.Array
    b3: jax.Array


def init_bank(key: jax.Array, config: Config) -> MLPWeights:
    """``[bank_size, ...]`` weight sets scattered around a hand-designed MLP.

    The hand-designed MLP outputs d = normalised preconditioned momentum exactly (hidden units
    0 and 1 carry relu(x) and relu(-x); d = h0 - h1) and any other output 0, i.e. a normalised
    Adam-like step.
    Its remaining hidden units get fan-in scaled random input weights and zero output weights, so
    meta-training can recruit them. Each bank member adds ``init_noise``-scaled noise. The rows
    of `Config.dropped_inputs` in ``w1`` are zero.
    """
    f, h, o = NUM_ELEMENT_FEATURES, config.mlp_hidden, get_rule(config).num_outputs
    if h < 2:
        raise ValueError(f"Config.mlp_hidden must be >= 2 for the initial MLP, got {h}")
    base_key, noise_key = jax.random.split(key)
    k1, k2 = jax.random.split(base_key)
    # Pass-through path: units 0 and 1 of both hidden layers; the rest is random and unused.
    w1_fixed, w1_free = np.zeros((f, h), np.float32), np.ones((f, h), np.float32)
    w1_fixed[element_index(PASS_THROUGH_FEATURE), :2] = (1.0, -1.0)
    w1_free[:, :2] = 0.0
    w2_fixed, w2_free = np.zeros((h, h), np.float32), np.ones((h, h), np.float32)
    w2_fixed[0, 0] = w2_fixed[1, 1] = 1.0
    w2_free[:2, :] = w2_free[:, :2] = 0.0
    w3 = np.zeros((h, o), np.float32)
    w3[0, 0], w3[1, 0] = 1.0, -1.0
    w1 = w1_fixed + w1_free * jax.random.normal(k1, (f, h)) / math.sqrt(f)
    w2 = w2_fixed + w2_free * jax.random.normal(k2, (h, h)) / math.sqrt(h)
    base = MLPWeights(w1, jnp.zeros(h), w2, jnp.zeros(h), w3, jnp.zeros(o))
    keys = jax.random.split(noise_key, len(base))

    def scatter(k, w):
        fan_in = w.shape[0] if w.ndim == 2 else 1
        noise = jax.random.normal(k, (config.bank_size, *w.shape)) / math.sqrt(fan_in)
        return (w + config.init_noise * noise).astype(jnp.float32)

    bank = MLPWeights(*(scatter(k, w) for k, w in zip(keys, base, strict=True)))
    kept = np.array([name not in config.dropped_inputs for name in ELEMENT_FEATURES], np.float32)
    return bank._replace(w1=bank.w1 * kept[:, None])


def without_inputs(meta_params: dict, names: tuple[str, ...]) -> dict:
    """``meta_params`` with the ``w1`` rows of the element features ``names`` zeroed in every
    bank member (bank ``w1``: ``[K, F, H]``): the MLP then ignores those inputs, and a config
    with them in `Config.dropped_inputs` computes the same updates without computing them."""
    rows = [element_index(name) for name in names]
    bank = meta_params["bank"]
    return {**meta_params, "bank": {**bank, "w1": bank["w1"].at[:, rows].set(0.0)}}


def mix(bank: MLPWeights, logits: jax.Array) -> MLPWeights:
    """Per-tensor weights ``[n, ...]`` from the bank ``[K, ...]`` and logits ``[n, K]``: one
    matrix product for all six arrays (six products compiled to six kernels)."""
    coeffs = jax.nn.softmax(logits, axis=-1)
    flat = jnp.concatenate([w.reshape(w.shape[0], -1) for w in bank], axis=1)
    ends = np.cumsum([math.prod(w.shape[1:]) for w in bank])[:-1]
    mixed = jnp.split(coeffs @ flat, ends, axis=1)
    return MLPWeights(*(m.reshape(-1, *w.shape[1:]) for m, w in zip(mixed, bank, strict=True)))


def normalise(weights: MLPWeights, feature_rms: jax.Array) -> MLPWeights:
    """Fold the ``[..., F]`` RMS of each feature over its tensor into ``[..., F, H]`` ``w1``,
    so normalising the features costs nothing per element."""
    return weights._replace(w1=weights.w1 / feature_rms[..., None])


def apply(weights: MLPWeights, feats: list[jax.Array], row_share, col_share) -> list[jax.Array]:
    """Run one tensor's MLP elementwise.

    Args:
      weights: one `normalise`d MLP (no leading axes). Its first layer's bias and the rows of
        the factor features are not read: the shares carry their contribution.
      feats: the tensor's `features.element_features`, each broadcastable to its shape (None
        for a dropped input, whose ``w1`` row is not read).
      row_share: ``[H, ...]`` first-layer bias plus the row features' share
        (`factors.shares`), broadcastable to the tensor's shape.
      col_share: ``[H, ...]`` the column features' share, or None (rank < 2).

    Returns:
      The outputs (``[d, m]`` for rule v1, ``[d]`` for v2), each broadcastable to the tensor's
      shape.
    """
    hidden = []
    for j in range(weights.w1.shape[1]):
        bias = row_share[j] if col_share is None else row_share[j] + col_share[j]
        hidden.append(_unit(feats, weights.w1[:PER_ELEMENT, j], bias))
    hidden = [_unit(hidden, weights.w2[:, j], weights.b2[j]) for j in range(len(hidden))]
    return [_dense(hidden, weights.w3[:, k], weights.b3[k]) for k in range(weights.w3.shape[1])]


def _dense(xs: list[jax.Array | None], w: jax.Array, b: jax.Array) -> jax.Array:
    """``b + sum_i xs[i] * w[i]`` over the inputs that are not None (dropped)."""
    out = b
    for i, x in enumerate(xs):
        if x is not None:
            out = out + x * w[i]
    return out


def _unit(xs: list[jax.Array | None], w: jax.Array, b: jax.Array) -> jax.Array:
    return jax.nn.relu(_dense(xs, w, b))
