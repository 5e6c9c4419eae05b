"""``velo demo``: what ``make demo`` runs. The quick suite, offline: the default learned optimizer
against tuned Adam, the standard recipe (AdamW with warmup and cosine decay), RAdam and Lion and
the line search SaLSA, in a few minutes on 2 CPU cores."""

from __future__ import annotations

# Sized to finish within 5 minutes on 2 cores, where compiling one program per task and optimizer
# takes most of the time: the default 9-rate grid, 2 seeds, each task's own budget.
OPTIMIZERS = ("velo", "adam", "adamw_cosine", "radam", "lion", "salsa")
SEEDS = 2


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="compare the learned optimizer with tuned baselines, both "
                                    "references among them, on the quick suite (what `make demo` "
                                    "runs)")
    p.add_argument("--out", default="runs/demo", help="output directory (default runs/demo)")
    p.set_defaults(func=run)


def run(args) -> int:
    from velo import lopt
    from velo.evaluation import Protocol
    from velo.evaluation.cli import print_evaluation

    protocol = Protocol("quick", OPTIMIZERS, seeds=SEEDS)
    print(f"velo demo: quick suite, {', '.join(OPTIMIZERS)}; baselines tuned over "
          f"{protocol.grid_size} learning rates, {SEEDS} seeds each; velo is "
          f"{lopt.identity(None)}")
    print_evaluation(protocol, args.out)
    return 0
