"""Task functions for a flax model on a dataset: classification, regression, reconstruction and
language modelling, chosen by the family and the dataset's targets."""

from __future__ import annotations

import flax.linen as nn

from tasks import batches, objectives
from tasks.base import TaskFns
from tasks.datasets import Dataset
from tasks.spec import TaskSpec


def model_task(spec: TaskSpec, model: nn.Module, data: Dataset) -> TaskFns:
    """``init``, ``loss``, ``sample_batch``, ``test_metrics`` and the normaliser for ``model``."""
    info = data.info
    if spec.family == "autoencoder":
        flat_train = data.x_train.reshape(data.x_train.shape[0], -1)
        flat_test = data.x_test.reshape(data.x_test.shape[0], -1)
        objective = objectives.squared_error(flat_train)
        sample = batches.indexed(data.x_train, flat_train, spec.batch_size)
        test = (data.x_test, flat_test)
    elif info.target == "tokens":
        seq = spec.arch_dict["seq"]
        objective = objectives.cross_entropy(info.num_outputs, spec.label_smoothing)
        sample = batches.windows(data.x_train, spec.batch_size, seq)
        test = batches.fixed_windows(data.x_test, seq)
    elif info.target == "values":
        objective = objectives.squared_error(data.y_train)
        sample = batches.indexed(data.x_train, data.y_train, spec.batch_size)
        test = (data.x_test, data.y_test)
    else:
        objective = objectives.cross_entropy(info.num_outputs, spec.label_smoothing)
        sample = batches.indexed(data.x_train, data.y_train, spec.batch_size, spec.label_noise,
                                 info.num_outputs)
        test = (data.x_test, data.y_test)
    one_input = test[0][:1]  # init needs only the input shape

    def init(key):
        return model.init(key, one_input)["params"]

    def apply(params, inputs):
        return model.apply({"params": params}, inputs)

    def loss(params, batch, key):
        del key  # the families' forward passes are deterministic
        inputs, targets = batch
        return objective.loss(apply(params, inputs), targets)

    def test_metrics(params):
        return objective.metrics(apply(params, test[0]), test[1])

    return TaskFns(init, loss, sample, test_metrics, objective.normalizer)
