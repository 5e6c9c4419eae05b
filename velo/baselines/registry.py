"""Every hand-designed optimizer by name, under one calling convention.

``make(name, **hparams)`` returns an `optax.GradientTransformationExtraArgs` whose update is
``update(grads, state, params, *, loss=None, loss_fn=None)``, wrapped by
`velo.guard.skip_nonfinite` (float params checked at init; steps with a non-finite loss
or gradient are skipped and leave the state unchanged). ``defaults(name)`` lists the accepted
hyperparameters with their defaults; ``eval_params_fn(name)`` gives the point to evaluate at for
optimizers whose iterate is not it (schedule-free, Lookahead), else ``None``.

Non-finite input, per method: every registered optimizer skips the step through the guard (zero
update, state unchanged, ``state.skipped`` counts it). Inside SaLSA's line search, a NaN or
infinite *trial* loss fails the Armijo test, so the search backtracks past it. The unregistered
library transforms (`salsa`, `lookahead`, `gi_adam`, ...) have no guard; wrap them with
`skip_nonfinite` to get it.
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import optax
from optax import contrib

from velo import guard
from velo.baselines.cosine import adamw_cosine, lion_cosine
from velo.baselines.gi_adam import gi_adam
from velo.baselines.lookahead import ranger, slow_params
from velo.baselines.mechanic import mechanic
from velo.baselines.radam import radam
from velo.baselines.salsa import salsa, salsa_paper
from velo.types import EvalParamsFn


class _Entry(NamedTuple):
    build: Callable[..., optax.GradientTransformation]
    defaults: dict[str, Any]  # overrides of (or additions to) ``build``'s own defaults
    eval_params: EvalParamsFn | None = None


def _schedule_free_eval(state: guard.GuardState, params: optax.Params) -> optax.Params:
    return contrib.schedule_free_eval_params(state.inner, params)


def _lookahead_eval(state: guard.GuardState, params: optax.Params) -> optax.Params:
    return slow_params(state.inner, params)


# Learning-rate defaults: Adam's paper value 1e-3 (also RAdam's, GI-Adam's, Ranger's); Lion 3x
# smaller, as Chen et al. advise 3-10x below AdamW's; sgd 0.1 and heavy-ball 0.01 with momentum
# 0.9 (the same effective step). The optax.contrib peers keep optax's defaults, where the learning
# rate is a multiplier of the method's own estimate (1.0; schedule-free AdamW 2.5e-3).
_REGISTRY: dict[str, _Entry] = {
    "adam": _Entry(optax.adam, {"learning_rate": 1e-3}),
    "sgd": _Entry(optax.sgd, {"learning_rate": 0.1}),
    "momentum": _Entry(optax.sgd, {"learning_rate": 0.01, "momentum": 0.9}),
    "radam": _Entry(radam, {}),
    "lion": _Entry(optax.lion, {"learning_rate": 3e-4}),
    "salsa": _Entry(salsa, {}),
    "salsa_paper": _Entry(salsa_paper, {}),
    "ranger": _Entry(ranger, {}, _lookahead_eval),
    "gi_adam": _Entry(gi_adam, {}),
    "prodigy": _Entry(contrib.prodigy, {}),
    "dadapt_adamw": _Entry(contrib.dadapt_adamw, {}),
    "mechanic": _Entry(mechanic, {}),
    "cocob": _Entry(contrib.cocob, {}),
    "schedule_free_adamw": _Entry(contrib.schedule_free_adamw, {}, _schedule_free_eval),
    "dog": _Entry(contrib.dog, {}),
    # Warmup + cosine decay over the run (`velo.baselines.cosine`): they need ``total_steps``.
    "adamw_cosine": _Entry(adamw_cosine, {}),
    "lion_cosine": _Entry(lion_cosine, {}),
}


def names() -> list[str]:
    """Sorted names of every registered optimizer."""
    return sorted(_REGISTRY)


def _entry(name: str) -> _Entry:
    if name not in _REGISTRY:
        raise ValueError(f"unknown optimizer {name!r}; choose one of: {', '.join(names())}")
    return _REGISTRY[name]


def defaults(name: str) -> dict[str, Any]:
    """Every hyperparameter optimizer ``name`` accepts, with its default (``learning_rate`` first
    when it takes one; LR-free methods' ``learning_rate`` is a multiplier, default 1.0)."""
    entry = _entry(name)
    own = {
        p.name: p.default for p in inspect.signature(entry.build).parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    return {**own, **entry.defaults}


def eval_params_fn(name: str) -> EvalParamsFn | None:
    """``(opt_state, params) -> params`` to evaluate a ``make(name)`` run at, or ``None`` when the
    trained params are that point. Pass it as `velo.train.train`'s ``eval_params``."""
    return _entry(name).eval_params


def make(name: str, **hparams) -> optax.GradientTransformationExtraArgs:
    """The optimizer ``name`` built with ``hparams`` (e.g. ``learning_rate=3e-4``).

    Hyperparameters may be JAX tracers (e.g. a vmapped learning-rate grid); only concrete numbers
    are validated. Raises `ValueError` for an unknown name or hyperparameter, a learning rate that
    is not a positive finite number, or a hyperparameter the method rejects.
    """
    accepted = defaults(name)
    unknown = sorted(set(hparams) - set(accepted))
    if unknown:
        hint = ""
        if "learning_rate" in unknown:
            hint = f" ({name} sets its own step size and takes no learning rate)"
        raise ValueError(
            f"unknown hyperparameter(s) {', '.join(unknown)} for optimizer {name!r}{hint}; "
            f"valid: {', '.join(accepted)}"
        )
    lr = hparams.get("learning_rate")
    if isinstance(lr, numbers.Real) and not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"learning_rate must be > 0 and finite, got {lr} (optimizer {name!r})")
    for key, value in hparams.items():
        if isinstance(value, str) and not isinstance(accepted[key], str):
            raise ValueError(
                f"bad value for {key!r} of optimizer {name!r}: {value!r} is text, expected a "
                f"{type(accepted[key]).__name__} like {accepted[key]!r}"
            )
    settings = {**_entry(name).defaults, **hparams}
    return guard.skip_nonfinite(_entry(name).build(**settings))
