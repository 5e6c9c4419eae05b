"""Rule "v2": the learned update, bounded by construction.

For a tensor with parameters ``p``, MLP direction ``d`` per element and LSTM step output ``u``,
after ``t`` of ``T = num_steps`` steps::

    update = -step * (clip(d / RMS(d), +-max_direction) * max(RMS(p), floor) + wd * p)
    step   = init_step * schedule(t / T) * exp(b * tanh(u))

RMS(d) is taken over the tensor at every step, so the MLP chooses only the direction; one step
moves a tensor by exactly ``step`` times its scale in RMS (less where the clip bites). The prior
schedule warms up linearly over `Config.warmup_fraction`, decays by a half cosine to
`Config.final_step_fraction` at ``T`` and holds that floor afterwards; the LSTM may reshape it
per tensor by at most a factor exp(+-b) (`Config.step_bound`), but can neither undo the
annealing nor blow the step up. A run longer than planned therefore slows down instead of
diverging. The initial meta-parameters (MLP = normalised Adam direction, u ~ 0) make this the
hand-designed rule "per-tensor normalised Adam at 0.01 RMS(p), warmup and cosine".

Options: `Config.orthogonalize` (Newton-Schulz for 2-D tensors, as Muon) and
`Config.adam_for_vectors` (Adam's direction for tensors of rank < 2, as Celo2's AdamW path).

References:
  Metz et al., "VeLO: Training Versatile Learned Optimizers by Scaling Up", 2022,
  https://arxiv.org/abs/2211.09760 (the hypernetwork design and relative steps).
  Moudgil et al., "Celo2", 2026, https://arxiv.org/abs/2602.19142 (per-step RMS normalisation
  of the learned update, Newton-Schulz, an AdamW path for vectors).
  Moudgil et al., "Celo: Training Versatile Learned Optimizers on a Compute Diet", 2025,
  https://arxiv.org/abs/2501.12670 (a learned schedule on a stable base rule stays stable).
  Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024,
  https://kellerjordan.github.io/posts/muon/ (the quintic Newton-Schulz iteration).
  Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts", 2017 (cosine).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from velo.lopt.config import Config
from velo.lopt.features import ElementInputs, element_index
from velo.lopt.rule import Rule, decayed

# Muon's quintic: coefficients (a, b, c) of X <- a X + b (X X^T) X + c (X X^T)^2 X.
_NEWTON_SCHULZ = (3.4445, -4.7750, 2.0315)
_NEWTON_SCHULZ_STEPS = 5
_TINY = 1e-30


def schedule(count: jax.Array, num_steps, config: Config) -> jax.Array:
    """Scalar prior step multiplier in [final_step_fraction, 1] for step ``count`` (0-based).

    Linear warmup to 1 over the first `warmup_fraction` of ``num_steps``, half-cosine decay to
    `final_step_fraction` at ``num_steps``, constant after. ``num_steps`` may be traced (meta-
    training vmaps over horizons), which is why this is not an optax schedule: those take the
    warmup and decay lengths as Python numbers.
    """
    frac = (count.astype(jnp.float32) + 1.0) / jnp.asarray(num_steps, jnp.float32)
    warm = config.warmup_fraction
    warmup = jnp.minimum(frac / warm, 1.0) if warm > 0 else 1.0
    decay_frac = jnp.clip((frac - warm) / (1.0 - warm), 0.0, 1.0)
    floor = config.final_step_fraction
    cosine = floor + (1.0 - floor) * 0.5 * (1.0 + jnp.cos(jnp.pi * decay_frac))
    return warmup * cosine


def tensor_steps(step_output: jax.Array, count: jax.Array, num_steps, config: Config) -> jax.Array:
    """``[n]`` steps init_step * schedule * exp(b * tanh(u)): within exp(+-b) of the prior."""
    modulation = jnp.exp(config.step_bound * jnp.tanh(step_output))
    return config.init_step * schedule(count, num_steps, config) * modulation


def newton_schulz(d: jax.Array) -> jax.Array:
    """Approximately orthogonalise the 2-D ``d`` (singular values pushed towards ~1).

    Five quintic iterations on ``d / ||d||_F``, on the shorter side, so the cost is
    O(min(m, n)**2 * max(m, n)) flops per iteration.
    """
    a, b, c = _NEWTON_SCHULZ
    wide = d.shape[0] <= d.shape[1]
    x = d if wide else d.T
    x = x * jax.lax.rsqrt(jnp.sum(jnp.square(x)) + _TINY)
    for _ in range(_NEWTON_SCHULZ_STEPS):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x if wide else x.T


def tensor_update(
    outputs: list[jax.Array],
    x: ElementInputs,
    feature_rms: jax.Array,
    init_rms: jax.Array,
    step: jax.Array,
    weight_decay,
    config: Config,
) -> jax.Array:
    """``-step * (clip(d / RMS(d)) * scale + weight_decay * p)``, float32, with scale =
    max(RMS(p), floor), or max(RMS(p at init), floor) for ``scale_reference="initial"``."""
    (d,) = outputs
    d = jnp.broadcast_to(d, x.p.shape)
    if config.adam_for_vectors and x.p.ndim < 2:
        d = x.momenta[0] * jax.lax.rsqrt(x.second + 1e-10)  # debiased m / sqrt(v), scale-free
    elif config.orthogonalize and x.p.ndim == 2:
        d = newton_schulz(d)
    d = d * jax.lax.rsqrt(jnp.mean(jnp.square(d)) + _TINY)
    direction = jnp.clip(d, -config.max_direction, config.max_direction)
    rms = feature_rms[element_index("p")] if config.scale_reference == "current" else init_rms
    scale = jnp.maximum(rms, config.param_scale_floor)
    return -step * decayed(direction * scale, x.p, weight_decay)


def step_bound(config: Config, learning_rate: float = 1.0) -> float:
    """The largest RMS of one tensor's update (without weight decay), in units of its scale
    max(RMS(p), floor): ``learning_rate * init_step * exp(b)``."""
    return float(learning_rate * config.init_step * jnp.exp(config.step_bound))


RULE = Rule(
    name="v2",
    feature_version=2,
    num_outputs=1,
    step_head="step",
    step_bias=lambda config: 0.0,
    tensor_steps=tensor_steps,
    tensor_update=tensor_update,
)
