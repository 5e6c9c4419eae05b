"""Minibatch samplers: pure functions of a key over arrays held on device (jit- and vmappable)."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

MAX_TEST_WINDOWS = 128  # bounds the cost of a language model's test metrics


def indexed(
    x: jax.Array, y: jax.Array, batch_size: int, label_noise: float = 0.0, num_classes: int = 0
) -> Callable[[jax.Array], tuple[jax.Array, jax.Array]]:
    """``sample(key) -> (x[idx], y[idx])``, ``batch_size`` indices uniform with replacement.

    With ``label_noise`` > 0, that fraction of the integer labels (in expectation) is replaced by
    uniformly random classes, drawn from the same key so batches stay reproducible.
    """

    def sample(key):
        index_key, flip_key, class_key = jax.random.split(key, 3)
        idx = jax.random.randint(index_key, (batch_size,), 0, x.shape[0])
        labels = y[idx]
        if label_noise:
            flip = jax.random.bernoulli(flip_key, label_noise, labels.shape)
            random_labels = jax.random.randint(class_key, labels.shape, 0, num_classes)
            labels = jnp.where(flip, random_labels, labels)
        return x[idx], labels

    return sample


def windows(tokens: jax.Array, batch_size: int, seq: int) -> Callable[[jax.Array], tuple]:
    """``sample(key) -> (inputs, targets)``: ``[batch_size, seq]`` windows at random offsets,
    targets shifted one token ahead."""
    offsets = jnp.arange(seq + 1)

    def sample(key):
        starts = jax.random.randint(key, (batch_size, 1), 0, tokens.shape[0] - seq)
        window = tokens[starts + offsets]
        return window[:, :-1], window[:, 1:]

    return sample


def fixed_windows(tokens: jax.Array, seq: int) -> tuple:
    """Consecutive non-overlapping ``(inputs, targets)`` windows from the start of ``tokens``,
    at most `MAX_TEST_WINDOWS`: a fixed test set for language models."""
    count = min(MAX_TEST_WINDOWS, (tokens.shape[0] - 1) // (seq + 1))
    if count < 1:
        raise ValueError(f"the test text ({tokens.shape[0]} tokens) is shorter than one "
                         f"sequence of {seq + 1}; use a shorter seq")
    window = np.asarray(tokens)[: count * (seq + 1)].reshape(count, seq + 1)
    return jnp.asarray(window[:, :-1]), jnp.asarray(window[:, 1:])
