"""What meta-training optimises: meta-parameters and the optimizer they define.

References:
  Metz et al., "VeLO: Training Versatile Learned Optimizers by Scaling Up", 2022.
  https://arxiv.org/abs/2211.09760
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

MetaParams = Any


class Learner(NamedTuple):
    """A family of optimizers indexed by meta-parameters.

    Attributes:
      name: identifies the family in logs and checkpoints.
      init: ``init(key) -> meta_params``, the starting point of meta-training.
      optimizer: ``optimizer(meta_params, num_steps) -> GradientTransformationExtraArgs``;
        ``meta_params`` is traced (vmapped over the population), ``num_steps`` is the horizon.
      config: the learned optimizer's own config (saved with exported checkpoints), or None.
      expand: ``expand(meta_params) -> the optimizer's full meta-parameters``, what an exported
        checkpoint holds (the identity unless part of them is frozen, `lopt_learner`).
    """

    name: str
    init: Callable[[jax.Array], MetaParams]
    optimizer: Callable[[MetaParams, int], optax.GradientTransformationExtraArgs]
    config: Any = None
    expand: Callable[[MetaParams], MetaParams] = lambda meta_params: meta_params


@functools.cache
def lopt_learner(preset: str, trainable: tuple[str, ...] = ()) -> Learner:
    """velo's learned optimizer at `velo.lopt.preset(preset)` (cached: compiled code is reused).

    With ``trainable`` (paths of meta-parameter subtrees, e.g. ``("hypernet/step",)``), only
    those are meta-parameters: the rest stay frozen at the preset's untrained initialisation
    ``init:PRESET`` (`velo.lopt.init_checkpoint`), and ``init`` ignores its key and returns the
    trainable part of that same initialisation. ES estimates a gradient in D dimensions from N
    directions with a cosine of about sqrt(N / D) to the true one, so on a CPU budget a small D
    is what makes each generation count (`meta_train.config.Config.trainable`).
    """
    from velo import lopt
    from velo.lopt import checkpoint

    if preset not in lopt.PRESETS:
        raise ValueError(f"unknown learned-optimizer preset lopt={preset!r}; choose one of: "
                         f"{', '.join(lopt.PRESETS)}")
    config = lopt.preset(preset)

    def optimizer(meta_params, num_steps):
        return lopt.optax_lopt(num_steps, meta_params=expand(meta_params), config=config)

    if not trainable:
        init, expand = functools.partial(lopt.init_meta_params, config=config), _identity
    else:
        frozen, _ = checkpoint.init_checkpoint(f"init:{preset}")
        init, expand = _subspace(frozen, trainable)
    name = f"velo.lopt:{preset}" + (f"[{','.join(trainable)}]" if trainable else "")
    return Learner(name, init, optimizer, config, expand)


def _identity(meta_params):
    return meta_params


def _subspace(frozen: MetaParams, trainable: tuple[str, ...]):
    """``(init, expand)`` for the subtrees of ``frozen`` at the ``trainable`` paths.

    The meta-parameters are ``{path: subtree}``; ``expand`` writes them into ``frozen``.
    """
    for path in trainable:
        _subtree(frozen, path)  # raises on a bad path

    def init(key):
        del key
        return {path: _subtree(frozen, path) for path in trainable}

    def expand(meta_params):
        full = jax.tree.map(lambda x: x, frozen)  # new dicts around the same arrays
        for path, value in meta_params.items():
            *parents, leaf = path.split("/")
            node = full
            for name in parents:
                node = node[name]
            node[leaf] = value
        return full

    return init, expand


def _subtree(tree: MetaParams, path: str):
    node = tree
    for depth, name in enumerate(path.split("/")):
        if not isinstance(node, dict) or name not in node:
            where = "/".join(path.split("/")[:depth]) or "the top level"
            known = ", ".join(sorted(node)) if isinstance(node, dict) else "none (a leaf)"
            raise ValueError(f"trainable path {path!r}: no {name!r} under {where}; "
                             f"known: {known}")
        node = node[name]
    return node


@functools.cache
def adam_learner(learning_rate: float = 1e-3) -> Learner:
    """`optax.adam` whose log learning rate is the only meta-parameter, from ``learning_rate``.

    The cheapest learner: the benchmark's reference point (each member runs its own Adam) and a
    fast stand-in for testing the meta-training machinery.
    """

    def init(key):
        del key
        return {"log_lr": jnp.log(jnp.asarray(learning_rate, jnp.float32))}

    def optimizer(meta_params, num_steps):
        del num_steps
        return optax.with_extra_args_support(optax.adam(jnp.exp(meta_params["log_lr"])))

    return Learner(f"adam:{learning_rate}", init, optimizer)
