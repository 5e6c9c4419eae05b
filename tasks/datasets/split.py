"""Train/test splitting shared by the array datasets."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from tasks.datasets.base import Dataset, DatasetInfo


def split_arrays(
    info: DatasetInfo, x: np.ndarray, y: np.ndarray, seed: int, test_fraction: float
) -> Dataset:
    """Shuffle ``(x, y)`` by ``seed``, hold out ``test_fraction`` and move both splits to device."""
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(test_fraction * len(x)))
    test, train = order[:n_test], order[n_test:]
    return Dataset(info, jnp.asarray(x[train]), jnp.asarray(y[train]),
                   jnp.asarray(x[test]), jnp.asarray(y[test]))
