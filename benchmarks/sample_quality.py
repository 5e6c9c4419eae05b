"""Does the statistics sample (`Config.stats_sample`) change what a checkpoint does?

The two samples differ only on tensors of more than `sampling.STATS_SAMPLE` elements, and no
held-out task has one, so this trains tasks that do: wide MLPs on digits and MNIST-1D and a
transformer LM. Each task runs with the checkpoint as saved and with the other sample, from the
same seeds (same initial weights and minibatches), and the table gives, per task, the mean
training loss over the last tenth of the run and the test loss, with the per-seed ratios
(other sample / saved).

    .venv/bin/python benchmarks/sample_quality.py [--checkpoint velo_small_lean] [--seeds 3]
        [--sample strided]
"""

from __future__ import annotations

import argparse
import os
import sys

# Run as a script, this folder leads sys.path, and its benchmarks/tasks.py would shadow the
# `tasks` package.
sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import dataclasses  # noqa: E402
import math  # noqa: E402

import numpy as np  # noqa: E402

from tasks import registry  # noqa: E402
from tasks.spec import TaskSpec  # noqa: E402
from velo import lopt  # noqa: E402
from velo.train import train  # noqa: E402

# name -> (spec, steps); every one has tensors above `sampling.STATS_SAMPLE` elements.
TASKS = {
    "digits_mlp_1024x2": (
        TaskSpec("mlp", "digits8", {"hidden": [1024, 1024], "activation": "gelu"}, 128), 1000
    ),
    "mnist1d_mlp_1024x512": (
        TaskSpec("mlp", "mnist1d", {"hidden": [1024, 512], "activation": "relu"}, 128), 1000
    ),
    "english_transformer_d128": (
        TaskSpec("transformer", "english", {"layers": 2, "width": 128, "heads": 4, "seq": 64}, 16),
        500,
    ),
}


def run(task, steps, meta_params, config, sample, seed):
    """``(final training loss, test loss)`` of one run of ``config`` with ``sample``."""
    config = dataclasses.replace(config, stats_sample=sample)
    opt = lopt.optax_lopt(steps, meta_params=meta_params, config=config)
    result = train(task, opt, steps, seed)
    tail = result.losses[-max(1, steps // 10) :]
    return float(np.mean(tail)), result.test.get("loss", math.nan)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=lopt.DEFAULT_CHECKPOINT)
    parser.add_argument("--sample", default=None, choices=lopt.config.STATS_SAMPLES,
                        help="the sample to compare with (default: the one the checkpoint does "
                        "not use)")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    meta_params, config = lopt.checkpoint.resolve(args.checkpoint, None, None)
    saved = config.stats_sample
    if args.sample is None:
        args.sample = next(s for s in lopt.config.STATS_SAMPLES if s != saved)
    print(f"checkpoint {args.checkpoint} (saved sample: {saved}) vs sample {args.sample}\n")
    print("| task | train loss, saved | train loss, other | ratio per seed | test loss, saved "
          "| test loss, other |")
    print("|---|---:|---:|---|---:|---:|")
    for name, (spec, steps) in TASKS.items():
        task = registry.build(spec)
        rows = [
            [run(task, steps, meta_params, config, sample, seed) for seed in range(args.seeds)]
            for sample in (saved, args.sample)
        ]
        (base_train, base_test), (other_train, other_test) = (np.array(r).T for r in rows)
        ratios = ", ".join(f"{r:.3f}" for r in other_train / base_train)
        print(f"| {name} | {base_train.mean():.4f} | {other_train.mean():.4f} | {ratios} "
              f"| {base_test.mean():.4f} | {other_test.mean():.4f} |", flush=True)


if __name__ == "__main__":
    main()
