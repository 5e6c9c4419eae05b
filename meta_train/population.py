"""Train every population member on one task, sharded over the ``pop`` mesh axis.

Runs advance in chunks of a fixed number of steps (one `lax.scan`, `velo.train.run_steps`), with
the horizon passed to the learned optimizer as a traced ``num_steps``: one compiled program per
task serves every horizon, and truncated ES continues the same states across generations.
Members are vmapped on a device and `shard_map`-ped over devices; every array here has a leading
population axis. Training shares the keys between members (same initial weights, same batches;
antithetic twins differ only in the sign of their perturbation); validation gives each member
(a copy of the mean) its own keys.

References:
  Metz et al., "VeLO: Training Versatile Learned Optimizers by Scaling Up", 2022.
  https://arxiv.org/abs/2211.09760
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from meta_train.compiled import CompileCache
from meta_train.devices import AXIS, replicate, sharded
from meta_train.learner import Learner
from meta_train.stop import never
from tasks import Task
from velo.train import TrainState, init_state, run_steps


def init_members(task: Task, learner: Learner, mesh: Mesh) -> Callable:
    """``fn(population, horizon, init_keys) -> TrainState``: fresh runs of ``horizon`` steps.

    Args of ``fn``: meta-parameters ``[N, ...]``, a scalar int32 horizon, ``[N]`` keys.

    The members are initialised one after another (`jax.lax.map`), not vmapped: a vmapped
    orthogonal initialiser (flax's LSTM recurrent kernels) is a batched QR, whose LAPACK custom
    calls each split their batch over XLA's CPU thread pool and block a worker until it is done;
    with the four gates' QRs running at once on a 2-thread pool every worker waited on the
    others, and the run hung for good at 0 % CPU (seen on an LSTM of 32 units and 8 members).
    It runs once per trajectory, so the loop costs nothing measurable.
    """

    def member(meta_params, horizon, init_key):
        return init_state(task, learner.optimizer(meta_params, horizon), init_key)

    def members(population, horizon, init_keys):
        return jax.lax.map(lambda args: member(args[0], horizon, args[1]),
                           (population, init_keys))

    return _sharded(members, mesh, (P(AXIS), P(), P(AXIS)), P(AXIS))


def unroll_chunk(task: Task, learner: Learner, length: int, mesh: Mesh) -> Callable:
    """``fn(population, states, data_keys, horizon, tail_start) -> (states, [N] loss sums)``.

    Advances each member's run by ``length`` steps and sums its minibatch training loss divided
    by ``task.normalizer`` over the steps numbered ``tail_start`` or later.
    """

    def member(meta_params, state: TrainState, data_key, horizon, tail_start):
        opt = optax.with_extra_args_support(learner.optimizer(meta_params, horizon))
        steps = state.step + jnp.arange(length)
        state, losses = run_steps(task, opt, data_key, state, length)
        return state, jnp.sum(jnp.where(steps >= tail_start, losses, 0.0)) / task.normalizer

    specs = (P(AXIS), P(AXIS), P(AXIS), P(), P())
    return _sharded(jax.vmap(member, in_axes=(0, 0, 0, None, None)), mesh, specs,
                    (P(AXIS), P(AXIS)))


def _sharded(fn: Callable, mesh: Mesh, in_specs, out_specs) -> Callable:
    # Members share replicated inputs (horizon, and keys in training), so parts of their states
    # are device-invariant while others vary; no collectives run inside, so the check is off.
    return jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)


class Runner(NamedTuple):
    """Runs members through the compiled programs of `init_members` and `unroll_chunk`.

    Attributes:
      learner: what the members' meta-parameters parameterise.
      mesh: the ``pop`` mesh.
      cache: compiled programs, one per (program, task) here.
      chunk: steps per compiled call.
      on_chunk: called with every chunk's outputs: `StopFlag.check` in meta-training waits for
        them and raises `Stopped` on a signal; the default does nothing (no wait).
    """

    learner: Learner
    mesh: Mesh
    cache: CompileCache
    chunk: int
    on_chunk: Callable = never

    def init(self, task: Task, pop, horizon: int, init_keys: jax.Array) -> TrainState:
        fn = init_members(task, self.learner, self.mesh)
        return self.cache(("init", task, self.learner, self.mesh), fn, pop, self._scalar(horizon),
                          init_keys, out_shardings=sharded(self.mesh))

    def advance(self, task: Task, pop, states, data_keys, horizon: int, tail_start: int):
        """One chunk more of every member's run: ``(states, [N] normalised loss sums)``."""
        fn = unroll_chunk(task, self.learner, self.chunk, self.mesh)
        # Fixed output shardings: left to XLA, invariant parts of the state may come back
        # replicated, and the next call would need another program.
        out = self.cache(("chunk", task, self.learner, self.chunk, self.mesh), fn, pop, states,
                         data_keys, self._scalar(horizon), self._scalar(tail_start),
                         out_shardings=sharded(self.mesh))
        self.on_chunk(out)
        return out

    def fitness(self, task: Task, pop, init_keys, data_keys, horizon: int, tail: int) -> jax.Array:
        """``[N]`` mean normalised training loss over the last ``tail`` of ``horizon`` steps."""
        states = self.init(task, pop, horizon, init_keys)
        total = 0.0
        for _ in range(horizon // self.chunk):
            states, sums = self.advance(task, pop, states, data_keys, horizon, horizon - tail)
            total = total + sums
        return total / tail

    def _scalar(self, value: int) -> jax.Array:
        return replicate(np.int32(value), self.mesh)
