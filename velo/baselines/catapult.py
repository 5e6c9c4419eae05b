"""The initial learning rate from the loss catapult, and a linear warmup from it.

Kalra & Barkeshli (2024) pick the warmup's starting rate eta_init near the critical rate eta_c at
which training from the initialisation first "catapults": the loss rises above its initial value
for a few steps before falling. eta_c is found without Hessians by short trial runs from the same
initialisation and the same batch: an exponential search doubles eta from a tiny value until a
trial catapults, then a few geometric bisections narrow [eta_lo, eta_hi]. The paper's exact trial
length and tolerance are not given here (our reconstruction); both are arguments.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

Params = optax.Params


def catapult_learning_rate(
    loss_fn: Callable[[Params], jax.Array],
    params: Params,
    make_opt: Callable[[jax.Array], optax.GradientTransformation],
    *,
    start: float = 1e-6,
    max_doublings: int = 30,
    bisections: int = 4,
    trial_steps: int = 5,
) -> float:
    """The largest learning rate found that does not catapult, eta_c's lower bracket.

    Args:
      loss_fn: ``params -> scalar``, the loss on one fixed batch with a fixed key (deterministic).
      params: the initialisation every trial starts from.
      make_opt: ``learning_rate -> optimizer``, e.g. ``lambda lr: velo.baselines.make("adam",
        learning_rate=lr)``; called with a traced learning rate so all trials share one program.
      start: the first (tiny) candidate; ``start * 2 ** k`` for k < ``max_doublings`` follow.
      bisections: geometric bisection rounds after the doubling search.
      trial_steps: optimizer steps per trial.

    Returns:
      eta_lo, the largest candidate whose trial never rose above the initial loss (or
      ``start * 2 ** (max_doublings - 1)`` if no candidate catapulted).
    """
    loss0 = loss_fn(params)
    value_and_grad = jax.value_and_grad(loss_fn)

    def catapults(lr):
        opt = optax.with_extra_args_support(make_opt(lr))

        def step(carry, _):
            p, state = carry
            loss, grads = value_and_grad(p)
            updates, state = opt.update(grads, state, p, loss=loss, loss_fn=loss_fn)
            p = optax.apply_updates(p, updates)
            return (p, state), loss_fn(p)

        _, losses = jax.lax.scan(step, (params, opt.init(params)), length=trial_steps)
        return ~jnp.all(losses <= loss0)  # a NaN/inf loss counts as a catapult

    catapults_many = jax.jit(jax.vmap(catapults))
    grid = start * 2.0 ** np.arange(max_doublings)
    flags = np.asarray(catapults_many(jnp.asarray(grid, jnp.float32)))
    if not flags.any():
        return float(grid[-1])
    first = int(np.argmax(flags))
    if first == 0:
        raise ValueError(f"catapult search: the first candidate {start} already catapults; "
                         "pass a smaller start")
    lo, hi = grid[first - 1], grid[first]
    for _ in range(bisections):
        mid = np.sqrt(lo * hi)
        if bool(catapults_many(jnp.asarray([mid], jnp.float32))[0]):
            hi = mid
        else:
            lo = mid
    return float(lo)


def catapult_warmup(
    loss_fn: Callable[[Params], jax.Array],
    params: Params,
    make_opt: Callable[[jax.Array], optax.GradientTransformation],
    target_learning_rate: float,
    warmup_steps: int,
    **search_kwargs,
) -> optax.Schedule:
    """Linear warmup from the catapult learning rate to ``target_learning_rate``.

    If the target is at or below the catapult rate no warmup is needed and the schedule is
    constant. ``search_kwargs`` go to `catapult_learning_rate`.

    Returns:
      An optax schedule ``step -> learning_rate``, to pass as an optimizer's ``learning_rate``.
    """
    if not target_learning_rate > 0 or warmup_steps < 1:
        raise ValueError("catapult_warmup: target_learning_rate must be > 0 and warmup_steps >= 1")
    init = catapult_learning_rate(loss_fn, params, make_opt, **search_kwargs)
    if target_learning_rate <= init:
        return optax.constant_schedule(target_learning_rate)
    return optax.linear_schedule(init, target_learning_rate, warmup_steps)
