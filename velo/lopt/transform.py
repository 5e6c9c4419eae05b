"""`optax_lopt`: the learned optimizer as an optax transform.

One step, for a model with n float tensors:

1. fold the gradient into each tensor's accumulators (`accumulators.py`) and the loss into the
   loss buffer (`loss_buffer.py`);
2. one fused reduction per tensor gives its LSTM features and the RMS of its 30 MLP features
   (`features.py`);
3. the LSTM hypernetwork, batched over the n tensors, emits per-tensor MLP weights (a softmax
   mix over the bank) and a log step multiplier (`hypernet.py`, `param_mlp.py`);
4. one fused elementwise pass per tensor runs the MLP and forms
   ``-step * clip(d * exp(mag_mult * m)) * max(RMS(p), floor)``.

Meta-parameters and ``num_steps`` may be JAX tracers: nothing here branches on their values.
"""

from __future__ import annotations

import functools
import numbers
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from velo.lopt import checkpoint as ckpt
from velo.lopt import param_mlp
from velo.lopt.accumulators import TensorMoments, init_moments, update_moments
from velo.lopt.config import Config
from velo.lopt.features import (
    element_features,
    element_inputs,
    progress_features,
    tensor_statistics,
)
from velo.lopt.hypernet import Carry, make_hypernet, zero_carry
from velo.lopt.loss_buffer import (
    LossBuffer,
    init_loss_buffer,
    loss_decays,
    loss_features,
    update_loss_buffer,
)


class LOptState(NamedTuple):
    """State of `optax_lopt`.

    Attributes:
      count: int32 scalar, steps applied so far.
      skipped: int32 scalar, steps skipped because the gradient or loss was not finite.
      moments: one entry per parameter leaf (in `jax.tree.leaves` order): its `TensorMoments`,
        or `optax.MaskedNode` for leaves the optimizer leaves alone (integer, boolean, size 0).
      loss: the `LossBuffer`.
      lstm: LSTM carry ``(c, h)``, each ``[n_float_tensors, lstm_size]``.
    """

    count: jax.Array
    skipped: jax.Array
    moments: tuple[TensorMoments | optax.MaskedNode, ...]
    loss: LossBuffer
    lstm: Carry


def is_trained(leaf: Any) -> bool:
    """Whether the optimizer updates ``leaf``: a non-empty floating-point array."""
    return jnp.issubdtype(jnp.result_type(leaf), jnp.floating) and jnp.size(leaf) > 0


def optax_lopt(
    num_steps,
    *,
    checkpoint: str | None = None,
    meta_params: Any = None,
    config: Config | None = None,
    weight_decay=0.0,
) -> optax.GradientTransformationExtraArgs:
    """The learned optimizer for a run of ``num_steps`` steps; needs no learning rate.

    Its update is ``update(grads, state, params, *, loss)``; other keyword arguments (such as
    ``loss_fn``) are ignored. A step whose gradient or loss is not finite changes nothing but
    `LOptState.skipped`.

    Args:
      num_steps: the planned run length (>= 1; may be traced). The optimizer conditions on the
        fraction of it done and sets its loss-EMA horizons from it.
      checkpoint: a checkpoint directory (`velo.lopt.save`) or a shipped checkpoint's name.
      meta_params: meta-parameters (may be traced, e.g. a vmapped population); excludes
        ``checkpoint``.
      config: the `Config` of ``meta_params``; defaults to the ``"small"`` preset.
      weight_decay: decoupled decay, ``-step * weight_decay * p`` per step with the tensor's
        learned step (may be traced).

    Returns:
      An `optax.GradientTransformationExtraArgs`.
    """
    _check_positive("num_steps", num_steps, minimum=1)
    _check_positive("weight_decay", weight_decay, minimum=0)
    meta_params, config = ckpt.resolve(checkpoint, meta_params, config)
    hypernet = make_hypernet(config)

    def init_fn(params):
        leaves = jax.tree.leaves(params)
        moments = tuple(
            init_moments(jnp.shape(x), config) if is_trained(x) else optax.MaskedNode()
            for x in leaves
        )
        num_tensors = sum(is_trained(x) for x in leaves)
        zero = jnp.zeros((), jnp.int32)
        return LOptState(
            zero, zero, moments, init_loss_buffer(config), zero_carry(num_tensors, config)
        )

    def update_fn(updates, state, params=None, *, loss=None, **extra_args):
        del extra_args
        if loss is None:
            raise ValueError(
                "the learned optimizer needs the minibatch loss: call update(grads, state, params, "
                "loss=loss)"
            )
        if params is None:
            raise ValueError(
                "the learned optimizer needs params: call update(grads, state, params, loss=loss)"
            )
        grads, treedef = jax.tree.flatten(updates)
        leaves = treedef.flatten_up_to(params)
        trained = [i for i, p in enumerate(leaves) if is_trained(p)]
        loss = jnp.asarray(loss, jnp.float32)
        finite = jnp.isfinite(loss)
        for i in trained:
            finite = finite & jnp.all(jnp.isfinite(grads[i]))

        steps, new_state = _step(
            meta_params,
            config,
            hypernet,
            num_steps,
            weight_decay,
            state,
            [grads[i] for i in trained],
            [leaves[i] for i in trained],
            trained,
            loss,
        )
        # Select, not lax.cond: the select fuses into the loops that write the new state, while a
        # conditional would copy the whole state every step (and becomes a select under vmap).
        keep = functools.partial(jnp.where, finite)
        new_state = jax.tree.map(keep, new_state, state)
        new_state = new_state._replace(skipped=state.skipped + jnp.where(finite, 0, 1))
        out = [jnp.zeros_like(p) for p in leaves]
        for j, i in enumerate(trained):
            out[i] = keep(steps[j], jnp.zeros_like(steps[j]))
        return treedef.unflatten(out), new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _step(
    meta_params,
    config: Config,
    hypernet,
    num_steps,
    weight_decay,
    state: LOptState,
    grads,
    params,
    trained,
    loss,
):
    """One step on the trained leaves (at positions ``trained`` among all leaves).

    Returns their updates (in the parameters' dtypes) and the next state, before the finiteness
    guard.
    """
    count = state.count + 1
    decays = loss_decays(num_steps, config)
    loss_buffer = update_loss_buffer(state.loss, loss, state.count, decays)
    shared = jnp.concatenate(
        [
            progress_features(state.count, num_steps, config),
            loss_features(loss_buffer, count, decays),
        ]
    )
    all_moments = list(state.moments)
    inputs, tensor_feats, feature_rms = [], [], []
    for g, p, i in zip(grads, params, trained, strict=True):
        all_moments[i] = update_moments(state.moments[i], g.astype(jnp.float32), config)
        x = element_inputs(
            p.astype(jnp.float32), g.astype(jnp.float32), all_moments[i], count, config
        )
        feats, rms = tensor_statistics(x)
        inputs.append(x)
        tensor_feats.append(feats)
        feature_rms.append(rms)
    lstm_in = jnp.concatenate(
        [jnp.broadcast_to(shared, (len(grads), shared.shape[0])), jnp.stack(tensor_feats)], axis=1
    )
    carry, logits, log_step = hypernet.apply(
        {"params": meta_params["hypernet"]}, lstm_in, state.lstm
    )
    weights = param_mlp.mix(param_mlp.MLPWeights(**meta_params["bank"]), logits)
    steps = []
    for j, (x, p, rms) in enumerate(zip(inputs, params, feature_rms, strict=True)):
        w = jax.tree.map(lambda a, j=j: a[j], weights)
        d, m = param_mlp.apply(w, element_features(x), rms)
        magnitude = jnp.exp(jnp.minimum(config.mag_mult * m, 10.0))
        direction = jnp.clip(d * magnitude, -config.max_direction, config.max_direction)
        scale = jnp.maximum(rms[2], config.param_scale_floor)  # feature 2 is p: rms[2] = RMS(p)
        update = -jnp.exp(log_step[j]) * (direction * scale + weight_decay * x.p)
        steps.append(update.astype(p.dtype))
    return steps, LOptState(count, state.skipped, tuple(all_moments), loss_buffer, carry)


def _check_positive(name: str, value, minimum: float) -> None:
    """Validate ``value`` only when it is a concrete Python/NumPy number (it may be traced)."""
    if isinstance(value, numbers.Number) and not value >= minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
