"""``velo stability``: does the learned optimizer stay stable far past each task's budget?"""

from __future__ import annotations

import argparse

from velo.commands.args import positive_float, positive_int


def add_parser(sub) -> None:
    from velo.evaluation import stability

    p = sub.add_parser(
        "stability", help="train the learned optimizer far past each task's budget and check it "
                          "neither diverges nor gets worse"
    )
    p.add_argument("--checkpoint", default=None,
                   help="learned-optimizer checkpoint path or name (default: the shipped one)")
    p.add_argument("--suite", required=True,
                   help="heldout, quick, long, or task names separated by commas")
    p.add_argument("--steps", type=positive_int, default=None, help="length of every run")
    p.add_argument("--horizon-factor", type=positive_float, default=None,
                   help="run F times the checkpoint's longest meta-training horizon instead")
    p.add_argument("--seeds", type=positive_int, default=stability.Check.seeds,
                   help=f"seeds per task (default {stability.Check.seeds})")
    p.add_argument("--budget", type=positive_int, default=None,
                   help="step the final loss is compared with (default: each task's own budget)")
    p.add_argument("--max-seconds", type=positive_float, default=stability.DEFAULT_MAX_SECONDS,
                   help="skip tasks estimated to take longer, all seeds together "
                        f"(default {stability.DEFAULT_MAX_SECONDS:g})")
    p.add_argument("--out", required=True, help="output directory (re-use to resume)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from velo.evaluation import stability

    check = stability.Check(
        suite=args.suite, steps=args.steps, horizon_factor=args.horizon_factor, seeds=args.seeds,
        budget=args.budget, max_seconds=args.max_seconds, checkpoint=args.checkpoint,
    )
    result = stability.run_check(check, args.out, progress=True)
    config = result.record["config"]
    print(f"learned optimizer: {config['learned_optimizer']}; {config['steps']} steps, "
          f"{config['seeds']} seed(s) per task")
    if result.reused:
        print(f"reused finished tasks from {args.out}: {', '.join(result.reused)}")
    print(result.table)
    print()
    for name, path in result.files.items():
        print(f"{name:>8}: {path}")
    return 0
