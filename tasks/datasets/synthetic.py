"""Synthetic supervised data drawn from a seed: teacher-student regression and logistic data."""

from __future__ import annotations

import numpy as np

from tasks.datasets.base import Dataset, DatasetInfo
from tasks.datasets.split import split_arrays

NUM_EXAMPLES = 5120  # 4,096 train + 1,024 test
TEACHER = DatasetInfo("vector", (16,), 4, target="values")
TEACHER_HIDDEN = 32  # width of the teacher network's tanh layer
LOGISTIC = DatasetInfo("vector", (32,), 4)


def load_teacher(seed: int = 0) -> Dataset:
    """Regression onto a random one-hidden-layer tanh network, plus 0.1 Gaussian noise.

    Inputs are standard normal ``[n, 16]``; targets ``[n, 4]`` float32 (`TEACHER`).
    """
    (dim,), outputs, hidden = TEACHER.input_shape, TEACHER.num_outputs, TEACHER_HIDDEN
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((NUM_EXAMPLES, dim)).astype(np.float32)
    w1 = rng.standard_normal((dim, hidden)) / np.sqrt(dim)
    w2 = rng.standard_normal((hidden, outputs)) / np.sqrt(hidden)
    y = np.tanh(x @ w1) @ w2 + 0.1 * rng.standard_normal((NUM_EXAMPLES, outputs))
    return split_arrays(TEACHER, x, y.astype(np.float32), seed, 0.2)


def load_logistic(seed: int = 0) -> Dataset:
    """Labels sampled from a softmax over a random linear map of anisotropic Gaussian inputs.

    Inputs ``[n, 32]`` float32, 4 classes (`LOGISTIC`).

    Feature scales span two decades, so the problem is ill-conditioned; sampling (rather than
    taking the argmax) leaves a non-zero Bayes error, as real labels have.
    """
    (dim,), classes = LOGISTIC.input_shape, LOGISTIC.num_outputs
    rng = np.random.default_rng(seed)
    scales = np.logspace(-1, 1, dim)
    x = (rng.standard_normal((NUM_EXAMPLES, dim)) * scales).astype(np.float32)
    w = rng.standard_normal((dim, classes)) / (np.sqrt(dim) * scales[:, None])
    logits = 3.0 * x @ w
    gumbel = -np.log(-np.log(rng.uniform(size=logits.shape)))
    y = np.argmax(logits + gumbel, axis=1).astype(np.int32)
    return split_arrays(LOGISTIC, x, y, seed, 0.2)
