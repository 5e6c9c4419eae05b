"""Losses of the supervised tasks, with their test metrics and normalisers."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax


class Objective(NamedTuple):
    """How outputs are scored against targets.

    Attributes:
      loss: ``(outputs, targets) -> scalar`` training loss, averaged over all leading axes.
      metrics: ``(outputs, targets) -> {"loss", ...}`` reported on the test split (never smoothed).
      normalizer: the loss of a trivial predictor (see `tasks.Task.normalizer`).
    """

    loss: Callable[[jax.Array, jax.Array], jax.Array]
    metrics: Callable[[jax.Array, jax.Array], dict[str, jax.Array]]
    normalizer: float


def cross_entropy(num_classes: int, label_smoothing: float = 0.0) -> Objective:
    """Softmax cross-entropy on integer targets ``[...]`` for logits ``[..., num_classes]``."""

    def plain(logits, labels):
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    def loss(logits, labels):
        if not label_smoothing:
            return plain(logits, labels)
        soft = optax.smooth_labels(jax.nn.one_hot(labels, num_classes), label_smoothing)
        return optax.softmax_cross_entropy(logits, soft).mean()

    def metrics(logits, labels):
        return {"loss": plain(logits, labels),
                "accuracy": jnp.mean(jnp.argmax(logits, -1) == labels)}

    return Objective(loss, metrics, math.log(num_classes))


def squared_error(train_targets: jax.Array) -> Objective:
    """Mean squared error per output; normalised by the train targets' mean variance."""

    def loss(outputs, targets):
        return jnp.mean(jnp.square(outputs - targets))

    def metrics(outputs, targets):
        return {"loss": loss(outputs, targets)}

    return Objective(loss, metrics, float(jnp.var(train_targets, axis=0).mean()))
