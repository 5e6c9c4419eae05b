"""scikit-learn's bundled 8x8 handwritten digits: 1,797 images, 10 classes, no download."""

from __future__ import annotations

import numpy as np

from tasks.datasets.base import Dataset, DatasetInfo
from tasks.datasets.split import split_arrays

TEST_FRACTION = 0.2


def load_digits(seed: int = 0, size: int = 8) -> Dataset:
    """Digits as ``[n, size, size, 1]`` float32 in [0, 1]; ``size`` 4 averages 2x2 blocks.

    The train/test split (`TEST_FRACTION` held out) is a permutation drawn from ``seed``.
    """
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    x = (bunch.images / 16.0).astype(np.float32)
    if size == 4:
        x = x.reshape(-1, 4, 2, 4, 2).mean(axis=(2, 4))
    elif size != 8:
        raise ValueError(f"digits come at size 8 or 4, got {size}")
    info = DatasetInfo("image", (size, size, 1), 10)
    return split_arrays(info, x[..., None], bunch.target.astype(np.int32), seed, TEST_FRACTION)
