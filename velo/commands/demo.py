"""``velo demo``: what ``make demo`` runs. The quick suite, offline: the shipped learned optimizer
against tuned Adam, RAdam and Lion and the line search SaLSA, in a few minutes on 2 CPU cores."""

from __future__ import annotations

# Sized to finish within 5 minutes on 2 cores: the protocol's minimum grid, 2 seeds.
OPTIMIZERS = ("velo", "adam", "radam", "lion", "salsa")
SEEDS = 2
GRID_SIZE = 7


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="compare the learned optimizer with tuned baselines on the "
                                    "quick suite (what `make demo` runs)")
    p.add_argument("--out", default="runs/demo", help="output directory (default runs/demo)")
    p.set_defaults(func=run)


def run(args) -> int:
    from velo.evaluation import Protocol
    from velo.evaluation.cli import print_evaluation

    protocol = Protocol("quick", OPTIMIZERS, seeds=SEEDS, grid_size=GRID_SIZE)
    print(f"velo demo: quick suite, {', '.join(OPTIMIZERS)}; baselines tuned over {GRID_SIZE} "
          f"learning rates, {SEEDS} seeds each")
    print_evaluation(protocol, args.out)
    return 0
