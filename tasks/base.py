"""The task protocol: what every training problem in velo provides.

A task is a bundle of pure functions over one model and one dataset. Nothing in it holds mutable
state, so a task can be traced once and reused under `jit`, `vmap` (over seeds or population
members) and `lax.scan` (over training steps).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax

Params = Any
Batch = Any


@dataclasses.dataclass(frozen=True, eq=False)
class Task:
    """One training problem.

    Attributes:
      name: registry name, e.g. ``"digits_mlp"``.
      spec: JSON-serialisable description from which the task can be rebuilt (a `TaskSpec`,
        which is a mapping: ``dict(task.spec)`` is its JSON form).
      init: ``init(key) -> params``, a pytree of float arrays.
      loss: ``loss(params, batch, key) -> scalar``, the minibatch training loss. ``key`` drives any
        randomness of the forward pass (dropout, noise); the same key gives the same value.
      sample_batch: ``sample_batch(key) -> batch``, jittable and vmappable: the data is held on
        device and indexed at random, so no Python data loader sits on the hot path.
      test_metrics: ``test_metrics(params) -> {"loss": scalar, "accuracy": scalar, ...}`` on the
        held-out split, or ``None`` when the task has no test set.
      normalizer: loss of a trivial predictor (uniform over classes, the mean target, or the
        quadratic's expected value at initialisation); divide losses by it to compare tasks.
      default_steps: a training budget at which the task is judged.
      num_params: number of trainable scalars.
      flops_per_step: estimated floating-point operations of one training step (forward and
        backward), see `tasks.cost.flops_per_step`.
    """

    name: str
    spec: Mapping[str, Any]
    init: Callable[[jax.Array], Params]
    loss: Callable[[Params, Batch, jax.Array], jax.Array]
    sample_batch: Callable[[jax.Array], Batch]
    test_metrics: Callable[[Params], dict[str, jax.Array]] | None = None
    normalizer: float = 1.0
    default_steps: int = 1000
    num_params: int = 0
    flops_per_step: float = 0.0


class TaskFns(NamedTuple):
    """The functions (and normaliser) a family builds, before augmentation wraps them."""

    init: Callable[[jax.Array], Params]
    loss: Callable[[Params, Batch, jax.Array], jax.Array]
    sample_batch: Callable[[jax.Array], Batch]
    test_metrics: Callable[[Params], dict[str, jax.Array]]
    normalizer: float
