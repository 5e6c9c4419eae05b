"""``velo meta-train``: meta-train, plot or summarise a run, export a checkpoint.

    velo meta-train --preset tiny --out runs/tiny [--resume] [--set key=value ...]
    velo meta-train plot runs/tiny
    velo meta-train summary runs/tiny
    velo meta-train export runs/tiny --out my_lopt [--step latest|best|N]
"""

from __future__ import annotations

import argparse

ACTIONS = ("plot", "export", "summary")
# Flags that only one action reads (None: meta-training); given with another action they would be
# silently ignored, so they are rejected instead. --out serves every action.
_FLAG_ACTION = {
    "--preset": None, "--resume": None, "--set": None, "--devices": None, "--distributed": None,
    "--compilation-cache": None, "--step": "export",
}


def add_parser(sub) -> None:
    from meta_train.config import PRESETS

    p = sub.add_parser(
        "meta-train", help="meta-train a learned optimizer by evolution strategies",
        description="Meta-train velo's learned optimizer with ES over a task distribution "
        "(default action), draw a run's curves (plot RUN_DIR), summarise its log (summary "
        "RUN_DIR) or export its mean meta-parameters as a learned-optimizer checkpoint (export "
        "RUN_DIR --out DIR).",
    )
    p.add_argument("action", nargs="?", choices=ACTIONS,
                   help="plot, summarise or export an existing run")
    p.add_argument("run_dir", nargs="?", help="run directory, for plot, summary and export")
    p.add_argument("--preset", choices=sorted(PRESETS), help="meta-training recipe")
    p.add_argument("--out", help="run directory (meta-training), PNG (plot) or new checkpoint "
                   "directory (export)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--set", nargs="*", metavar="KEY=VALUE",
                   help="config overrides, e.g. --set population=64 generations=2000")
    p.add_argument("--devices", type=int, default=None,
                   help="shard the population over this many devices (default: all)")
    p.add_argument("--distributed", action="store_true",
                   help="multi-host: call jax.distributed.initialize() first (also set by "
                   "VELO_DISTRIBUTED=1)")
    p.add_argument("--compilation-cache", default=None, metavar="DIR",
                   help="JAX persistent compilation cache (default: OUT/xla_cache; '' disables)")
    p.add_argument("--step", help="export: latest (default), best or a generation")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    _check_flags(args)
    if args.action == "plot":
        return _plot(args)
    if args.action == "export":
        return _export(args)
    if args.action == "summary":
        return _describe(args)
    return _meta_train(args)


def _check_flags(args: argparse.Namespace) -> None:
    """Reject a flag given with an action that does not read it."""
    for flag, action in _FLAG_ACTION.items():
        value = getattr(args, flag[2:].replace("-", "_"))
        if action != args.action and value is not None and value is not False:
            raise ValueError(f"{flag} belongs to {_action_name(action)}, not to "
                             f"{_action_name(args.action)}; drop it")


def _action_name(action: str | None) -> str:
    return "meta-training (`velo meta-train --preset P --out DIR`)" if action is None \
        else f"`velo meta-train {action}`"


def _meta_train(args) -> int:
    import os

    if args.run_dir is not None:
        raise ValueError(f"unexpected argument {args.run_dir!r}; to meta-train pass --preset and "
                         f"--out, or use `velo meta-train plot|export RUN_DIR`")
    if args.preset is None or args.out is None:
        raise ValueError("meta-training needs --preset (tiny, small or velo) and --out DIR")
    if args.distributed or os.environ.get("VELO_DISTRIBUTED") == "1":
        from meta_train.devices import initialize_distributed

        initialize_distributed()
    from meta_train import config as config_lib
    from meta_train.compiled import enable_persistent_cache
    from meta_train.loop import meta_train
    from velo import overrides

    config = overrides.apply(config_lib.preset(args.preset), overrides.parse(args.set or []))
    cache_dir = os.path.join(args.out, "xla_cache") if args.compilation_cache is None \
        else args.compilation_cache
    if cache_dir:
        enable_persistent_cache(cache_dir)
    result = meta_train(config, args.out, resume=args.resume, num_devices=args.devices,
                        progress=True)
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


def _describe(args) -> int:
    from meta_train.log import read
    from meta_train.summary import summarize

    if args.run_dir is None:
        raise ValueError("usage: velo meta-train summary RUN_DIR")
    print("\n".join(summarize(read(args.run_dir))))
    return 0


def _plot(args) -> int:
    from meta_train.plot import plot

    if args.run_dir is None:
        raise ValueError("usage: velo meta-train plot RUN_DIR [--out PNG]")
    print(f"wrote {plot(args.run_dir, args.out)}")
    return 0


def _export(args) -> int:
    from meta_train.export import export

    if args.run_dir is None or args.out is None:
        raise ValueError("usage: velo meta-train export RUN_DIR --out NEW_CHECKPOINT_DIR "
                         "[--step latest|best|N]")
    path = export(args.run_dir, args.out, args.step or "latest")
    print(f"wrote learned-optimizer checkpoint {path}; use it with "
          f"`velo train --optimizer velo --checkpoint {path}` or "
          f"velo.optax_lopt(num_steps, checkpoint={path!r})")
    return 0
