"""One entry point for every optimizer velo can train with: learned or hand-designed."""

from __future__ import annotations

from typing import Any

import optax

from velo import baselines

LEARNED = "velo"


def names() -> list[str]:
    """Every optimizer name `make` accepts."""
    return sorted([LEARNED, *baselines.names()])


def make(
    name: str,
    num_steps: int,
    *,
    learning_rate: float | None = None,
    checkpoint: str | None = None,
    hparams: dict[str, Any] | None = None,
) -> optax.GradientTransformationExtraArgs:
    """Build optimizer ``name`` for a run of ``num_steps`` steps.

    Args:
      name: ``"velo"`` for the learned optimizer, or a `velo.baselines.names()` entry.
      num_steps: the run's length (the learned optimizer conditions on it, and scheduled
        baselines such as ``adamw_cosine`` decay over it).
      learning_rate: for hand-designed optimizers; their default when ``None``.
      checkpoint: for ``"velo"``: a path or shipped checkpoint name; the default when ``None``.
      hparams: further keyword arguments of the optimizer.
    """
    hparams = dict(hparams or {})
    if name == LEARNED:
        if learning_rate is not None:
            raise ValueError("the learned optimizer takes no learning rate; drop --lr")
        from velo import lopt

        unknown = sorted(set(hparams) - {"weight_decay"})
        if unknown:
            raise ValueError(f"unknown hyperparameter(s) {', '.join(unknown)} for the learned "
                             f"optimizer; valid: weight_decay")
        wd = hparams.get("weight_decay", 0.0)
        if not isinstance(wd, (int, float)) or isinstance(wd, bool):
            raise ValueError(f"weight_decay must be a number, got {wd!r}")
        return lopt.optax_lopt(num_steps, checkpoint=checkpoint, **hparams)
    if name not in baselines.names():
        raise ValueError(f"unknown optimizer {name!r}; choose one of: {', '.join(names())}")
    if checkpoint is not None:
        raise ValueError(f"--checkpoint applies to the learned optimizer only, not {name!r}")
    if learning_rate is not None:
        hparams["learning_rate"] = learning_rate
    if "total_steps" in baselines.defaults(name):  # a schedule over the run (adamw_cosine)
        hparams.setdefault("total_steps", num_steps)
    return baselines.make(name, **hparams)


def eval_params_fn(name: str):
    """``(opt_state, params) -> params`` giving the point to evaluate at, or ``None`` for params.

    Schedule-free methods and Lookahead train one sequence of weights and test another.
    """
    return None if name == LEARNED else baselines.eval_params_fn(name)

