"""Every hand-designed optimizer by name, under one calling convention.

``make(name, **hparams)`` returns an `optax.GradientTransformationExtraArgs` whose update is
``update(grads, state, params, *, loss=None, loss_fn=None)``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import optax

_REGISTRY: dict[str, Callable[..., optax.GradientTransformation]] = {
    "adam": lambda learning_rate=1e-3, **kw: optax.adam(learning_rate, **kw),
    "sgd": lambda learning_rate=1e-2, **kw: optax.sgd(learning_rate, **kw),
}


def names() -> list[str]:
    """Sorted names of every registered optimizer."""
    return sorted(_REGISTRY)


def make(name: str, **hparams) -> optax.GradientTransformationExtraArgs:
    """The optimizer ``name`` built with ``hparams`` (e.g. ``learning_rate=3e-4``)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown optimizer {name!r}; choose one of: {', '.join(names())}")
    lr = hparams.get("learning_rate")
    if lr is not None and not lr > 0:
        raise ValueError(f"learning_rate must be > 0, got {lr}")
    try:
        inspect.signature(_REGISTRY[name]).bind(**hparams)
        return optax.with_extra_args_support(_REGISTRY[name](**hparams))
    except TypeError as e:
        raise ValueError(f"bad hyperparameters for optimizer {name!r}: {e}") from None
