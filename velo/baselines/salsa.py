"""SaLSA: Stable Armijo Line Search Adaptation (Kenneweg et al., IJCNN 2024), fully jittable.

Each step updates Adam's moments. On *search steps* SaLSA tries the momentum-free preconditioned
step ``theta - eta * P g`` (P = 1 / (sqrt(v_hat) + eps)), starting from ``growth * eta`` and
shrinking by ``shrink`` until the smoothed Armijo test

    h_t = b3 h + (1 - b3) (L - L_trial)  >=  c * eta * s,    s = b3 s + (1 - b3) sum(g * P * g)

passes (h is committed only on acceptance, s once per search step; both start at 0 without bias
correction). The accepted point is the step taken. On the other steps SaLSA takes the full Adam
step (bias-corrected momentum) at ``growth * eta`` without storing the grown step size.

Cadence: steps 1-9 always search; afterwards a search happens once ``steps since the last
search >= min(10, 1 / (r - 1))``, with ``r = max(fast/slow, slow/fast)`` the ratio of the fast
(0.9) and slow (0.99) moving averages of the accepted step sizes: every step while eta moves,
every 10 steps once it settles.

Faithful to the reference `SaLSA` class, including two quirks: the bias corrections use
``count + 1`` (one step ahead of Adam's), and after ``max_trials`` failures the last tried point
is kept while ``eta`` becomes ``shrink`` times the last try. A step whose loss equals the trial
loss exactly is accepted without updating h (the reference's "cancellation" rule).

Non-finite values: a NaN/inf trial loss fails the test (the search backtracks); a non-finite loss
or slope at the current point disables the search (the reference's ``L >= 1e-8 and s >= 1e-8``
gate), and the registry's `velo.guard` skips such steps entirely.

Dtypes: the line search's scalars (losses, eta, h, s and the step-size averages) are float32, or
float64 when the parameters hold float64; bfloat16 parameters keep a float32 search, whose
``shrink``-factor steps and 0.99-averages bfloat16 would round away. Moments and updates take the
dtype of the parameters.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

_TINY = 1e-8  # the reference's floor on the loss and the slope before it searches


class SalsaState(NamedTuple):
    """State of `salsa`.

    Attributes:
      count: int32 scalar, steps taken (k).
      mu: first moment m, like params.
      nu: second moment v, like params.
      step_size: scalar in the search dtype (`search_dtype`), the stored step size eta.
      decrease: search-dtype scalar h, moving average of accepted loss decreases.
      slope: search-dtype scalar s, moving average of ``g . P g`` over search steps.
      step_size_slow: search-dtype scalar, 0.99-average of eta after each search.
      step_size_fast: search-dtype scalar, 0.9-average of eta after each search.
      since_search: int32 scalar, steps since the last search step.
      searches: int32 scalar, number of search steps so far.
      trials: int32 scalar, forward passes spent on trial points so far (no backward passes).
    """

    count: jax.Array
    mu: optax.Updates
    nu: optax.Updates
    step_size: jax.Array
    decrease: jax.Array
    slope: jax.Array
    step_size_slow: jax.Array
    step_size_fast: jax.Array
    since_search: jax.Array
    searches: jax.Array
    trials: jax.Array


def search_dtype(params: optax.Params) -> jnp.dtype:
    """Dtype of the line search's scalars: float32, or wider when ``params`` hold wider floats."""
    return jnp.promote_types(jnp.float32, optax.tree.dtype(params, "promote"))


def searches_needed_gap(step_size_fast: jax.Array, step_size_slow: jax.Array) -> jax.Array:
    """``min(10, 1 / (r - 1))`` steps between searches, r = max(fast/slow, slow/fast)."""
    ratio = jnp.maximum(step_size_fast / step_size_slow, step_size_slow / step_size_fast)
    return jnp.minimum(10.0, 1.0 / ((ratio - 1.0) + _TINY))


def salsa(
    init_step_size: float = 1.0,
    c: float = 0.5,
    b1: float = 0.9,
    b2: float = 0.999,
    b3: float = 0.9,
    growth: float = 1.1,
    shrink: float = 0.8,
    max_trials: int = 100,
    weight_decay: float = 0.0,
    adaptive_cadence: bool = True,
    eps: float = 1e-8,
) -> optax.GradientTransformationExtraArgs:
    """SaLSA with the reference `SaLSA` class defaults.

    ``update(grads, state, params, *, loss, loss_fn)`` needs ``loss``, the minibatch loss at
    ``params``, and ``loss_fn(p)``, the same minibatch's loss (same data, same PRNG key) at ``p``.

    References:
      Kenneweg, Kenneweg, Fumagalli, Hammer, "No learning rates needed: Introducing SALSA -
      Stable Armijo Line Search Adaptation", IJCNN 2024, arXiv 2407.20650.

    Args:
      init_step_size: eta_0; the first trial is ``growth * init_step_size``.
      c: Armijo constant.
      b1, b2: Adam's moment decays.
      b3: decay of the moving averages on both sides of the Armijo test.
      growth: step-size growth before each step.
      shrink: backtracking factor per failed trial.
      max_trials: trial forward passes per search at most.
      weight_decay: decoupled decay ``theta -= weight_decay * eta * theta`` (eta of the previous
        step), applied before the trials.
      adaptive_cadence: search on the cadence above (the reference's ``speed_up``); when False
        every step searches.
      eps: added to ``sqrt(v_hat)``.
    """
    _check_salsa_args(c, b1, b2, b3, growth, shrink, max_trials, init_step_size, weight_decay)

    def init_fn(params):
        return _init_state(params, init_step_size)

    def update_fn(grads, state, params=None, *, loss=None, loss_fn=None, **extra_args):
        del extra_args  # other callers' extra arguments
        _check_update_args(params, loss, loss_fn)
        dtype = state.step_size.dtype
        loss = jnp.asarray(loss, dtype)
        count = optax.safe_increment(state.count)
        mu = optax.tree.update_moment(grads, state.mu, b1, 1)
        nu = optax.tree.update_moment_per_elem_norm(grads, state.nu, b2, 2)
        moved = state._replace(count=count, mu=mu, nu=nu, since_search=state.since_search + 1)
        adam_dir, plain_dir = _directions(grads, mu, nu, count, b1, b2, eps)
        decay = weight_decay * state.step_size
        eta_try = growth * state.step_size

        def skipped(_):
            return _step(params, adam_dir, eta_try, decay), moved

        def searched(_):
            g_dot_pg = optax.tree.vdot(optax.tree.cast(grads, dtype),
                                       optax.tree.cast(plain_dir, dtype))
            slope = b3 * state.slope + (1.0 - b3) * g_dot_pg
            can_search = (loss >= _TINY) & (slope >= _TINY)
            updates, eta, decrease, trials = jax.lax.cond(
                can_search,
                lambda _: _backtrack(params, plain_dir, loss, loss_fn, state.decrease, slope,
                                     eta_try, decay, c, b3, shrink, max_trials),
                lambda _: (_step(params, adam_dir, eta_try, decay), eta_try, state.decrease,
                           jnp.zeros((), jnp.int32)),
                None,
            )
            return updates, _record_search(moved, eta, decrease, slope, trials)

        search = _search_due(moved) if adaptive_cadence else jnp.asarray(True)
        return jax.lax.cond(search, searched, skipped, None)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _init_state(params: optax.Params, init_step_size: float) -> SalsaState:
    real = lambda x: jnp.asarray(x, search_dtype(params))  # noqa: E731
    i32 = lambda x: jnp.asarray(x, jnp.int32)  # noqa: E731
    return SalsaState(
        count=i32(0), mu=optax.tree.zeros_like(params), nu=optax.tree.zeros_like(params),
        step_size=real(init_step_size), decrease=real(0.0), slope=real(0.0),
        step_size_slow=real(_TINY), step_size_fast=real(_TINY),
        since_search=i32(100), searches=i32(0), trials=i32(0),
    )


def _check_update_args(params, loss, loss_fn) -> None:
    if params is None or loss is None or loss_fn is None:
        raise ValueError(
            "salsa's update needs params, loss= (the minibatch loss at params) and loss_fn= "
            "(p -> the same minibatch's loss at p) for its line search; velo.train.train "
            "passes both"
        )


def _directions(grads, mu, nu, count, b1, b2, eps):
    """``(P m_hat, P g)``: Adam's direction and the momentum-free one the search tries, with
    ``P = 1 / (sqrt(v_hat) + eps)``."""
    # The reference bias-corrects with count + 1; kept for fidelity.
    v_hat = optax.tree.bias_correction(nu, b2, count + 1)
    precond = jax.tree.map(lambda v: 1.0 / (jnp.sqrt(v) + eps), v_hat)
    m_hat = optax.tree.bias_correction(mu, b1, count + 1)
    return jax.tree.map(jnp.multiply, precond, m_hat), jax.tree.map(jnp.multiply, precond, grads)


def _search_due(state: SalsaState) -> jax.Array:
    """Whether step ``state.count`` searches: steps 1-9 always, later ones once
    ``state.since_search`` reaches `searches_needed_gap`."""
    gap = searches_needed_gap(state.step_size_fast, state.step_size_slow)
    return (state.count < 10) | (state.since_search >= gap)


def _record_search(state: SalsaState, eta, decrease, slope, trials) -> SalsaState:
    """``state`` after a search that stored step size ``eta``, h ``decrease`` and s ``slope``
    and spent ``trials`` forward passes."""
    return state._replace(
        step_size=eta, decrease=decrease, slope=slope,
        step_size_slow=0.99 * state.step_size_slow + 0.01 * eta,
        step_size_fast=0.9 * state.step_size_fast + 0.1 * eta,
        since_search=jnp.zeros((), jnp.int32), searches=state.searches + 1,
        trials=state.trials + trials,
    )


def _step(params, direction, eta, decay):
    """Updates moving ``params`` to ``(1 - decay) * params - eta * direction``, in the dtype of
    each parameter."""
    return jax.tree.map(lambda p, d: (-decay * p - eta * d).astype(p.dtype), params, direction)


def _backtrack(params, direction, loss, loss_fn, decrease, slope, eta, decay, c, b3, shrink,
               max_trials):
    """The backtracking loop: (updates, stored eta, h, number of trials).

    Tries ``(1 - decay) * params - eta * direction`` with eta shrinking until the smoothed Armijo
    test passes or ``max_trials`` forwards are spent. Trial losses are compared in ``loss``'s dtype.
    """

    def keep_going(carry):
        trials, _, _, _, accepted = carry
        return (trials < max_trials) & ~accepted

    def try_once(carry):
        trials, eta, _, h, _ = carry
        trial = optax.apply_updates(params, _step(params, direction, eta, decay))
        new_loss = jnp.asarray(loss_fn(trial), loss.dtype)
        candidate = b3 * h + (1.0 - b3) * (loss - new_loss)
        cancelled = new_loss == loss
        passed = candidate >= c * eta * slope  # False for NaN or inf trial losses
        accepted = cancelled | passed
        h = jnp.where(passed & ~cancelled, candidate, h)
        next_eta = jnp.where(accepted, eta, shrink * eta)
        return trials + 1, next_eta, eta, h, accepted

    init = (jnp.zeros((), jnp.int32), eta, eta, decrease, jnp.asarray(False))
    trials, eta, tried, h, _ = jax.lax.while_loop(keep_going, try_once, init)
    return _step(params, direction, tried, decay), eta, h, trials


def salsa_paper(
    init_step_size: float = 0.1,
    c: float = 0.3,
    b1: float = 0.9,
    b2: float = 0.999,
    b3: float = 0.99,
    growth: float = 2.0 ** (1.0 / 500.0),
    shrink: float = 0.9,
    max_trials: int = 200,
    weight_decay: float = 0.0,
    adaptive_cadence: bool = True,
    eps: float = 1e-8,
) -> optax.GradientTransformationExtraArgs:
    """SaLSA with the constants of the paper's experiment scripts (``AdamSLS``, ``adamsls`` run).

    eta_0 = 0.1, c = 0.3, smoothing 0.99, backtracking 0.9, <= 200 trials, growth
    ``2 ** (1 / 500)`` (gamma = 2 per 500-batch epoch). Only the constants change: AdamSLS's
    structural differences (growth compounding on every step, the momentum direction applied at
    the accepted step size, parameter groups) are not reproduced.
    """
    return salsa(
        init_step_size=init_step_size, c=c, b1=b1, b2=b2, b3=b3, growth=growth, shrink=shrink,
        max_trials=max_trials, weight_decay=weight_decay, adaptive_cadence=adaptive_cadence,
        eps=eps,
    )


def _check(name: str, value, ok, rule: str) -> None:
    """Raise if ``value`` is a concrete number breaking ``rule``; tracers pass unchecked."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and not ok(value):
        raise ValueError(f"salsa: {name} must be {rule}, got {value}")


def _check_salsa_args(c, b1, b2, b3, growth, shrink, max_trials, init_step_size, weight_decay):
    for name, value in (("c", c), ("shrink", shrink)):
        _check(name, value, lambda x: 0 < x < 1, "in (0, 1)")
    for name, value in (("b1", b1), ("b2", b2), ("b3", b3)):
        _check(name, value, lambda x: 0 <= x < 1, "in [0, 1)")
    _check("growth", growth, lambda x: x >= 1, ">= 1")
    _check("init_step_size", init_step_size, lambda x: x > 0, "> 0")
    _check("weight_decay", weight_decay, lambda x: x >= 0, ">= 0")
    if not isinstance(max_trials, int) or isinstance(max_trials, bool) or max_trials < 1:
        raise ValueError(f"salsa: max_trials must be an int >= 1, got {max_trials!r}")
