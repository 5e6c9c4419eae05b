"""Learned-optimizer overhead vs optax.adam, measured side by side in one run.

Problems (built here with flax linen): a 1.07M-parameter MLP at batch 128, a ~3.3M-parameter
transformer LM at 512 tokens a step (batch 8 x 64), and a 38-tensor transformer (compile time
only). Optimizers: ``optax.adam(1e-3)``, the default checkpoint, ``velo_small`` (rule v1, whose
MLP reads every input), the untrained ``init:v2`` (rule v2), and ``init:v2`` with
``orthogonalize=True`` (Newton-Schulz).

For each, the jitted train step (forward, backward, update) and the update alone
(`opt.update` plus `optax.apply_updates` for a fixed gradient) are compiled; compile time is
reported as wall and process CPU seconds (CPU time is steadier on a loaded machine). Run times
are taken in rounds, every optimizer once per round, and each ratio is the median over rounds
of velo/adam within the round, so slow drifts in machine load cancel; in square brackets, the
quartiles of those per-round ratios (how much one run's ratio can be trusted); in round
brackets, the ratio of median process CPU times (the work done, less sensitive to other jobs). Run:

    nice -n 10 .venv/bin/python benchmarks/lopt_overhead.py [--rounds 15] [--only mlp ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from velo import lopt

TARGETS = {"step": 1.5, "update": 3.0, "compile": 3.0}


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        for width in (1024, 256):
            x = nn.relu(nn.Dense(width)(x))
        return nn.Dense(10)(x)


class Block(nn.Module):
    dim: int
    heads: int

    @nn.compact
    def __call__(self, x):
        h = nn.LayerNorm()(x)
        mask = nn.make_causal_mask(jnp.ones(x.shape[:2]))
        x = x + nn.MultiHeadDotProductAttention(self.heads)(h, h, mask=mask)
        h = nn.LayerNorm()(x)
        return x + nn.Dense(self.dim)(nn.gelu(nn.Dense(4 * self.dim)(h)))


class Transformer(nn.Module):
    vocab: int = 256
    dim: int = 256
    layers: int = 4
    heads: int = 4

    @nn.compact
    def __call__(self, tokens):
        x = nn.Embed(self.vocab, self.dim)(tokens)
        x = x + self.param("pos", nn.initializers.normal(0.02), (tokens.shape[1], self.dim))
        for _ in range(self.layers):
            x = Block(self.dim, self.heads)(x)
        return nn.Dense(self.vocab)(nn.LayerNorm()(x))


def mlp_problem(key):
    model = MLP()
    x = jax.random.normal(key, (128, 784))
    y = jax.random.randint(key, (128,), 0, 10)
    params = model.init(key, x)["params"]

    def loss_fn(p):
        logits = model.apply({"params": p}, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    return params, loss_fn


def lm_problem(model, batch, key):
    tokens = jax.random.randint(key, (batch, 65), 0, model.vocab)
    params = model.init(key, tokens[:, :-1])["params"]

    def loss_fn(p):
        logits = model.apply({"params": p}, tokens[:, :-1])
        return optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:]).mean()

    return params, loss_fn


# name -> (description, build, whether to time it or only compile it)
PROBLEMS = {
    "mlp": ("MLP 784-1024-256-10, batch 128", mlp_problem, True),
    "transformer": (
        "transformer LM 4 x d256, 8 x 64 tokens",
        lambda key: lm_problem(Transformer(), 8, key),
        True,
    ),
    "38-tensor": (
        "transformer 2 x d48 (38 tensors, 11 shapes)",
        lambda key: lm_problem(Transformer(dim=48, layers=2, heads=3), 4, key),
        False,
    ),
}


def optimizers(num_steps=1000):
    v2 = lopt.preset("v2")
    orth = dataclasses.replace(v2, orthogonalize=True)
    meta_params, default = lopt.checkpoint.resolve(None, None, None)
    other = dataclasses.replace(default, stats_sample=_other_sample(default.stats_sample))
    return {
        "adam": optax.with_extra_args_support(optax.adam(1e-3)),
        f"{lopt.DEFAULT_CHECKPOINT} (default)": lopt.optax_lopt(num_steps),
        f"{lopt.DEFAULT_CHECKPOINT}, {other.stats_sample} sample": lopt.optax_lopt(
            num_steps, meta_params=meta_params, config=other
        ),
        "velo_small (v1, every input)": lopt.optax_lopt(num_steps, checkpoint="velo_small"),
        "init:v2": lopt.optax_lopt(num_steps, checkpoint="init:v2"),
        "init:v2 orth": lopt.optax_lopt(
            num_steps, meta_params=lopt.init_meta_params(jax.random.key(0), orth), config=orth
        ),
    }


def _other_sample(sample: str) -> str:
    """The `Config.stats_sample` that is not ``sample``."""
    return next(s for s in lopt.config.STATS_SAMPLES if s != sample)


def compile_timed(fn, *args):
    """``(compiled, wall s, process CPU s)`` of ``jax.jit(fn).lower(*args).compile()``."""
    lowered = jax.jit(fn).lower(*args)
    wall, cpu = time.perf_counter(), time.process_time()
    compiled = lowered.compile()
    return compiled, time.perf_counter() - wall, time.process_time() - cpu


def build(opt, params, loss_fn):
    """Compiled ``step(state, params)`` and ``update(grads, state, params)`` and their inputs."""
    state = opt.init(params)
    loss, grads = jax.jit(jax.value_and_grad(loss_fn))(params)

    def update(grads, state, params):
        # Returning the applied updates (not just the state) keeps XLA from dropping the
        # per-element update computation as dead code; the fixed gradient is fed back.
        updates, state = opt.update(grads, state, params, loss=loss)
        return grads, state, optax.apply_updates(params, updates)

    def step(state, params):
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, state = opt.update(grads, state, params, loss=loss)
        return state, optax.apply_updates(params, updates)

    step, wall, cpu = compile_timed(step, state, params)
    return {"step": step, "update": update, "compile": (wall, cpu), "state": state,
            "grads": grads, "params": params}  # fmt: skip


def timed(fn, args):
    """``(wall s, process CPU s)`` of one call of ``fn(*args)``."""
    wall, cpu = time.perf_counter(), time.process_time()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - wall, time.process_time() - cpu


def measure_times(built, rounds):
    """Per optimizer, per-round step and update times (every optimizer once per round).

    Every call starts from the same state: fed its own outputs, a step would keep training on
    the one fixed batch, and once the model has memorised it the underflowing softmax fills the
    backward pass with denormal floats, which made the timed work drift with the trajectory
    (Adam's transformer step slowed to 2x a learned optimizer's step over a run).
    """
    inputs = {}
    for name, b in built.items():
        upd, _, _ = compile_timed(b["update"], b["grads"], b["state"], b["params"])
        b["update"] = upd
        inputs[name] = {"step": (b["state"], b["params"]),
                        "update": (b["grads"], b["state"], b["params"])}  # fmt: skip
        for kind in ("step", "update"):  # warm up
            timed(b[kind], inputs[name][kind])
    times = {name: {"step": [], "update": []} for name in built}
    for _ in range(rounds):
        for kind in ("step", "update"):
            for name, b in built.items():
                times[name][kind].append(timed(b[kind], inputs[name][kind]))
    return times


def state_bytes(state, params):
    """State bytes per parameter."""
    n = sum(x.size for x in jax.tree.leaves(params))
    return sum(x.nbytes for x in jax.tree.leaves(state)) / n


def run_problem(key, rounds, opts):
    description, make, timed_run = PROBLEMS[key]
    params, loss_fn = make(jax.random.key(1))
    n = sum(x.size for x in jax.tree.leaves(params))
    built = {name: build(opt, params, loss_fn) for name, opt in opts.items()}
    times = measure_times(built, rounds) if timed_run else None
    rows = []
    for name, b in built.items():
        wall, cpu = b["compile"]
        row = {"problem": description, "params": n, "tensors": len(jax.tree.leaves(params)),
               "optimizer": name, "compile_wall": wall, "compile_cpu": cpu,
               "compile_ratio": wall / built["adam"]["compile"][0],
               "compile_cpu_ratio": cpu / built["adam"]["compile"][1],
               "state_bytes": state_bytes(b["state"], params)}  # fmt: skip
        if times is not None:
            for kind in ("step", "update"):
                mine, adam = np.asarray(times[name][kind]), np.asarray(times["adam"][kind])
                row[f"{kind}_ms"] = 1e3 * float(np.median(mine[:, 0]))
                ratios = mine[:, 0] / adam[:, 0]
                row[f"{kind}_ratio"] = float(np.median(ratios))
                row[f"{kind}_quartiles"] = tuple(float(q) for q in np.percentile(ratios, [25, 75]))
                row[f"{kind}_cpu_ratio"] = float(np.median(mine[:, 1]) / np.median(adam[:, 1]))
        rows.append(row)
    return rows


def verdict(value, target):
    return f"{value:.2f}x" + ("" if value <= target else " (missed)")


def cpu_verdict(row, kind):
    low, high = row[kind + "_quartiles"]
    return (
        f"{verdict(row[kind + '_ratio'], TARGETS[kind])} [{low:.2f}, {high:.2f}] "
        f"({row[kind + '_cpu_ratio']:.2f}x)"
    )


def print_table(rows):
    print(
        "| problem | params (tensors) | optimizer | step ms | step / adam (CPU) | update ms "
        "| update / adam (CPU) | compile s (CPU s) | compile / adam (CPU) | state B/param |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        timed_row = "step_ms" in r
        is_adam = r["optimizer"] == "adam"
        cells = [
            r["problem"],
            f"{r['params']:,} ({r['tensors']})",
            r["optimizer"],
            f"{r['step_ms']:.1f}" if timed_row else "",
            "" if not timed_row or is_adam else cpu_verdict(r, "step"),
            f"{r['update_ms']:.2f}" if timed_row else "",
            "" if not timed_row or is_adam else cpu_verdict(r, "update"),
            f"{r['compile_wall']:.1f} ({r['compile_cpu']:.1f})",
            ""
            if is_adam
            else f"{verdict(r['compile_ratio'], TARGETS['compile'])} "
            f"({r['compile_cpu_ratio']:.1f}x)",
            f"{r['state_bytes']:.2f}",
        ]
        print("| " + " | ".join(cells) + " |", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--only", nargs="+", choices=sorted(PROBLEMS), default=list(PROBLEMS))
    opts = optimizers()
    parser.add_argument("--optimizers", nargs="+", default=None,
                        help="a subset of (adam is always included): "
                        + ", ".join(repr(name) for name in opts))  # fmt: skip
    args = parser.parse_args(argv)
    if args.optimizers:
        unknown = set(args.optimizers) - set(opts)
        if unknown:
            parser.error(f"unknown optimizers {sorted(unknown)}; choose from {sorted(opts)}")
        opts = {k: v for k, v in opts.items() if k == "adam" or k in args.optimizers}
    print(
        f"jax {jax.__version__}, {jax.device_count()} {jax.default_backend()} device(s), "
        f"{args.rounds} rounds; ratios are medians of per-round ratios vs adam [their quartiles]"
    )
    start = time.perf_counter()
    for key in args.only:
        print_table(run_problem(key, args.rounds, opts))
        print(f"[{key} done at {time.perf_counter() - start:.0f} s]", flush=True)


if __name__ == "__main__":
    main()
