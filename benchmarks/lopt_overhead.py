"""Learned-optimizer overhead vs optax.adam, measured side by side in one run.

For a ~1M-parameter MLP and a ~10M-parameter transformer (both built here with flax linen):
compile time of the jitted train step, optimizer-update time (`opt.update` plus applying the
updates to the parameters, for a fixed gradient), full train-step time (forward, backward,
update) and optimizer-state bytes per parameter (all tensors, and weight matrices only). Run:

    .venv/bin/python benchmarks/lopt_overhead.py [--repeats 20] [--preset small]
"""

from __future__ import annotations

import argparse
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from velo import lopt


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
    dim: int = 384
    layers: int = 6
    heads: int = 6

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


def transformer_problem(key):
    model = Transformer()
    tokens = jax.random.randint(key, (4, 65), 0, 256)
    params = model.init(key, tokens[:, :-1])["params"]

    def loss_fn(p):
        logits = model.apply({"params": p}, tokens[:, :-1])
        return optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:]).mean()

    return params, loss_fn


def time_call(fn, args, repeats):
    """Median wall time of ``fn(*args)`` (outputs fed back in as the next inputs)."""
    out = fn(*args)
    jax.block_until_ready(out)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn(*out)
        jax.block_until_ready(out)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def measure(opt, params, loss_fn, repeats):
    state = opt.init(params)
    loss, grads = jax.jit(jax.value_and_grad(loss_fn))(params)

    @jax.jit
    def update(grads, state, params):
        # Returning the applied updates (not just the state) keeps XLA from dropping the
        # per-element update computation as dead code; the fixed gradient is fed back.
        updates, state = opt.update(grads, state, params, loss=loss)
        return grads, state, optax.apply_updates(params, updates)

    @jax.jit
    def step(state, params):
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, state = opt.update(grads, state, params, loss=loss)
        return state, optax.apply_updates(params, updates)

    start = time.perf_counter()
    step = step.lower(state, params).compile()
    compile_time = time.perf_counter() - start
    update_time = time_call(update, (grads, state, params), repeats)
    step_time = time_call(step, (state, params), repeats)
    return compile_time, update_time, step_time, state_bytes(state, params)


def state_bytes(state, params):
    """(state bytes per parameter over all tensors, over weight matrices (rank >= 2) only).

    Adam's state leaves have their parameter's shape. The learned optimizer keeps one
    `TensorMoments` per group of equal-shape tensors, with a leading group axis (and a decay
    axis on most fields): the tensors' rank is the rank of the group's second moment minus one.
    """
    leaves = jax.tree.leaves(params)
    state_leaves = jax.tree.leaves(state)
    total = sum(x.nbytes for x in state_leaves)
    if isinstance(getattr(state, "inner", None), lopt.ScaleByLOptState):
        groups = [m for m in state.inner.moments if m.second.ndim - 1 >= 2]
        on_matrices = sum(x.nbytes for m in groups for x in jax.tree.leaves(m))
    else:
        matrices = {x.shape for x in leaves if x.ndim >= 2}
        on_matrices = sum(x.nbytes for x in state_leaves if x.shape in matrices)
    n = sum(x.size for x in leaves)
    n_matrices = sum(x.size for x in leaves if x.ndim >= 2)
    return total / n, on_matrices / n_matrices


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--preset", default="small", choices=sorted(lopt.PRESETS))
    args = parser.parse_args(argv)
    config = lopt.preset(args.preset)
    meta_params = lopt.init_meta_params(jax.random.key(0), config)
    print(
        f"jax {jax.__version__}, {jax.device_count()} {jax.default_backend()} device(s); "
        f"learned optimizer preset {args.preset!r}"
    )
    header = (
        f"{'problem':<12} {'params':>9} {'optimizer':<9} {'compile s':>9} {'update ms':>10} "
        f"{'step ms':>9} "
        f"{'B/param':>8} {'B/param (matrices)':>19}"
    )
    print(header, flush=True)
    for name, build in (("mlp", mlp_problem), ("transformer", transformer_problem)):
        params, loss_fn = build(jax.random.key(1))
        n = sum(x.size for x in jax.tree.leaves(params))
        results = {}
        opts = {
            "adam": optax.with_extra_args_support(optax.adam(1e-3)),
            "velo": lopt.optax_lopt(1000, meta_params=meta_params, config=config),
        }
        for opt_name, opt in opts.items():
            results[opt_name] = measure(opt, params, loss_fn, args.repeats)
            c, u, s, (b_all, b_mat) = results[opt_name]
            print(
                f"{name:<12} {n:>9,} {opt_name:<9} {c:>9.1f} {1e3 * u:>10.2f} {1e3 * s:>9.1f} "
                f"{b_all:>8.2f} {b_mat:>19.2f}",
                flush=True,
            )
        (ca, ua, sa, (ba, ma)), (cv, uv, sv, (bv, mv)) = results["adam"], results["velo"]
        print(
            f"{name:<12} ratio velo/adam: compile {cv / ca:.1f}x, update {uv / ua:.2f}x "
            f"(target <= 3), step "
            f"{sv / sa:.2f}x (target <= 1.5), state {bv / ba:.2f}x, matrices {mv / ma:.2f}x "
            "(target <= 3)",
            flush=True,
        )


if __name__ == "__main__":
    main()
