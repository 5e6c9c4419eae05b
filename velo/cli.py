"""The ``velo`` command line: a thin layer over library functions.

Bad input exits with status 2 and a one-line message naming the value and the valid choices.
Set ``VELO_DEBUG=1`` to see the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# Each entry adds one subcommand; the modules are imported only when the command line is parsed,
# so `velo --help` stays fast.
_SUBCOMMANDS = ("velo.commands.train", "velo.commands.info", "tasks.cli", "velo.commands.demo",
               "velo.evaluation.cli", "meta_train.cli", "velo.commands.stability")
# Subcommands with nested actions, and the action meant when a flag follows the subcommand:
# `velo meta-train --preset tiny` is `velo meta-train run --preset tiny` (the spelling before
# actions).
_DEFAULT_ACTIONS = {"meta-train": "run"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="velo", description="Learned optimizers in JAX: train, meta-train and compare."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _SUBCOMMANDS:
        importlib.import_module(module).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if (len(argv) > 1 and argv[0] in _DEFAULT_ACTIONS and argv[1].startswith("-")
            and argv[1] not in ("-h", "--help")):
        argv.insert(1, _DEFAULT_ACTIONS[argv[0]])
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except ValueError as e:
        if os.environ.get("VELO_DEBUG"):
            raise
        print(f"velo {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
