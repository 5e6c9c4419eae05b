"""VeLO's headline metric: how many steps tuned Adam needs to match an optimizer's final loss.

Following VeLO (``learned_optimization/baselines/normalizers.py``): every learning rate's
seed-mean training curve of Adam is EMA-smoothed, the lower envelope over learning rates is made
monotone, and an optimizer's final smoothed loss maps to "Adam steps needed" by linear
interpolation on that envelope. The speed-up is those steps divided by the optimizer's budget.
Every learning rate counts, including the early part of runs that diverged later: Adam did reach
those losses. Unlike VeLO, the envelope keeps every step instead of being resampled at 512 points.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from velo.evaluation.curves import steps_to_reach


class Speedup(NamedTuple):
    """A speed-up over the reference.

    Attributes:
      value: reference steps needed / budget; 0.0 for a non-finite loss.
      censored: the reference never reached the loss within its horizon, so ``value`` (horizon /
        budget) is only a lower bound.
    """

    value: float
    censored: bool


def speedup(reference_envelope: np.ndarray, loss: float, budget: int) -> Speedup:
    """Speed-up of an optimizer that reached ``loss`` in ``budget`` steps.

    Args:
      reference_envelope: ``[H]`` monotone envelope of the reference's smoothed curves
        (`curves.monotone_envelope`); ``H`` may exceed ``budget`` so speed-ups above 1 are resolved.
      loss: the optimizer's final smoothed training loss.
      budget: the optimizer's number of steps.
    """
    if not np.isfinite(loss):
        return Speedup(0.0, False)
    steps = steps_to_reach(reference_envelope, loss)
    if steps is None:
        return Speedup(len(reference_envelope) / budget, True)
    return Speedup(steps / budget, False)
