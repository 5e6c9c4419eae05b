"""MNIST-1D (Greydanus 2020): 40-sample 1-D signals of 10 digit templates, generated locally.

The `mnist1d` package's generator is used, never its download. It seeds NumPy's and Python's
global generators, so their states are saved and restored around it: loading the data leaves no
trace on the rest of the process.
"""

from __future__ import annotations

import random

import jax.numpy as jnp
import numpy as np

from tasks.datasets.base import Dataset, DatasetInfo

INFO = DatasetInfo("signal", (40, 1), 10)


def load_mnist1d(seed: int = 0, num_samples: int = 5000) -> Dataset:
    """``[n, 40, 1]`` float32 signals, 80/20 train/test, generated from ``seed``."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = num_samples
    args.seed = seed
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)

    def signals(x):
        return jnp.asarray(np.asarray(x, np.float32)[..., None])

    def labels(y):
        return jnp.asarray(np.asarray(y, np.int32))

    return Dataset(
        INFO, signals(data["x"]), labels(data["y"]), signals(data["x_test"]), labels(data["y_test"])
    )
