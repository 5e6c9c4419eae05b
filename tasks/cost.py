"""What a task costs: estimated FLOPs per step (for the sampler's budget) and measured speed."""

from __future__ import annotations

import time

import jax
import optax

from tasks import datasets, families
from tasks.base import Task
from tasks.spec import TaskSpec

# A training step is one forward and one backward pass (about twice the forward), and a
# multiply-add is two FLOPs.
FLOPS_PER_FORWARD_MAC = 2 * 3
TIMING_LEARNING_RATE = 1e-3  # Adam's step size does not change its speed; any sane value will do


def flops_per_step(spec: TaskSpec) -> float:
    """Estimated FLOPs of one training step of ``spec`` (matrix products only), from its shapes.

    Cheap (no tracing), so the sampler can reject specs over budget before building them.
    """
    family = families.get(spec.family)
    macs = family.macs(spec.arch_dict, datasets.info(spec.dataset))
    examples = 1 if spec.family == "quadratic" else spec.batch_size
    return float(FLOPS_PER_FORWARD_MAC * macs * examples)


def steps_per_second(task: Task, num_steps: int = 200) -> float:
    """Adam steps per second on ``task``, timed after compilation, ``num_steps`` in one scan."""
    opt = optax.adam(TIMING_LEARNING_RATE)

    def step(carry, step_key):
        params, opt_state = carry
        batch_key, loss_key = jax.random.split(step_key)
        grads = jax.grad(task.loss)(params, task.sample_batch(batch_key), loss_key)
        updates, opt_state = opt.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), None

    @jax.jit
    def run(carry, key):
        return jax.lax.scan(step, carry, jax.random.split(key, num_steps))[0]

    params = task.init(jax.random.key(0))
    carry = (params, opt.init(params))
    jax.block_until_ready(run(carry, jax.random.key(1)))
    start = time.perf_counter()
    jax.block_until_ready(run(carry, jax.random.key(2)))
    return num_steps / (time.perf_counter() - start)
