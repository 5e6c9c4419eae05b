"""``velo tasks``: list, inspect and sample tasks."""

from __future__ import annotations

import argparse
import json


def add_parser(sub) -> None:
    from tasks.sampler import DISTRIBUTIONS

    p = sub.add_parser("tasks", help="list, inspect and sample tasks")
    tsub = p.add_subparsers(dest="tasks_command", required=True, metavar="ACTION")
    lst = tsub.add_parser("list", help="list named tasks: digits_mlp and the held-out suite")
    lst.set_defaults(func=list_tasks)
    show = tsub.add_parser("show", help="spec, size, cost and measured speed of one task")
    show.add_argument("name", help="a task name (see `velo tasks list`) or a spec as JSON")
    show.add_argument("--steps", type=int, default=200, help="Adam steps timed for steps/s")
    show.set_defaults(func=show_task)
    smp = tsub.add_parser("sample", help="draw task specs from a distribution")
    smp.add_argument("--distribution", default="default", choices=list(DISTRIBUTIONS))
    smp.add_argument("--seed", type=int, default=0)
    smp.add_argument("--count", type=int, default=1,
                     help="number of specs (seeds seed, seed+1, ...)")
    smp.set_defaults(func=sample_tasks)


def list_tasks(args: argparse.Namespace) -> int:
    from tasks.registry import NAMED
    from tasks.suites import SUITES

    print(f"{'name':26s} {'family':12s} {'dataset':9s} {'steps':>5s}  suites")
    for name, (spec, steps) in sorted(NAMED.items()):
        suites = ", ".join(s for s, members in SUITES.items() if name in members)
        print(f"{name:26s} {spec.family:12s} {spec.dataset:9s} {steps:5d}  {suites}")
    return 0


def show_task(args: argparse.Namespace) -> int:
    import tasks
    from tasks import cost

    if args.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {args.steps}")
    if args.name.lstrip().startswith("{"):
        task = tasks.build(tasks.TaskSpec.from_json(args.name))
    else:
        task = tasks.get(args.name)
    print(f"name: {task.name}")
    print(f"spec: {json.dumps(dict(task.spec))}")
    print(f"parameters: {task.num_params:,}")
    print(f"FLOPs/step (estimate): {task.flops_per_step:.3g}")
    print(f"default steps: {task.default_steps}")
    print(f"loss normaliser: {task.normalizer:.4g}")
    print(f"steps/s (Adam, {args.steps} steps in one scan): "
          f"{cost.steps_per_second(task, args.steps):,.0f}")
    return 0


def sample_tasks(args: argparse.Namespace) -> int:
    import jax

    import tasks
    from tasks import cost

    if args.count < 1:
        raise ValueError(f"--count must be >= 1, got {args.count}")
    for seed in range(args.seed, args.seed + args.count):
        spec = tasks.sample(jax.random.key(seed), args.distribution)
        print(json.dumps({"seed": seed, "name": spec.short_name(),
                          "flops_per_step": cost.flops_per_step(spec), "spec": dict(spec)}))
    return 0
