"""Assemble a `Task` from a `TaskSpec`: data, model, objective, augmentation, costs."""

from __future__ import annotations

import functools
import math

import jax

from tasks import augment, cost, datasets, families
from tasks.base import Task, TaskFns
from tasks.model_task import model_task
from tasks.quadratic import quadratic_task
from tasks.spec import TaskSpec

DEFAULT_STEPS = 1000


def task_fns(spec: TaskSpec) -> TaskFns:
    """The family's functions for ``spec``, before reparameterisation."""
    arch = spec.arch_dict
    if spec.family == "quadratic":
        return quadratic_task(arch["dim"], arch["log10_condition"], spec.batch_size, spec.seed)
    data = datasets.load(spec.dataset, spec.seed)
    return model_task(spec, families.get(spec.family).model(arch, data.info), data)


@functools.cache
def make_task(spec: TaskSpec, name: str, default_steps: int = DEFAULT_STEPS) -> Task:
    """The `Task` for ``spec``, built once per process for each ``(spec, name, default_steps)``.

    Use `tasks.build` or `tasks.get`, which pick the name and step budget.
    """
    fns = task_fns(spec)
    shapes = jax.eval_shape(fns.init, jax.random.key(0))
    scales = augment.reparam_scales(spec, shapes)
    if scales is not None:
        fns = augment.reparameterise(fns, scales)
    num_params = sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(shapes))
    return Task(name, spec, fns.init, fns.loss, fns.sample_batch, fns.test_metrics,
                normalizer=fns.normalizer, default_steps=default_steps, num_params=num_params,
                flops_per_step=cost.flops_per_step(spec))
