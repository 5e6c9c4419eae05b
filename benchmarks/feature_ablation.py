"""Which inputs of the per-parameter MLP does a trained learned optimizer use?

Each variant is the checkpoint with the first-layer weights (``w1`` rows, in every bank member)
of some element features set to zero, so its MLP ignores them; everything else, the LSTM
included, is unchanged. All variants and seeds train each task side by side as one vmapped
population (`meta_train.population.Runner`), with common random numbers: seed ``s`` gives every
variant the same initial weights and minibatches, so the differences between variants are the
ablation's alone. The score of a run is its mean normalised training loss over the last fifth of
the task's budget (meta-training's fitness); a variant's ratio on a task is its mean score over
seeds divided by the unablated checkpoint's.

    .venv/bin/python benchmarks/feature_ablation.py --out runs/ablation \
        [--checkpoint velo_small] [--seeds 2] [--tasks digits4_mlp,teacher_mlp] \
        [--variants single|groups|all|NAME+NAME,...]

``single`` drops each per-element feature alone; ``groups`` drops families of them (and the 12
row and column factor features, free per element); ``all`` runs both; an explicit list gives
comma-separated variants whose features are joined by ``+``. Results go to ``OUT/ablation.json``
(resumable: finished tasks are kept) and a table is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

# Run as a script, this folder leads sys.path, and its benchmarks/tasks.py would shadow the
# `tasks` package.
sys.path = [
    p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))
]

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

# Held-out tasks the 2-core machine trains 40 runs of in minutes; the LSTM, GRU, transformers and
# digits_vit take ~85 % of the suite's training time (BENCHMARKS.md, "Evaluation cost").
CHEAP_TASKS = (
    "digits_mlp_wide", "digits_mlp_deep", "digits_mlp_scaled", "digits4_mlp", "mnist1d_mlp",
    "teacher_mlp", "logistic_regression", "digits_cnn", "digits4_cnn", "mnist1d_cnn",
    "mnist1d_cnn_noisy", "digits_autoencoder", "mnist1d_autoencoder", "english_rnn",
    "mnist1d_vit", "quadratic_ill",
)  # fmt: skip
GROUPS = {
    "g_f*": ("g_f1", "g_f2", "g_f3"),
    "m*_f*": ("m1_f1", "m2_f2", "m3_f3"),
    "m*": ("m1", "m2", "m3"),
    "m*_v": ("m2_v", "m3_v"),
    "g*": ("g", "g_clipped", "g_v"),
    "p+v+rsqrt_v": ("p", "v", "rsqrt_v"),
    "factors": (
        "row1",
        "row2",
        "row3",
        "rsqrt_row1",
        "rsqrt_row2",
        "rsqrt_row3",
        "col1",
        "col2",
        "col3",
        "rsqrt_col1",
        "rsqrt_col2",
        "rsqrt_col3",
    ),
}
CHUNK = 50
TAIL = 0.2  # the fraction of the budget whose training loss scores a run


def variants(spec: str) -> dict[str, tuple[str, ...]]:
    """Variant name -> the element features it drops; always led by ``"none"``."""
    from velo.lopt.features import PER_ELEMENT_FEATURES, element_index

    single = {name: (name,) for name in PER_ELEMENT_FEATURES}
    if spec in ("single", "groups", "all"):
        chosen = {"single": single, "groups": GROUPS, "all": single | GROUPS}[spec]
    else:
        chosen = {v: tuple(v.split("+")) for v in spec.split(",")}
    for dropped in chosen.values():
        for name in dropped:
            element_index(name)  # raises, naming the known features, on a typo
    return {"none": (), **chosen}


def task_scores(runner, task, population, seeds: int) -> np.ndarray:
    """``[variants, seeds]`` scores of one task; member ``v * seeds + s`` is variant v, seed s."""
    n = jax.tree.leaves(population)[0].shape[0]
    keys = jax.random.split(jax.random.key(0), (seeds, 2))
    keys = jnp.tile(keys, (n // seeds, 1))  # common random numbers across variants
    horizon = task.default_steps
    tail = max(1, round(TAIL * horizon))
    scores = runner.fitness(task, population, keys[:, 0], keys[:, 1], horizon, tail)
    return np.asarray(scores).reshape(-1, seeds)


def summarise(results: dict, names: list[str]) -> list[dict]:
    """Per variant: geometric mean ratio to "none" over tasks, its worst task and the number
    of tasks more than 5 % worse."""
    rows = []
    for name in names:
        ratios = {}
        for task, per_variant in results.items():
            base, mine = np.mean(per_variant["none"]), np.mean(per_variant[name])
            ratios[task] = float(mine / base) if np.isfinite(mine) else float("inf")
        values = np.array(list(ratios.values()))
        worst = max(ratios, key=ratios.get)
        rows.append(
            {
                "variant": name,
                "geomean_ratio": float(np.exp(np.mean(np.log(values)))),
                "worse_5pct": int(np.sum(values > 1.05)),
                "better_5pct": int(np.sum(values < 1 / 1.05)),
                "worst_task": worst,
                "worst_ratio": ratios[worst],
                "tasks": len(values),
            }
        )
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--checkpoint", default="velo_small")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--tasks", default=",".join(CHEAP_TASKS))
    parser.add_argument("--variants", default="single")
    args = parser.parse_args(argv)

    import tasks
    from meta_train.compiled import CompileCache
    from meta_train.devices import make_mesh, put, sharded
    from meta_train.learner import Learner
    from meta_train.population import Runner
    from velo.lopt import checkpoint as ckpt
    from velo.lopt import optax_lopt
    from velo.lopt.param_mlp import without_inputs

    meta_params, config = ckpt.resolve(args.checkpoint, None, None)
    chosen = variants(args.variants)
    names = list(chosen)
    members = [without_inputs(meta_params, chosen[n]) for n in names for _ in range(args.seeds)]
    population = jax.tree.map(lambda *xs: jnp.stack(xs), *members)
    learner = Learner(
        f"ablation:{args.checkpoint}",
        lambda key: meta_params,
        lambda mp, num_steps: optax_lopt(num_steps, meta_params=mp, config=config),
        config,
    )
    mesh = make_mesh(1)
    runner = Runner(learner, mesh, CompileCache(), CHUNK)
    population = put(population, sharded(mesh))

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "ablation.json")
    saved = json.load(open(path)) if os.path.exists(path) else {}
    identity = {
        "checkpoint": args.checkpoint,
        "seeds": args.seeds,
        "variants": {k: list(v) for k, v in chosen.items()},
    }
    if saved and {k: saved[k] for k in identity} != identity:
        raise SystemExit(
            f"{path} holds another ablation (checkpoint, seeds or variants); pass a new --out"
        )
    results = saved.get("results", {})
    for name in args.tasks.split(","):
        if name in results:
            continue
        task = tasks.get(name)
        scores = task_scores(runner, task, population, args.seeds)
        results[name] = {v: scores[i].tolist() for i, v in enumerate(names)}
        record = {**identity, "results": results}
        with open(path + ".tmp", "w") as f:
            json.dump(record, f, indent=1)
        os.replace(path + ".tmp", path)
        print(f"{name}: done ({runner.cache.seconds:.0f} s compiling so far)", flush=True)

    print(
        "| variant | dropped | geomean loss ratio | tasks > 5% worse | tasks > 5% better "
        "| worst task (ratio) |"
    )
    print("|---|---|---:|---:|---:|---|")
    for row in summarise(results, names):
        print(
            f"| {row['variant']} | {'+'.join(chosen[row['variant']]) or '-'} "
            f"| {row['geomean_ratio']:.3f} | {row['worse_5pct']} of {row['tasks']} "
            f"| {row['better_5pct']} | {row['worst_task']} ({row['worst_ratio']:.2f}) |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
