"""``velo demo``: the main job that ``make demo`` runs, offline on bundled data."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="run the offline demo (what `make demo` runs)")
    p.add_argument("--out", default="runs/demo", help="output directory")
    p.set_defaults(func=run)


def run(args) -> int:
    from velo.commands import train

    return train.run(argparse.Namespace(
        task="digits_mlp", optimizer="adam", lr=1e-3, checkpoint=None, set=[], steps=2000,
        seed=0, out=args.out,
    ))
