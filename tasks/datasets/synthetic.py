"""Synthetic supervised data drawn from a seed: teacher-student regression and logistic data."""

from __future__ import annotations

import numpy as np

from tasks.datasets.base import Dataset, DatasetInfo
from tasks.datasets.split import split_arrays

NUM_EXAMPLES = 5120  # 4,096 train + 1,024 test


def load_teacher(seed: int = 0, dim: int = 16, hidden: int = 32, outputs: int = 4) -> Dataset:
    """Regression onto a random one-hidden-layer tanh network, plus 0.1 Gaussian noise.

    Inputs are standard normal ``[n, dim]``; targets ``[n, outputs]`` float32.
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((NUM_EXAMPLES, dim)).astype(np.float32)
    w1 = rng.standard_normal((dim, hidden)) / np.sqrt(dim)
    w2 = rng.standard_normal((hidden, outputs)) / np.sqrt(hidden)
    y = np.tanh(x @ w1) @ w2 + 0.1 * rng.standard_normal((NUM_EXAMPLES, outputs))
    info = DatasetInfo("vector", (dim,), outputs, target="values")
    return split_arrays(info, x, y.astype(np.float32), seed, 0.2)


def load_logistic(seed: int = 0, dim: int = 32, classes: int = 4) -> Dataset:
    """Labels sampled from a softmax over a random linear map of anisotropic Gaussian inputs.

    Feature scales span two decades, so the problem is ill-conditioned; sampling (rather than
    taking the argmax) leaves a non-zero Bayes error, as real labels have.
    """
    rng = np.random.default_rng(seed)
    scales = np.logspace(-1, 1, dim)
    x = (rng.standard_normal((NUM_EXAMPLES, dim)) * scales).astype(np.float32)
    w = rng.standard_normal((dim, classes)) / (np.sqrt(dim) * scales[:, None])
    logits = 3.0 * x @ w
    gumbel = -np.log(-np.log(rng.uniform(size=logits.shape)))
    y = np.argmax(logits + gumbel, axis=1).astype(np.int32)
    return split_arrays(DatasetInfo("vector", (dim,), classes), x, y, seed, 0.2)
