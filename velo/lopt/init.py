"""Meta-parameter initialisation: an untrained learned optimizer that already optimises.

``init_meta_params`` returns ``{"hypernet": flax params, "bank": {w1, b1, w2, b2, w3, b3}}``.
The bank is scattered around an MLP that outputs the RMS-normalised preconditioned momentum
(see `param_mlp.init_bank`) and the step head starts at the rule's initial step (`init_step`
per step, on rule v2 times its prior schedule), so the initial optimizer is a per-tensor
normalised Adam-like method with relative steps; evolution starts from there rather than from
noise.

References:
  Metz et al., "VeLO: Training Versatile Learned Optimizers by Scaling Up", 2022,
  https://arxiv.org/abs/2211.09760
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from velo.lopt import param_mlp
from velo.lopt.config import Config
from velo.lopt.features import lstm_input_size
from velo.lopt.hypernet import make_hypernet, zero_carry


@functools.partial(jax.jit, static_argnames="config")
def init_meta_params(key: jax.Array, config: Config) -> dict:
    """Fresh meta-parameters for ``config``, deterministic in ``key`` (jitted; vmappable)."""
    net_key, bank_key = jax.random.split(key)
    inputs = jnp.zeros((1, lstm_input_size(config)), jnp.float32)
    hypernet = make_hypernet(config).init(net_key, inputs, zero_carry(1, config))["params"]
    bank = param_mlp.init_bank(bank_key, config)._asdict()
    return {"hypernet": hypernet, "bank": bank}


@functools.cache
def meta_param_shapes(config: Config):
    """The meta-parameter pytree of ``config`` as `jax.ShapeDtypeStruct` leaves (no compute)."""
    return jax.eval_shape(functools.partial(init_meta_params, config=config), jax.random.key(0))


def num_meta_params(config: Config) -> int:
    """Number of scalars in the meta-parameters of ``config``."""
    return sum(x.size for x in jax.tree.leaves(meta_param_shapes(config)))


def check_meta_params(meta_params, config: Config, what: str = "meta_params") -> None:
    """`ValueError` unless ``meta_params`` has the structure and shapes ``config`` implies.

    Works on tracers (it reads only shapes), so it is safe inside jit and vmap.
    """
    want, want_def = jax.tree.flatten(meta_param_shapes(config))
    got, got_def = jax.tree.flatten(meta_params)
    if want_def != got_def:
        raise ValueError(
            f"{what} do not have the structure of Config {config}: expected {want_def}, got "
            f"{got_def}; pass the config the meta-parameters were made for"
        )
    bad = [
        (w.shape, jnp.shape(g))
        for w, g in zip(want, got, strict=True)
        if tuple(w.shape) != jnp.shape(g)
    ]
    if bad:
        raise ValueError(
            f"{what} do not match the config (expected shape, got): {bad[:3]}; "
            "pass the config the meta-parameters were made for"
        )
