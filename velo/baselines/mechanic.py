"""Mechanic (Cutkosky, Defazio, Mehta, 2023): optax's learned scale over an Adam base."""

from __future__ import annotations

import optax
from optax import contrib


def mechanic(
    learning_rate: optax.ScalarOrSchedule = 1.0,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 1e-2,
    s_init: float = 1e-6,
    num_betas: int = 6,
) -> optax.GradientTransformationExtraArgs:
    """`optax.contrib.mechanize` over ``optax.adam(learning_rate, b1, b2, eps)``.

    Mechanic learns the scale s (from ``s_init``) that multiplies the base updates, so the base
    learning rate of 1.0 is the usual choice; ``weight_decay``, ``s_init`` and ``num_betas`` are
    Mechanic's own.
    """
    return contrib.mechanize(optax.adam(learning_rate, b1, b2, eps), weight_decay=weight_decay,
                             s_init=s_init, num_betas=num_betas)
