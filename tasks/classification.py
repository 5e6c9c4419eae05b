"""Build a `Task` from a flax classifier and a `ClassificationData`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from tasks.base import Task
from tasks.digits import ClassificationData


def classification_task(
    name: str,
    spec: Mapping[str, Any],
    model: nn.Module,
    data: ClassificationData,
    batch_size: int,
) -> Task:
    """A softmax cross-entropy task: minibatches drawn uniformly with replacement from train.

    Args:
      name: registry name.
      spec: JSON-serialisable description.
      model: maps ``[batch, *x.shape[1:]]`` inputs to ``[batch, num_classes]`` logits.
      data: train and test arrays on device.
      batch_size: examples per minibatch.
    """

    def init(key):
        return model.init(key, data.x_train[:1])["params"]

    def cross_entropy(params, x, y):
        logits = model.apply({"params": params}, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), logits

    def loss(params, batch, key):
        del key  # deterministic forward pass
        return cross_entropy(params, *batch)[0]

    def sample_batch(key):
        idx = jax.random.randint(key, (batch_size,), 0, data.x_train.shape[0])
        return data.x_train[idx], data.y_train[idx]

    def test_metrics(params):
        value, logits = cross_entropy(params, data.x_test, data.y_test)
        accuracy = jnp.mean(jnp.argmax(logits, -1) == data.y_test)
        return {"loss": value, "accuracy": accuracy}

    return Task(name, dict(spec), init, loss, sample_batch, test_metrics)
