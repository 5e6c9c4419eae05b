"""Meta-training throughput: inner model-steps/s of one generation's population training.

Measures, side by side in one process, the population trained with the learned optimizer and the
same population trained with `optax.adam` (one learning rate per member) in the same sharded,
vmapped `lax.scan` programs; then, side by side in one invocation, the learned optimizer's
throughput in three subprocess set-ups: one process with 1 CPU device, one process with 2 forced
host devices (``--xla_force_host_platform_device_count=2``), and two processes of 1 device each
joined by `jax.distributed` on a localhost coordinator (gloo collectives), which is how
``velo meta-train --distributed`` runs. The ratios to the 1-device run are the speed-ups.

    .venv/bin/python benchmarks/meta_train.py [--task digits_mlp] [--population 16]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

# Run as a script, this folder leads sys.path, and its benchmarks/tasks.py would shadow the
# `tasks` package.
sys.path = [p for p in sys.path
            if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]


def measure(task_name: str, population: int, horizon: int, chunk: int, repeats: int,
            learners: list[str]) -> dict:
    """Model-steps/s of `Runner.fitness` (init + horizon/chunk chunks) per learner, all devices."""
    import jax
    import numpy as np

    import tasks
    from meta_train import devices
    from meta_train.compiled import CompileCache
    from meta_train.learner import adam_learner, lopt_learner
    from meta_train.population import Runner

    task = tasks.get(task_name)
    mesh = devices.make_mesh()
    keys = devices.shared_keys(jax.random.key(1), mesh, population)
    out = {"devices": mesh.size}
    for name in learners:
        learner = adam_learner(1e-3) if name == "adam" else lopt_learner(name)
        cache = CompileCache()
        runner = Runner(learner, mesh, cache, chunk)
        mean = learner.init(jax.random.key(0))
        pop = devices.put(
            jax.tree.map(lambda x: x + 0.01 * np.arange(population).reshape(
                (population,) + (1,) * x.ndim), mean), devices.sharded(mesh))
        runner.fitness(task, pop, keys, keys, horizon, horizon).block_until_ready()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            runner.fitness(task, pop, keys, keys, horizon, horizon).block_until_ready()
            times.append(time.perf_counter() - start)
        out[name] = {"model_steps_per_s": population * horizon / float(np.median(times)),
                     "compile_s": cache.seconds}
    return out


def _child_argv(args) -> list[str]:
    return [sys.executable, __file__, "--child", "--task", args.task, "--population",
            str(args.population), "--horizon", str(args.horizon), "--chunk", str(args.chunk),
            "--repeats", str(args.repeats), "--lopt", args.lopt]


def _setups(args) -> dict:
    """Throughput on 1 device, on 2 devices of one process, and on 2 processes of 1 device."""
    results = {}
    for name, devices, processes in (("1 device", 1, 1), ("2 devices", 2, 1),
                                     ("2 processes", 1, 2)):
        env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
                   JAX_PLATFORMS="cpu")
        if processes > 1:
            env.update(JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{_free_port()}",
                       JAX_NUM_PROCESSES=str(processes))
        procs = [subprocess.Popen(_child_argv(args), env=dict(env, JAX_PROCESS_ID=str(i)),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for i in range(processes)]
        outputs = [p.communicate() for p in procs]
        for p, (_, err) in zip(procs, outputs, strict=True):
            if p.returncode:
                raise RuntimeError(f"{name} child failed:\n{err[-2000:]}")
        results[name] = json.loads(outputs[0][0].strip().splitlines()[-1])  # process 0
    return results


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="digits_mlp")
    p.add_argument("--population", type=int, default=16)
    p.add_argument("--horizon", type=int, default=100)
    p.add_argument("--chunk", type=int, default=25)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--lopt", default="tiny", help="velo.lopt preset")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        if os.environ.get("JAX_NUM_PROCESSES"):
            from meta_train.devices import initialize_distributed

            initialize_distributed()
        print(json.dumps(measure(args.task, args.population, args.horizon, args.chunk,
                                 args.repeats, [args.lopt])))
        return
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    side = measure(args.task, args.population, args.horizon, args.chunk, args.repeats,
                   [args.lopt, "adam"])
    lopt_rate, adam_rate = side[args.lopt]["model_steps_per_s"], side["adam"]["model_steps_per_s"]
    print(f"task {args.task}, population {args.population}, horizon {args.horizon} "
          f"(chunks of {args.chunk}), median of {args.repeats}, {side['devices']} device(s)")
    print(f"  learned optimizer ({args.lopt}): {lopt_rate:9.0f} model-steps/s "
          f"(compile {side[args.lopt]['compile_s']:.1f} s)")
    print(f"  optax.adam          : {adam_rate:9.0f} model-steps/s "
          f"(compile {side['adam']['compile_s']:.1f} s)")
    print(f"  ratio learned/adam  : {lopt_rate / adam_rate:.2f}x (target >= 0.4x)")
    setups = _setups(args)
    one = setups["1 device"][args.lopt]["model_steps_per_s"]
    for name, result in setups.items():
        rate = result[args.lopt]["model_steps_per_s"]
        print(f"  learned optimizer, {name:11s}: {rate:9.0f} model-steps/s -> speed-up "
              f"{rate / one:.2f}x over 1 device ({result['devices']} device(s) in the mesh)")


if __name__ == "__main__":
    main()
