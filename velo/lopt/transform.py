"""The learned optimizer as optax transforms: `scale_by_lopt` and `optax_lopt`.

One step of `scale_by_lopt`, for a model with n float tensors, reads top to bottom:

1. **accumulate**: fold each gradient into its tensor's full-size moments (`accumulators.py`),
   into the small moments of all tensors at once, each kind on one buffer (`factors.accumulate`),
   and the loss into the loss buffer (`loss_buffer.py`);
2. **summarise**: every tensor's scalars and Adafactor factors are computed at once on
   buffers that concatenate all tensors' factors (`factors.py`); one fused reduction over (a
   sample of) each tensor gives its element statistics; one batched computation over all
   tensors turns them into LSTM inputs and the RMS of each MLP input (`features.py`);
3. **hypernetwork**: the LSTM, batched over the n tensors, emits each tensor's per-parameter MLP
   weights (a softmax mix over the bank) and its step output (`hypernet.py`, `param_mlp.py`);
   the factor features' share of the MLP's first layer is computed on the factor buffers;
4. **per-element rule**: one fused elementwise pass per tensor runs the MLP, and the update rule
   named by `Config.rule` (`rule_v1.py`, `rule_v2.py`) turns its outputs and the step into the
   update.

Tensors of equal shape and dtype are processed as one stacked group (`groups.py`). `optax_lopt`
also skips steps whose loss or gradient is not finite, as `velo.guard.skip_nonfinite` does, but
by masking the step's inputs (see `_lopt`).
Meta-parameters and ``num_steps`` may be JAX tracers: nothing here branches on their values.

References:
  Metz et al., "VeLO: Training Versatile Learned Optimizers by Scaling Up", 2022,
  https://arxiv.org/abs/2211.09760
"""

from __future__ import annotations

import functools
import numbers
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from velo import guard
from velo.lopt import checkpoint as ckpt
from velo.lopt import factors, param_mlp, rules
from velo.lopt.accumulators import (
    SharedMoments,
    TensorMoments,
    gradient_squares,
    init_moments,
    update_moments,
)
from velo.lopt.config import Config
from velo.lopt.factors import FactorLayout
from velo.lopt.features import (
    COL_FEATURES,
    ROW_FEATURES,
    all_sample_means,
    element_features,
    global_features,
    group_inputs,
    summaries,
    summary_features,
)
from velo.lopt.groups import Groups
from velo.lopt.hypernet import Carry, make_hypernet, zero_carry
from velo.lopt.loss_buffer import LossBuffer, init_loss_buffer, loss_decays, update_loss_buffer

# Version of the `ScaleByLOptState` tree, saved with meta-training's inner training states: an
# older one cannot be restored into this code's (2: `SharedMoments`, `init_rms` only when read;
# 3: `TensorMoments.ema` holds the momenta and the second moment in one array).
STATE_LAYOUT = 3


class ScaleByLOptState(NamedTuple):
    """State of `scale_by_lopt`.

    Attributes:
      count: int32 scalar, steps applied so far.
      moments: one `TensorMoments` per shape group of trained leaves (`groups.Groups`), each
        array with a leading axis over the group's tensors. Integer, boolean and size-0 leaves
        are left alone and have none.
      shared: the `SharedMoments` of all trained tensors: factored second moments and the
        momenta kept at the statistics sample only.
      loss: the `LossBuffer`.
      lstm: LSTM carry ``(c, h)``, each ``[n_float_tensors, lstm_size]``, tensors in group order.
      init_rms: ``[n_float_tensors]`` RMS of each tensor at `init`, tensors in group order,
        for `Config.scale_reference` ``"initial"`` (rule v2 then measures its steps against it);
        None otherwise, so that the step does not copy an array it never reads.
    """

    count: jax.Array
    moments: tuple[TensorMoments, ...]
    shared: SharedMoments
    loss: LossBuffer
    lstm: Carry
    init_rms: jax.Array | None


# `optax_lopt`'s state: `guard.GuardState(inner=ScaleByLOptState, skipped)`.
LOptState = guard.GuardState


def scale_by_lopt(
    meta_params: Any, config: Config, num_steps, *, weight_decay=0.0, learning_rate=1.0
) -> optax.GradientTransformationExtraArgs:
    """The learned update rule of ``meta_params`` for a run of ``num_steps`` steps.

    Its update is ``update(grads, state, params, *, loss)``; other keyword arguments (such as
    ``loss_fn``) are ignored. It has no guard against non-finite input (`optax_lopt` adds it).

    Args:
      meta_params: meta-parameters for ``config`` (may be traced, e.g. a vmapped population).
      config: the `Config` of ``meta_params``.
      num_steps: the planned run length (>= 1; may be traced).
      weight_decay: decoupled decay coefficient: ``-step * weight_decay * p`` per step, with
        the tensor's step (may be traced).
      learning_rate: multiplier on every tensor's step (may be traced).

    Returns:
      An `optax.GradientTransformationExtraArgs` with state `ScaleByLOptState`.
    """
    init_fn, step_fn = _lopt(meta_params, config, num_steps, weight_decay, learning_rate)

    def update_fn(updates, state, params=None, *, loss=None, **extra_args):
        del extra_args
        updates, state, _ = step_fn(updates, state, params, loss, guarded=False)
        return updates, state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def optax_lopt(
    num_steps,
    *,
    checkpoint: str | None = None,
    meta_params: Any = None,
    config: Config | None = None,
    weight_decay=0.0,
    learning_rate=None,
) -> optax.GradientTransformationExtraArgs:
    """The learned optimizer for a run of ``num_steps`` steps; needs no learning rate.

    It is `scale_by_lopt` with the weights of a checkpoint, guarded like
    `velo.guard.skip_nonfinite`: a step whose loss or gradient is not finite (or whose gradient's
    square overflows float32, magnitudes above ~1e19) returns zero updates and changes nothing
    but the state's ``skipped`` count. Its update is ``update(grads, state, params, *, loss)``.

    Args:
      num_steps: the planned run length (>= 1; may be traced). The optimizer conditions on the
        fraction of it done and sets its loss-EMA horizons from it; rule v2 also anneals its
        steps over it.
      checkpoint: a checkpoint directory (`velo.lopt.save`), a shipped checkpoint's name, or
        ``"init"`` / ``"init:PRESET"`` for the untrained initial meta-parameters of a preset;
        by default the shipped `DEFAULT_CHECKPOINT`.
      meta_params: meta-parameters (may be traced, e.g. a vmapped population); excludes
        ``checkpoint``.
      config: the `Config` of ``meta_params``; defaults to the ``"small"`` preset.
      weight_decay: decoupled decay, ``-step * weight_decay * p`` per step with the tensor's
        learned step (may be traced).
      learning_rate: optional multiplier on every step, for users who tune; ``None`` means 1.

    Returns:
      An `optax.GradientTransformationExtraArgs` with state `LOptState`
      (``state.inner`` is the `ScaleByLOptState`, ``state.skipped`` counts skipped steps).
    """
    learning_rate = 1.0 if learning_rate is None else learning_rate
    _check_positive("num_steps", num_steps, minimum=1)
    _check_positive("weight_decay", weight_decay, minimum=0)
    _check_positive("learning_rate", learning_rate, minimum=0)
    meta_params, config = ckpt.resolve(checkpoint, meta_params, config)
    inner_init, step_fn = _lopt(meta_params, config, num_steps, weight_decay, learning_rate)

    def init_fn(params):
        # Integer, boolean and empty leaves (step counters, masks) are legal and left alone.
        return LOptState(inner_init(params), jnp.zeros((), jnp.int32))

    def update_fn(updates, state, params=None, *, loss=None, **extra_args):
        del extra_args
        updates, inner, finite = step_fn(updates, state.inner, params, loss, guarded=True)
        return updates, LOptState(inner, state.skipped + (~finite).astype(jnp.int32))

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _lopt(meta_params, config: Config, num_steps, weight_decay, learning_rate):
    """``(init_fn, step_fn)`` of `scale_by_lopt`, where
    ``step_fn(grads, state, params, loss, guarded) -> (updates, state, finite)``.

    With ``guarded``, ``finite`` says whether the loss and every gradient element were finite
    (`_all_finite`). If not, the step runs on zeroed gradients, parameters and loss with every
    decay taken as 1 and every tensor's step as 0: its updates are zero and the moments come
    back unchanged; the small rest of the state (count, loss buffer, LSTM carry) is selected.
    Selecting the full-size updates and moments instead, as `velo.guard.skip_nonfinite` does
    for any optax transform, made XLA pull the per-tensor factor arrays into every elementwise
    pass: the 70-tensor transformer's train step took 1.5x as long to compile (BENCHMARKS.md).
    Without ``guarded``, ``finite`` is None and nothing is masked.
    """
    rule = rules.get(config)
    hypernet = make_hypernet(config)

    def init_fn(params):
        leaves = jax.tree.leaves(params)
        groups = _trained_groups(leaves)
        layout = FactorLayout.from_groups(groups, leaves)
        moments = groups.zeros(leaves, functools.partial(init_moments, config=config))
        zero = jnp.zeros((), jnp.int32)
        carry = zero_carry(groups.num_tensors, config)
        init_rms = None
        if config.scale_reference == "initial":
            init_rms = jnp.concatenate([_rms_per_tensor(p) for p in groups.stack(leaves)])
        loss = init_loss_buffer(config)
        return ScaleByLOptState(zero, moments, layout.zero_moments(config), loss, carry, init_rms)

    def step_fn(updates, state, params, loss, guarded):
        _check_call(loss, params)
        grads, treedef = jax.tree.flatten(updates)
        leaves = treedef.flatten_up_to(params)
        groups = _trained_groups(leaves)
        layout = FactorLayout.from_groups(groups, leaves)
        count = state.count + 1
        g, p = groups.stack(grads), groups.stack(leaves)
        loss = jnp.asarray(loss, jnp.float32)
        squares = [jax.vmap(gradient_squares)(x) for x in g]
        finite, skip = None, None
        if guarded:
            finite = _all_finite(loss, squares)
            skip = ~finite
            g, p, loss = jax.tree.map(lambda x: jnp.where(finite, x, 0.0), (g, p, loss))

        # 1. Accumulate.
        decays = loss_decays(num_steps, config)
        losses = update_loss_buffer(state.loss, loss, state.count, decays)
        accumulate = functools.partial(update_moments, config=config, skip=skip)
        moments = [jax.vmap(accumulate)(m, x) for m, x in zip(state.moments, g, strict=True)]
        shared = factors.accumulate(state.shared, g, squares, layout, config, skip)
        # 2. Summarise.
        scales = factors.scales(shared, layout, count, config)
        sampled = [
            layout.group_samples(shared.sampled, i, config.stats_sample) for i in range(len(g))
        ]
        inputs = [
            group_inputs(*t, scales, layout, i)
            for i, t in enumerate(zip(p, g, moments, sampled, strict=True))
        ]
        means = all_sample_means(inputs, config.dropped_inputs, config.stats_sample)
        summary = summaries(means, scales, layout, config.dropped_inputs)
        tensor_feats, feature_rms = summary_features(summary)
        common = global_features(state.count, num_steps, losses, decays, config)
        # 3. Hypernetwork.
        lstm_in = jnp.concatenate(
            [jnp.broadcast_to(common, (len(tensor_feats), len(common))), tensor_feats], axis=1
        )
        carry, logits, step_output = hypernet.apply(
            {"params": meta_params["hypernet"]}, lstm_in, state.lstm
        )
        bank = param_mlp.MLPWeights(**meta_params["bank"])
        weights = param_mlp.normalise(param_mlp.mix(bank, logits), feature_rms)
        factor_weights = (weights.w1[:, ROW_FEATURES], weights.w1[:, COL_FEATURES], weights.b1)
        factor_feats = factors.factor_features(scales)
        steps = learning_rate * rule.tensor_steps(step_output, state.count, num_steps, config)
        if guarded:  # the moments kept themselves (``skip``); the rest is small
            steps = jnp.where(finite, steps, 0.0)
            count, losses, carry = jax.tree.map(
                lambda new, old: jnp.where(finite, new, old),
                (count, losses, carry),
                (state.count, state.loss, state.lstm),
            )
        new_state = ScaleByLOptState(count, tuple(moments), shared, losses, carry, state.init_rms)
        # 4. Per-element rule.
        element = functools.partial(_element_update, rule, config, weight_decay)
        all_shares = factors.shares(*factor_weights, factor_feats, layout)
        out = []
        for i, (x, shares) in enumerate(zip(inputs, all_shares, strict=True)):
            per_tensor, init_rms = jax.tree.map(  # init_rms may be None: it stays None
                lambda a, i=i: layout.group_slice(a, i),
                ((weights, feature_rms, steps), state.init_rms),
            )
            out.append(jax.vmap(element)(per_tensor, init_rms, x, shares))
        return treedef.unflatten(groups.unstack(out, leaves)), new_state, finite

    return init_fn, step_fn


def _all_finite(loss: jax.Array, squares) -> jax.Array:
    """Boolean scalar: ``loss`` and every gradient element are finite, read off the gradient's
    `gradient_squares` (every element enters a row; a NaN or infinity there stays one in their
    sum). One dot product over all tensors' rows, scaled by 1e-30 so that finite rows cannot
    overflow it: XLA splits a max or sum over concatenated rows into a kernel per shape group."""
    rows = jnp.concatenate([jnp.ravel(r) for r, _ in squares]) if squares else jnp.zeros(1)
    return jnp.isfinite(loss + jnp.dot(rows, jnp.full_like(rows, 1e-30)))


def _rms_per_tensor(stack: jax.Array) -> jax.Array:
    """``[n]`` RMS of each tensor of a ``[n, ...]`` stack."""
    return jnp.sqrt(jnp.mean(jnp.square(stack), axis=tuple(range(1, stack.ndim))))


def _element_update(rule, config, weight_decay, per_tensor, init_rms, x, shares):
    """One tensor's update: the MLP on every element, then ``rule.tensor_update``.

    vmapped over a group, not a `lax.map` loop: XLA then fuses the pass into each tensor's slice
    of the group, which compiles it once per tensor but keeps the full step fast (a loop made
    the 10M-parameter transformer's step 1.8x slower).
    """
    weights, feature_rms, step = per_tensor
    outputs = param_mlp.apply(weights, element_features(x, config.dropped_inputs), *shares)
    return rule.tensor_update(outputs, x, feature_rms, init_rms, step, weight_decay, config)


def _trained_groups(leaves: list) -> Groups:
    groups = Groups.from_leaves(leaves)
    if not groups.indices:
        raise ValueError(
            "the learned optimizer found no non-empty floating-point leaf in params to train "
            f"(leaf dtypes: {sorted({str(jnp.result_type(x)) for x in leaves})}); pass the "
            "float parameters, or use optax.set_to_zero() for a model with none"
        )
    return groups


def _check_call(loss, params) -> None:
    if loss is None:
        raise ValueError(
            "the learned optimizer needs the minibatch loss: call update(grads, state, params, "
            "loss=loss)"
        )
    if params is None:
        raise ValueError(
            "the learned optimizer needs params: call update(grads, state, params, loss=loss)"
        )


def _check_positive(name: str, value, minimum: float) -> None:
    """Validate ``value`` only when it is a concrete Python/NumPy number (it may be traced)."""
    if isinstance(value, numbers.Number) and not value >= minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
