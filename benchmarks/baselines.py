"""Wall time per step of every registered baseline relative to Adam, measured in one run.

For each task (the digits MLP and the small character transformer ``english_transformer`` from
`tasks`), every optimizer's jitted `velo.train.run_steps` chunk is compiled and warmed up, then
timed in rounds; in each round every optimizer's chunk runs right after a chunk of
``optax.adam(1e-3)`` (unwrapped), and the ratio of the two is taken, so machine-load drift hits
both alike. Reported: the median per-step time and the median ratio over rounds; the registry's
``adam`` row shows the cost of the non-finite guard. For SaLSA variants it also reports the mean
number of trial forward passes per step after step 10 (over the warm-up chunk).

Usage: python benchmarks/baselines.py [--steps 50] [--rounds 5] [--tasks digits_mlp ...]
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time

# Run as a script, this folder comes first on sys.path and benchmarks/tasks.py would shadow the
# `tasks` package.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import jax  # noqa: E402
import optax  # noqa: E402

import tasks  # noqa: E402
from velo import baselines  # noqa: E402
from velo.train import init_state, run_steps  # noqa: E402

REFERENCE = "optax.adam"


def _optimizers() -> dict[str, optax.GradientTransformationExtraArgs]:
    opts = {REFERENCE: optax.with_extra_args_support(optax.adam(1e-3))}
    opts.update({name: baselines.make(name) for name in baselines.names()})
    return opts


def _benchmark_task(task, steps: int, rounds: int) -> list[tuple[str, float, float, float | None]]:
    """Rows ``(optimizer, ms per step, ratio to optax.adam, trial forwards per step or None)``."""
    opts = _optimizers()
    data_key = jax.random.key(1)
    runs, states, trials_per_step = {}, {}, {}
    for name, opt in opts.items():
        run = jax.jit(functools.partial(run_steps, task, opt), static_argnums=2)
        state = init_state(task, opt, jax.random.key(0))
        state, _ = run(data_key, state, 10)
        jax.block_until_ready(state)
        first = _trials(state.opt_state)
        state, _ = run(data_key, state, steps)  # also compiles the timed chunk length
        jax.block_until_ready(state)
        if first is not None:
            trials_per_step[name] = (_trials(state.opt_state) - first) / steps
        runs[name], states[name] = run, state
    def timed(name):
        start = time.perf_counter()
        states[name], _ = runs[name](data_key, states[name], steps)
        jax.block_until_ready(states[name])
        return (time.perf_counter() - start) / steps

    times, ratios = {name: [] for name in opts}, {name: [] for name in opts}
    for _ in range(rounds):
        for name in opts:
            reference = timed(REFERENCE)
            times[name].append(timed(name))
            ratios[name].append(times[name][-1] / reference)
    return [
        (name, 1e3 * statistics.median(times[name]), statistics.median(ratios[name]),
         trials_per_step.get(name))
        for name in opts
    ]


def _trials(opt_state) -> int | None:
    """Trial forwards so far, for SaLSA states (inside the registry's guard), else None."""
    inner = getattr(opt_state, "inner", None)
    return int(inner.trials) if hasattr(inner, "trials") else None


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50, help="steps per timed chunk")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tasks", nargs="*", default=["digits_mlp", "english_transformer"])
    args = parser.parse_args(argv)
    print(f"jax {jax.__version__}, optax {optax.__version__}, backend {jax.default_backend()}, "
          f"{args.steps} steps x {args.rounds} rounds, median per step")
    for task_name in args.tasks:
        task = tasks.get(task_name)
        print(f"\n### {task_name}\n")
        print("| optimizer | ms / step | time vs optax.adam "
              "| trial forwards / step (after step 10) |")
        print("| --- | ---: | ---: | ---: |")
        for name, ms, ratio, trials in _benchmark_task(task, args.steps, args.rounds):
            extra = "" if trials is None else f"{trials:.2f}"
            print(f"| {name} | {ms:.3f} | {ratio:.2f} | {extra} |")


if __name__ == "__main__":
    main()
