"""`optax_lopt`: the learned optimizer as an optax transform.

One step, for a model with n float tensors:

1. fold the gradient into each tensor's accumulators (`accumulators.py`) and the loss into the
   loss buffer (`loss_buffer.py`);
2. one fused reduction per tensor gives its summary statistics, from which one batched
   computation over all tensors makes the LSTM features and the RMS of the 30 MLP features
   (`features.py`);
3. the LSTM hypernetwork, batched over the n tensors, emits per-tensor MLP weights (a softmax
   mix over the bank) and a log step multiplier (`hypernet.py`, `param_mlp.py`);
4. one fused elementwise pass per tensor runs the MLP and forms
   ``-step * clip(d * exp(mag_mult * m)) * max(RMS(p), floor)``.

Compile time, not run time, is what a learned optimizer costs most on small models, and XLA's
grows with the size of the program: tensors of equal shape and dtype are therefore stacked and
processed as one group under `jax.vmap`, so the per-tensor statistics are compiled once per
distinct shape (the elementwise pass is still fused per tensor, for speed), and the decays
of each accumulator kind are stacked so that one array op updates all three.

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
    element_inputs,
    progress_features,
    summary_features,
    tensor_summary,
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
      moments: one `TensorMoments` per group of trained leaves of equal shape and dtype (see
        `_shape_groups`), each array with a leading axis over the group's tensors. Integer,
        boolean and size-0 leaves are left alone and have none.
      loss: the `LossBuffer`.
      lstm: LSTM carry ``(c, h)``, each ``[n_float_tensors, lstm_size]``, tensors in group order.
    """

    count: jax.Array
    skipped: jax.Array
    moments: tuple[TensorMoments, ...]
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
        groups = _shape_groups(leaves)
        moments = tuple(
            jax.tree.map(
                functools.partial(_zeros_for_group, len(idx)),
                init_moments(jnp.shape(leaves[idx[0]]), config),
            )
            for idx in groups
        )
        num_tensors = sum(len(idx) for idx in groups)
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
        groups = _shape_groups(leaves)
        loss = jnp.asarray(loss, jnp.float32)
        finite = jnp.isfinite(loss)
        for idx in groups:
            for i in idx:
                finite = finite & jnp.all(jnp.isfinite(grads[i]))

        steps, new_state = _step(
            meta_params,
            config,
            hypernet,
            num_steps,
            weight_decay,
            state,
            grads,
            leaves,
            groups,
            loss,
        )
        # Select, not lax.cond: the select fuses into the loops that write the new state, while a
        # conditional would copy the whole state every step (and becomes a select under vmap).
        keep = functools.partial(jnp.where, finite)
        new_state = jax.tree.map(keep, new_state, state)
        new_state = new_state._replace(skipped=state.skipped + jnp.where(finite, 0, 1))
        out = [jnp.zeros_like(p) for p in leaves]
        for idx, group_steps in zip(groups, steps, strict=True):
            for k, i in enumerate(idx):
                out[i] = keep(group_steps[k], jnp.zeros_like(group_steps[k]))
        return treedef.unflatten(out), new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _shape_groups(leaves) -> tuple[tuple[int, ...], ...]:
    """Indices of the trained leaves, grouped by (shape, dtype) in order of first appearance.

    Each group is processed as one stacked array under `jax.vmap`, so a model whose layers repeat
    (a transformer) compiles the per-tensor computation once per distinct shape, not per tensor.
    """
    groups: dict[tuple, list[int]] = {}
    for i, x in enumerate(leaves):
        if is_trained(x):
            groups.setdefault((jnp.shape(x), jnp.result_type(x)), []).append(i)
    return tuple(tuple(idx) for idx in groups.values())


def _zeros_for_group(size: int, like: jax.Array) -> jax.Array:
    return jnp.zeros((size, *like.shape), like.dtype)


def _stack(arrays: list[jax.Array]) -> jax.Array:
    """Float32 ``[len(arrays), ...]``; a free reshape for a single array."""
    arrays = [a.astype(jnp.float32) for a in arrays]
    return arrays[0][None] if len(arrays) == 1 else jnp.stack(arrays)


def _step(
    meta_params,
    config: Config,
    hypernet,
    num_steps,
    weight_decay,
    state: LOptState,
    grads,
    params,
    groups,
    loss,
):
    """One step on the trained leaves, in their shape groups (`_shape_groups`).

    Returns, per group, the updates ``[group size, ...]`` (in the parameters' dtype) and the next
    state, before the finiteness guard.
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

    def observe(moments, g, p):
        """One tensor: its new moments and its `tensor_summary`."""
        moments = update_moments(moments, g, config)
        return moments, tensor_summary(element_inputs(p, g, moments, count, config))

    stacks = [(_stack([grads[i] for i in idx]), _stack([params[i] for i in idx])) for idx in groups]
    moments, summaries = zip(
        *(jax.vmap(observe)(m, g, p) for m, (g, p) in zip(state.moments, stacks, strict=True)),
        strict=True,
    )
    tensor_feats, feature_rms = summary_features(jnp.concatenate(summaries))
    lstm_in = jnp.concatenate(
        [jnp.broadcast_to(shared, (len(tensor_feats), shared.shape[0])), tensor_feats], axis=1
    )
    carry, logits, log_step = hypernet.apply(
        {"params": meta_params["hypernet"]}, lstm_in, state.lstm
    )
    weights = param_mlp.mix(param_mlp.MLPWeights(**meta_params["bank"]), logits)

    def step(inputs):
        """One tensor's update ``-step * (clip(d * exp(mag_mult * m)) * scale + decay * p)``."""
        w, moments, g, p, rms, log_step = inputs
        x = element_inputs(p, g, moments, count, config)
        d, m = param_mlp.apply(w, x, rms)
        magnitude = jnp.exp(jnp.minimum(config.mag_mult * m, 10.0))
        direction = jnp.clip(d * magnitude, -config.max_direction, config.max_direction)
        scale = jnp.maximum(rms[2], config.param_scale_floor)  # feature 2 is p: rms[2] = RMS(p)
        return -jnp.exp(log_step) * (direction * scale + weight_decay * p)

    steps, start = [], 0
    for idx, m, (g, p) in zip(groups, moments, stacks, strict=True):
        take = functools.partial(
            jax.lax.slice_in_dim, start_index=start, limit_index=start + len(idx)
        )
        inputs = (jax.tree.map(take, weights), m, g, p, take(feature_rms), take(log_step))
        # vmap, not a `lax.map` loop: XLA then fuses the pass into each tensor's slice of the
        # group, which compiles it once per tensor but keeps the full step fast (a loop made the
        # 10M-parameter transformer's step 1.8x slower).
        group_steps = jax.vmap(step)(inputs)
        steps.append(group_steps.astype(params[idx[0]].dtype))
        start += len(idx)
    return steps, LOptState(count, state.skipped, tuple(moments), loss_buffer, carry)


def _check_positive(name: str, value, minimum: float) -> None:
    """Validate ``value`` only when it is a concrete Python/NumPy number (it may be traced)."""
    if isinstance(value, numbers.Number) and not value >= minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
