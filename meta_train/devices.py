"""Devices for meta-training: one mesh axis, ``pop``, over which the population is sharded.

The same program runs on one CPU, on 8 simulated CPU devices, on a multi-GPU host and on every host
of a TPU pod slice or SLURM job: after `initialize_distributed`, `jax.devices()` lists the devices
of all hosts, each host evaluates the members on its own devices, and the ES update runs on
replicated data, so every host holds the same ES state.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

AXIS = "pop"


def initialize_distributed() -> None:
    """Join a multi-host run: `jax.distributed.initialize` with its automatic cluster detection.

    TPU pod slices, SLURM and Open MPI are detected by JAX itself; elsewhere set
    ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``. Must run before any
    other JAX call.
    """
    env = {
        "coordinator_address": os.environ.get("JAX_COORDINATOR_ADDRESS"),
        "num_processes": os.environ.get("JAX_NUM_PROCESSES"),
        "process_id": os.environ.get("JAX_PROCESS_ID"),
    }
    kwargs = {k: (v if k == "coordinator_address" else int(v)) for k, v in env.items() if v}
    jax.distributed.initialize(**kwargs)


def make_mesh(num_devices: int | None = None) -> Mesh:
    """A 1-D ``pop`` mesh over the first ``num_devices`` devices (all of them by default)."""
    devices = jax.devices()
    if num_devices is not None:
        if not 1 <= num_devices <= len(devices):
            raise ValueError(f"num_devices must be in [1, {len(devices)}], got {num_devices}")
        devices = devices[:num_devices]
    return Mesh(np.array(devices), (AXIS,))


def check_population(population: int, mesh: Mesh) -> None:
    """The population must split evenly over the devices."""
    if population % mesh.size:
        raise ValueError(
            f"population {population} does not split over {mesh.size} devices; set population "
            f"to a multiple of {mesh.size}"
        )


def replicated(mesh: Mesh) -> NamedSharding:
    """Every device holds the whole array."""
    return NamedSharding(mesh, P())


def sharded(mesh: Mesh) -> NamedSharding:
    """The leading (population) axis is split over the devices."""
    return NamedSharding(mesh, P(AXIS))


def put(tree, sharding: NamedSharding):
    """Place the host values ``tree`` (equal on every process) with ``sharding``.

    Each process fills its own devices from its own copy. `jax.device_put` would first check
    across processes that the copies are equal, a collective per leaf that also fails on NaN
    (NaN != NaN), which evosax states hold before their first update.
    """

    def leaf(x):
        if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            data = leaf(jax.random.key_data(x))
            return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(leaf, tree)


def replicate(tree, mesh: Mesh):
    """Place the host values ``tree`` (equal on every process) on every device of ``mesh``."""
    return put(tree, replicated(mesh))


def is_main_process() -> bool:
    """Only process 0 writes logs and prints."""
    return jax.process_index() == 0


def to_host(x) -> np.ndarray:
    """``x`` as a numpy array on every host, gathering the shards other hosts hold."""
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def shared_keys(key: jax.Array, mesh: Mesh, n: int) -> jax.Array:
    """``[n]`` copies of ``key``, sharded like the population: every member gets the same key."""
    data = jax.random.key_data(key)
    copies = np.broadcast_to(data, (n, *data.shape))
    return jax.random.wrap_key_data(put(copies, sharded(mesh)), impl=jax.random.key_impl(key))
