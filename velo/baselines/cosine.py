"""The standard recipe: linear warmup, then cosine decay of the learning rate over the whole run.

``adamw_cosine`` is what a practitioner would train with instead of a learned optimizer: AdamW
whose step size rises linearly from 0 to the peak over the first 5 % of the run, then follows a
cosine down to 1 % of the peak at the last step. ``lion_cosine`` puts the same schedule on velo's
constant-rate Lion, so a difference between a method and its ``_cosine`` twin is the schedule
alone (with its default weight decay of 0, ``adamw_cosine`` is Adam with the schedule). RAdam
gets no twin: its rectifier already is a warmup. Both need the run's length at construction
(``total_steps``; `velo.optimizers.make` passes its ``num_steps``).

The schedule's shape is built once with a peak of 1 and multiplied by the peak learning rate,
because `optax.warmup_cosine_decay_schedule` branches on its peak in Python and so cannot take a
traced one, while the evaluation vmaps the peak over its learning-rate grid.

References:
  Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts", ICLR 2017.
  Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019.
  Goyal et al., "Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour", 2017 (warmup).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable

import optax

WARMUP_FRACTION = 0.05  # of the run spent rising linearly from 0 to the peak
FINAL_FRACTION = 0.01  # of the peak reached at the last step


def warmup_cosine(
    total_steps: int,
    warmup_fraction: float = WARMUP_FRACTION,
    final_fraction: float = FINAL_FRACTION,
) -> optax.Schedule:
    """The multiplier of the peak learning rate at step ``t``: optax's warmup-cosine schedule.

    With ``W = round(warmup_fraction * total_steps)``: ``t / W`` for ``t <= W``, then
    ``f + (1 - f) * (1 + cos(pi * (t - W) / (total_steps - W))) / 2`` with ``f =
    final_fraction``, reaching ``f`` at ``t = total_steps`` and staying there.

    Raises:
      ValueError: ``total_steps`` is missing or not a positive int, or a fraction is outside
        its range (warmup in ``[0, 1)``, final in ``[0, 1]``).
    """
    if (isinstance(total_steps, bool) or not isinstance(total_steps, numbers.Integral)
            or total_steps < 1):
        raise ValueError(
            f"total_steps must be the run's length, an int >= 1, got {total_steps!r} (the "
            f"schedule decays over the whole run; velo.optimizers.make passes its num_steps)"
        )
    if not 0.0 <= warmup_fraction < 1.0:
        raise ValueError(f"warmup_fraction must be in [0, 1), got {warmup_fraction}")
    if not 0.0 <= final_fraction <= 1.0:
        raise ValueError(f"final_fraction must be in [0, 1], got {final_fraction}")
    warmup = round(warmup_fraction * int(total_steps))
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=1.0, warmup_steps=warmup, decay_steps=int(total_steps),
        end_value=final_fraction,
    )


def scheduled(peak: optax.ScalarOrSchedule, shape: optax.Schedule) -> optax.Schedule:
    """``count -> peak * shape(count + 1)``; ``peak`` may be a JAX tracer (a vmapped grid).

    optax calls a schedule with the number of steps already taken, so the step numbered ``t``
    (from 1, as loss curves count) runs at ``peak * shape(t)``: the first step moves at
    ``1 / warmup`` of the peak instead of not at all, and the last one at exactly
    ``final_fraction`` of it.
    """
    if callable(peak):
        raise ValueError("learning_rate is the schedule's peak: pass a number, not a schedule")
    return lambda count: peak * shape(count + 1)


def _with_schedule(build: Callable[..., optax.GradientTransformation], learning_rate,
                   total_steps, warmup_fraction, final_fraction, **hparams):
    shape = warmup_cosine(total_steps, warmup_fraction, final_fraction)
    return build(scheduled(learning_rate, shape), **hparams)


def adamw_cosine(
    learning_rate: float = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    *,
    total_steps: int | None = None,
    warmup_fraction: float = WARMUP_FRACTION,
    final_fraction: float = FINAL_FRACTION,
) -> optax.GradientTransformation:
    """AdamW with linear warmup and cosine decay: `optax.adamw` on `warmup_cosine`.

    ``theta <- theta - eta_t * (m_hat / (sqrt(v_hat) + eps) + weight_decay * theta)`` with
    ``eta_t = learning_rate * warmup_cosine(total_steps)(t)``: the decay is decoupled from the
    adaptive step (and, as in optax and PyTorch, scaled by the scheduled rate).

    Args:
      learning_rate: the peak rate (a number, possibly traced).
      b1, b2, eps: as `optax.adamw`.
      weight_decay: decoupled weight decay; 0 makes it Adam with the schedule.
      total_steps: the run's length, required.
      warmup_fraction, final_fraction: as `warmup_cosine`.
    """
    return _with_schedule(optax.adamw, learning_rate, total_steps, warmup_fraction,
                          final_fraction, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay)


def lion_cosine(
    learning_rate: float = 3e-4,
    b1: float = 0.9,
    b2: float = 0.99,
    weight_decay: float = 1e-3,
    *,
    total_steps: int | None = None,
    warmup_fraction: float = WARMUP_FRACTION,
    final_fraction: float = FINAL_FRACTION,
) -> optax.GradientTransformation:
    """Lion (Chen et al., 2023) with `warmup_cosine`; defaults as velo's constant-rate ``lion``.

    References:
      Chen et al., "Symbolic Discovery of Optimization Algorithms", NeurIPS 2023.

    Args:
      learning_rate: the peak rate. b1, b2, weight_decay: as `optax.lion`.
      total_steps, warmup_fraction, final_fraction: as `adamw_cosine`.
    """
    return _with_schedule(optax.lion, learning_rate, total_steps, warmup_fraction,
                          final_fraction, b1=b1, b2=b2, weight_decay=weight_decay)

