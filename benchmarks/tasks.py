"""Task population benchmark: Adam speed on every held-out task, and one pass over the suite.

Prints markdown tables for BENCHMARKS.md:
1. per held-out task: parameters, estimated FLOPs/step, Adam steps/s (a ``num_steps`` scan timed
   after compilation), the ratio to ``digits_mlp`` measured in the same run, and achieved GFLOP/s;
2. the whole held-out suite (and its quick subset) trained with Adam (lr 1e-3), one seed, each
   task for its default steps through `velo.train.train`: wall time including compilation, and
   the final train loss relative to the task's normaliser;
3. the sampler: draws per second and distinct specs (compiled programs) per 1,000 draws.

Run: .venv/bin/python benchmarks/tasks.py [--steps 200] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

# Run as a script, this file's folder comes first on sys.path and this file would shadow the
# `tasks` package it benchmarks.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import jax  # noqa: E402
import optax  # noqa: E402

import tasks  # noqa: E402
from tasks import cost  # noqa: E402
from tasks.heldout import QUICK  # noqa: E402
from velo.train import train  # noqa: E402


def speed_table(names: list[str], num_steps: int) -> None:
    reference = cost.steps_per_second(tasks.get("digits_mlp"), num_steps)
    print(f"digits_mlp reference: {reference:,.0f} steps/s\n")
    print("| task | params | FLOPs/step | steps/s | vs digits_mlp | GFLOP/s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in names:
        task = tasks.get(name)
        sps = cost.steps_per_second(task, num_steps)
        print(f"| {name} | {task.num_params:,} | {task.flops_per_step:.2g} | {sps:,.0f} | "
              f"{sps / reference:.3f} | {sps * task.flops_per_step / 1e9:.2f} |", flush=True)


def suite_table(names: list[str]) -> None:
    print("\n| task | steps | wall s (incl. compile) | final loss / normaliser | test |")
    print("|---|---:|---:|---:|---|")
    totals = {"heldout": 0.0, "quick": 0.0}
    for name in names:
        task = tasks.get(name)
        start = time.perf_counter()
        result = train(task, optax.adam(1e-3), task.default_steps, seed=0)
        wall = time.perf_counter() - start
        totals["heldout"] += wall
        totals["quick"] += wall if name in QUICK else 0.0
        tail = result.losses[-max(1, task.default_steps // 20):].mean()
        test = ", ".join(f"{k} {v:.3f}" for k, v in result.test.items())
        print(f"| {name} | {task.default_steps} | {wall:.1f} | {tail / task.normalizer:.3f} | "
              f"{test} |", flush=True)
    print(f"\nwhole suite ({len(names)} tasks), Adam, one seed: {totals['heldout']:.0f} s; "
          f"quick subset ({len(QUICK)} tasks): {totals['quick']:.0f} s")


def sampler_table() -> None:
    print("\n| distribution | draws/s | distinct specs in 1,000 draws | median FLOPs/step |")
    print("|---|---:|---:|---:|")
    for name in tasks.DISTRIBUTIONS:
        start = time.perf_counter()
        specs = [tasks.sample(jax.random.key(i), name) for i in range(1000)]
        rate = 1000 / (time.perf_counter() - start)
        flops = sorted(cost.flops_per_step(s) for s in specs)
        print(f"| {name} | {rate:,.0f} | {len(set(specs))} | {flops[500]:.2g} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="Adam steps per timing scan")
    parser.add_argument("--only", nargs="*", default=None, help="held-out task names")
    args = parser.parse_args()
    names = args.only or [t.name for t in tasks.heldout_suite()]
    print(f"jax {jax.__version__}, devices: {jax.device_count()} x {jax.devices()[0].platform}\n")
    speed_table(names, args.steps)
    suite_table(names)
    sampler_table()


if __name__ == "__main__":
    main()
