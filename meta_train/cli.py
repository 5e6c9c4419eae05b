"""``velo meta-train``: meta-train, plot or summarise a run, export a checkpoint.

    velo meta-train run --preset tiny --out runs/tiny [--resume] [--set key=value ...]
        [--tensorboard [DIR]] [--devices N] [--distributed]
    velo meta-train plot runs/tiny [--out PNG]
    velo meta-train summary runs/tiny
    velo meta-train export runs/tiny --out my_lopt [--step latest|best|N]

Each action is its own subparser, so a flag of another action is an argparse error (exit 2).
``velo meta-train --preset ...`` (a flag first, no action) means ``run``, the spelling from before
actions (`velo.cli` inserts the action).
"""

from __future__ import annotations

import argparse
import os
import sys


def add_parser(sub) -> None:
    p = sub.add_parser(
        "meta-train", help="meta-train a learned optimizer by evolution strategies",
        description="Meta-train velo's learned optimizer with ES over a task distribution "
        "(run; the default when the first argument is a flag), draw a run's curves (plot), "
        "summarise its log (summary) or export its mean meta-parameters as a learned-optimizer "
        "checkpoint (export).",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    _add_run(actions)
    plot = actions.add_parser("plot", help="draw a run's curves to a PNG")
    plot.add_argument("run_dir", help="a `velo meta-train run --out` directory")
    plot.add_argument("--out", help="PNG path (default: RUN_DIR/meta_train.png)")
    plot.set_defaults(func=_plot)
    summary = actions.add_parser("summary", help="summarise a run's log")
    summary.add_argument("run_dir", help="a `velo meta-train run --out` directory")
    summary.set_defaults(func=_describe)
    export = actions.add_parser("export", help="export a checkpoint as a learned optimizer")
    export.add_argument("run_dir", help="a `velo meta-train run --out` directory")
    export.add_argument("--out", required=True, help="new learned-optimizer checkpoint directory")
    export.add_argument("--step", default="latest",
                        help="latest (default), best (by validation) or a generation")
    export.set_defaults(func=_export)


def _add_run(actions) -> None:
    from meta_train.config import PRESETS

    p = actions.add_parser("run", help="meta-train (the default action)")
    p.add_argument("--preset", required=True, choices=sorted(PRESETS), help="meta-training recipe")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="config overrides, e.g. --set population=64 generations=2000")
    p.add_argument("--devices", type=int, default=None,
                   help="shard the population over this many devices (default: all)")
    p.add_argument("--distributed", action="store_true",
                   help="multi-host: call jax.distributed.initialize() first (also set by "
                   "VELO_DISTRIBUTED=1)")
    p.add_argument("--compilation-cache", default=None, metavar="DIR",
                   help="JAX persistent compilation cache (default: OUT/xla_cache; '' disables)")
    p.add_argument("--tensorboard", nargs="?", const="", default=None, metavar="DIR",
                   help="also write TensorBoard event files, to DIR (default: OUT/tensorboard); "
                   "needs pip install 'velo[tensorboard]'")
    p.set_defaults(func=_meta_train)


def _meta_train(args: argparse.Namespace) -> int:
    if args.distributed or os.environ.get("VELO_DISTRIBUTED") == "1":
        from meta_train.devices import initialize_distributed

        initialize_distributed()
    from meta_train import config as config_lib
    from meta_train.compiled import enable_persistent_cache
    from meta_train.loop import meta_train
    from velo import overrides

    config = overrides.apply(config_lib.preset(args.preset), overrides.parse(args.set))
    cache_dir = os.path.join(args.out, "xla_cache") if args.compilation_cache is None \
        else args.compilation_cache
    if cache_dir:
        enable_persistent_cache(cache_dir)
    from meta_train.devices import is_main_process
    from meta_train.stop import Stopped

    tensorboard = None if args.tensorboard is None else (
        args.tensorboard or os.path.join(args.out, "tensorboard"))
    try:
        result = meta_train(config, args.out, resume=args.resume, num_devices=args.devices,
                            tensorboard=tensorboard, progress=True)
    except Stopped as stopped:
        if is_main_process():
            print(f"velo meta-train: {stopped.message(os.path.abspath(args.out))}",
                  file=sys.stderr)
        return stopped.exit_code
    _summary(result)
    print(f"run directory: {os.path.abspath(args.out)} (log.jsonl, checkpoints/); "
          f"`velo meta-train plot {args.out}` draws it, `velo meta-train export {args.out} "
          f"--out DIR` exports it")
    return 0


def _summary(result) -> None:
    from meta_train.devices import is_main_process
    from meta_train.summary import summarize

    if is_main_process():
        print("\n".join(summarize(result.records)))


def _describe(args: argparse.Namespace) -> int:
    from meta_train.log import read
    from meta_train.summary import summarize

    print("\n".join(summarize(read(args.run_dir))))
    return 0


def _plot(args: argparse.Namespace) -> int:
    from meta_train.plot import plot

    print(f"wrote {plot(args.run_dir, args.out)}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from meta_train.export import export

    path = export(args.run_dir, args.out, args.step)
    print(f"wrote learned-optimizer checkpoint {path}; use it with "
          f"`velo train --optimizer velo --checkpoint {path}` or "
          f"velo.optax_lopt(num_steps, checkpoint={path!r})")
    return 0
