"""The held-out suite: fixed, named specs that no sampler distribution can produce.

Every family and built-in dataset appears. Sizes the samplers never draw keep the suite disjoint
from meta-training: widths, channels, batch sizes and augmentation values off the samplers'
power-of-two (or 0.1-step) grids, and several beyond every distribution's range (6-layer
networks, batch 1,000, a 10^5 condition number, 30 % label noise; the 200-character sequence is
beyond the default distribution's). ``QUICK`` is a small subset for fast comparisons; step budgets
are the default number of training steps.
"""

from __future__ import annotations

from tasks.spec import TaskSpec


def _mlp(dataset, hidden, activation, batch, **augmentation):
    arch = {"hidden": list(hidden), "activation": activation}
    return TaskSpec("mlp", dataset, arch, batch, **augmentation)


def _cnn(dataset, channels, downsample, activation, batch, **augmentation):
    arch = {"channels": list(channels), "downsample": downsample, "activation": activation}
    return TaskSpec("cnn", dataset, arch, batch, **augmentation)


def _autoencoder(dataset, hidden, activation, batch):
    return TaskSpec("autoencoder", dataset, {"hidden": list(hidden), "activation": activation},
                    batch)


def _rnn(cell, hidden, embed, seq, batch):
    arch = {"cell": cell, "hidden": hidden, "embed": embed, "seq": seq}
    return TaskSpec("rnn", "english", arch, batch)


def _vit(dataset, patch, width, layers, heads, batch):
    arch = {"patch": patch, "width": width, "layers": layers, "heads": heads}
    return TaskSpec("vit", dataset, arch, batch)


def _transformer(layers, width, heads, seq, batch):
    arch = {"layers": layers, "width": width, "heads": heads, "seq": seq}
    return TaskSpec("transformer", "english", arch, batch)


HELDOUT: dict[str, tuple[TaskSpec, int]] = {
    "digits_mlp_wide": (_mlp("digits8", [384], "gelu", 100), 1000),
    "digits_mlp_deep": (_mlp("digits8", [48] * 6, "relu", 64), 1000),
    "digits_mlp_scaled": (
        _mlp("digits8", [64, 64], "relu", 128, reparam="tensor", reparam_exponent=3,
             label_smoothing=0.05), 1000),
    "digits4_mlp": (_mlp("digits4", [24, 24], "tanh", 48), 400),
    "mnist1d_mlp": (_mlp("mnist1d", [96, 96], "relu", 96), 1000),
    "teacher_mlp": (_mlp("teacher", [40, 40], "tanh", 50), 300),
    "logistic_regression": (_mlp("logistic", [], "relu", 1000), 300),
    "digits_cnn": (_cnn("digits8", [24, 48], "stride", "gelu", 80), 500),
    "digits4_cnn": (_cnn("digits4", [12, 24], "stride", "relu", 40), 500),
    "mnist1d_cnn": (_cnn("mnist1d", [12, 24], "pool", "relu", 64), 1000),
    "mnist1d_cnn_noisy": (
        _cnn("mnist1d", [16, 16, 16], "stride", "relu", 32, reparam="global",
             reparam_exponent=-2, label_noise=0.3), 1000),
    "digits_autoencoder": (_autoencoder("digits8", [48, 12], "relu", 100), 500),
    "mnist1d_autoencoder": (_autoencoder("mnist1d", [80, 20], "gelu", 50), 1000),
    "english_rnn": (_rnn("vanilla", 48, 12, 40, 24), 300),
    "english_lstm": (_rnn("lstm", 96, 24, 48, 32), 500),
    "english_gru_long": (_rnn("gru", 48, 16, 200, 16), 500),
    "english_transformer": (_transformer(2, 48, 3, 64, 24), 500),
    "english_transformer_deep": (_transformer(6, 32, 2, 48, 12), 500),
    "digits_vit": (_vit("digits8", 2, 48, 2, 3, 64), 500),
    "mnist1d_vit": (_vit("mnist1d", 5, 32, 1, 2, 50), 500),
    "quadratic_ill": (TaskSpec("quadratic", "quadratic", {"dim": 100, "log10_condition": 5}, 10),
                      300),
}

QUICK = ("digits4_mlp", "teacher_mlp", "logistic_regression", "english_rnn", "quadratic_ill")
