"""``velo eval``: compare optimizers on a task suite and write the report."""

from __future__ import annotations

import argparse

from velo.commands.args import positive_int


def add_parser(sub) -> None:
    from velo.evaluation.protocol import Protocol

    p = sub.add_parser(
        "eval", help="compare optimizers on a task suite (tuned baselines, speed-up over Adam)"
    )
    p.add_argument("--suite", required=True,
                   help="heldout, quick, long, or task names separated by commas")
    p.add_argument("--optimizers", required=True,
                   help="comma-separated, e.g. velo,adam,adamw_cosine,lion,salsa (adam is always "
                        "run; adamw_cosine is the second reference)")
    p.add_argument("--checkpoint", default=None,
                   help="learned-optimizer checkpoint: a path, a shipped name, or 'init' / "
                        "'init:PRESET' for a preset's untrained initialisation")
    p.add_argument("--set", nargs="*", default=[], metavar="OPTIMIZER.KEY=VALUE",
                   help="hyperparameters of one optimizer, e.g. --set "
                        "adamw_cosine.weight_decay=0.1 (part of its cache identity)")
    p.add_argument("--steps", type=positive_int, default=None,
                   help="step budget per task (default: each task's own)")
    p.add_argument("--seeds", type=positive_int, default=Protocol.seeds,
                   help=f"seeds per run (default {Protocol.seeds})")
    p.add_argument("--grid-size", type=positive_int, default=Protocol.grid_size,
                   help=f"learning rates per tuned baseline, >= 7 (default {Protocol.grid_size})")
    p.add_argument("--reference-factor", type=positive_int, default=Protocol.reference_factor,
                   help=f"Adam's horizon as a multiple of the budget "
                        f"(default {Protocol.reference_factor})")
    p.add_argument("--out", required=True,
                   help="output directory; re-use it to resume, add optimizers or try another "
                        "checkpoint (only the missing or changed sweeps run)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from velo.evaluation import Protocol

    protocol = Protocol(
        suite=args.suite,
        optimizers=tuple(n.strip() for n in args.optimizers.split(",") if n.strip()),
        steps=args.steps,
        seeds=args.seeds,
        grid_size=args.grid_size,
        reference_factor=args.reference_factor,
        checkpoint=args.checkpoint,
        hparams=per_optimizer(args.set),
    )
    print_evaluation(protocol, args.out)
    return 0


def per_optimizer(pairs: list[str]) -> dict[str, dict]:
    """``["adamw_cosine.weight_decay=0.1"]`` -> ``{"adamw_cosine": {"weight_decay": 0.1}}``."""
    from velo import overrides

    out: dict[str, dict] = {}
    for key, value in overrides.parse(pairs).items():
        name, dot, field = key.partition(".")
        if not dot or not name or not field:
            raise ValueError(f"bad --set {key}={value!r}: expected OPTIMIZER.KEY=VALUE, e.g. "
                             f"adamw_cosine.weight_decay=0.1")
        out.setdefault(name, {})[field] = value
    return out


def print_evaluation(protocol, out: str) -> None:
    """Run ``protocol`` into ``out`` with progress bars and print the tables and file paths."""
    from velo.evaluation import evaluate, report

    result = evaluate(protocol, out, progress=True)
    if result.reused:
        print(f"reused from {out}: {_pairs(result.reused, len(result.metrics))}; "
              f"ran: {_pairs(result.ran, len(result.metrics)) or 'nothing'}")
    print(report.task_table(result.metrics))
    print()
    print(report.summary_table(result.summary))
    print()
    print(report.cosine_table(result.summary))
    print()
    for name, path in result.files.items():
        print(f"{name:>8}: {path}")


def _pairs(pairs: list[tuple[str, str]], tasks: int) -> str:
    """``(task, optimizer)`` pairs by optimizer: ``"adam, salsa on all 5 tasks; velo on t1"``."""
    by_optimizer: dict[str, list[str]] = {}
    for task, name in pairs:
        by_optimizer.setdefault(name, []).append(task)
    by_tasks: dict[str, list[str]] = {}
    for name, task_names in by_optimizer.items():
        where = f"all {tasks} tasks" if len(task_names) == tasks > 1 else ", ".join(task_names)
        by_tasks.setdefault(where, []).append(name)
    return "; ".join(f"{', '.join(names)} on {where}" for where, names in by_tasks.items())
