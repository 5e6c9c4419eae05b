"""scikit-learn's bundled 8x8 handwritten digits: 1,797 images, 10 classes, no download."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class ClassificationData(NamedTuple):
    """A labelled dataset held on device.

    Attributes:
      x_train: ``[n_train, ...]`` float32 inputs.
      y_train: ``[n_train]`` int32 labels.
      x_test: ``[n_test, ...]`` float32 inputs.
      y_test: ``[n_test]`` int32 labels.
    """

    x_train: jax.Array
    y_train: jax.Array
    x_test: jax.Array
    y_test: jax.Array


def load_digits(seed: int = 0, test_fraction: float = 0.2) -> ClassificationData:
    """Digits as ``[n, 64]`` float32 in [0, 1], split into train and test by ``seed``."""
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int32)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(test_fraction * len(x)))
    test, train = order[:n_test], order[n_test:]
    return ClassificationData(
        jnp.asarray(x[train]), jnp.asarray(y[train]), jnp.asarray(x[test]), jnp.asarray(y[test])
    )
