"""Task families: which hyperparameters each takes (with their valid ranges), which datasets it
reads, the flax module it builds and its cost per step.

The ranges here are what a spec may hold at all ("sizes out of range" is judged against them);
the sampler draws from narrower, bucketed grids (`tasks.sampler`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import flax.linen as nn

from tasks import models
from tasks.datasets import DatasetInfo

ACTIVATIONS = ("relu", "gelu", "tanh")
# Multiply-adds per step of each recurrent cell: gates x (input + state) x state.
CELL_GATES = {"vanilla": 1, "gru": 3, "lstm": 4}


class Field(NamedTuple):
    """One architecture hyperparameter: an int, a list of ints, or one of some strings."""

    kind: str
    lo: int = 0
    hi: int = 0
    min_len: int = 0
    max_len: int = 0
    options: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.kind == "choice":
            return "one of " + ", ".join(repr(o) for o in self.options)
        if self.kind == "int":
            return f"an integer in [{self.lo}, {self.hi}]"
        return (f"a list of {self.min_len}-{self.max_len} integers, "
                f"each in [{self.lo}, {self.hi}]")

    def valid(self, value: Any) -> bool:
        def is_int(v):
            return isinstance(v, int) and not isinstance(v, bool) and self.lo <= v <= self.hi

        if self.kind == "choice":
            return value in self.options
        if self.kind == "int":
            return is_int(value)
        return (isinstance(value, tuple) and self.min_len <= len(value) <= self.max_len
                and all(is_int(v) for v in value))


def integer(lo: int, hi: int) -> Field:
    return Field("int", lo, hi)


def integers(lo: int, hi: int, min_len: int, max_len: int) -> Field:
    return Field("ints", lo, hi, min_len, max_len)


def choice(*options: str) -> Field:
    return Field("choice", options=options)


Arch = Mapping[str, Any]


class Family(NamedTuple):
    """A parametric family of tasks.

    Attributes:
      kinds: dataset kinds it reads (`DatasetInfo.kind`).
      arch: its hyperparameters and their valid ranges.
      model: ``(arch, info) -> flax module`` (``None`` for the model-free quadratic).
      macs: ``(arch, info) -> multiply-adds of one forward pass per example`` (per step for the
        quadratic, whose batch size only sets the gradient noise).
      check: ``(arch, info) -> error message or None`` for constraints across fields.
    """

    kinds: tuple[str, ...]
    arch: dict[str, Field]
    model: Callable[[Arch, DatasetInfo], nn.Module] | None
    macs: Callable[[Arch, DatasetInfo], int]
    check: Callable[[Arch, DatasetInfo], str | None] = lambda arch, info: None


def _chain(dims) -> int:
    return sum(a * b for a, b in zip(dims[:-1], dims[1:], strict=False))


def _mlp_macs(arch, info):
    return _chain([math.prod(info.input_shape), *arch["hidden"], info.num_outputs])


def _cnn_macs(arch, info):
    spatial, c_in, total = list(info.input_shape[:-1]), info.input_shape[-1], 0
    for c in arch["channels"]:
        halved = [-(-s // 2) for s in spatial]
        conv_out = halved if arch["downsample"] == "stride" else spatial
        total += math.prod(conv_out) * 3 ** len(spatial) * c_in * c
        spatial, c_in = halved, c
    return total + c_in * info.num_outputs


def _autoencoder_macs(arch, info):
    d, hidden = math.prod(info.input_shape), list(arch["hidden"])
    return _chain([d, *hidden, *reversed(hidden[:-1]), d])


def _rnn_macs(arch, info):
    h, e = arch["hidden"], arch["embed"]
    return arch["seq"] * (CELL_GATES[arch["cell"]] * (e + h) * h + h * info.num_outputs)


def _attention_macs(tokens, width, layers):
    # Projections and MLP: 12 width^2 per token; scores and weighted sum: 2 tokens x width.
    return layers * tokens * (12 * width * width + 2 * tokens * width)


def _transformer_macs(arch, info):
    w = arch["width"]
    return _attention_macs(arch["seq"], w, arch["layers"]) + arch["seq"] * w * info.num_outputs


def _vit_tokens(arch, info):
    return math.prod(s // arch["patch"] for s in info.input_shape[:-1])


def _vit_macs(arch, info):
    p, w, tokens = arch["patch"], arch["width"], _vit_tokens(arch, info)
    rank, c = len(info.input_shape) - 1, info.input_shape[-1]
    return (tokens * p**rank * c * w + _attention_macs(tokens, w, arch["layers"])
            + w * info.num_outputs)


def _heads_divide_width(arch, info):
    if arch["width"] % arch["heads"]:
        return f"width {arch['width']} is not divisible by heads {arch['heads']}"
    return None


def _vit_check(arch, info):
    if min(info.input_shape[:-1]) < arch["patch"]:
        return f"patch {arch['patch']} is larger than the inputs {info.input_shape[:-1]}"
    return _heads_divide_width(arch, info)


FAMILIES: dict[str, Family] = {
    "mlp": Family(
        ("image", "signal", "vector"),
        {"hidden": integers(1, 4096, 0, 8), "activation": choice(*ACTIVATIONS)},
        lambda a, info: models.MLP(a["hidden"], info.num_outputs, a["activation"]),
        _mlp_macs,
    ),
    "cnn": Family(
        ("image", "signal"),
        {"channels": integers(1, 1024, 1, 5), "downsample": choice("stride", "pool"),
         "activation": choice(*ACTIVATIONS)},
        lambda a, info: models.ConvNet(a["channels"], info.num_outputs, a["downsample"],
                                       a["activation"]),
        _cnn_macs,
    ),
    "autoencoder": Family(
        ("image", "signal"),
        {"hidden": integers(1, 4096, 1, 6), "activation": choice(*ACTIVATIONS)},
        lambda a, info: models.MLPAutoencoder(a["hidden"], a["activation"]),
        _autoencoder_macs,
    ),
    "rnn": Family(
        ("text",),
        {"cell": choice(*CELL_GATES), "hidden": integer(1, 2048), "embed": integer(1, 1024),
         "seq": integer(2, 2048)},
        lambda a, info: models.RNNLM(a["cell"], a["hidden"], a["embed"], info.num_outputs),
        _rnn_macs,
    ),
    "transformer": Family(
        ("text",),
        {"layers": integer(1, 12), "width": integer(2, 2048), "heads": integer(1, 32),
         "seq": integer(2, 2048)},
        lambda a, info: models.TransformerLM(a["layers"], a["width"], a["heads"],
                                             info.num_outputs, a["seq"]),
        _transformer_macs,
        _heads_divide_width,
    ),
    "vit": Family(
        ("image", "signal"),
        {"patch": integer(1, 8), "width": integer(2, 1024), "layers": integer(1, 12),
         "heads": integer(1, 32)},
        lambda a, info: models.ViT(a["patch"], a["width"], a["layers"], a["heads"],
                                   info.num_outputs),
        _vit_macs,
        _vit_check,
    ),
    "quadratic": Family(
        ("quadratic",),
        {"dim": integer(2, 4096), "log10_condition": integer(0, 8)},
        None,
        lambda a, info: a["dim"] * a["dim"],
    ),
}


def get(name: str) -> Family:
    """The family called ``name``."""
    if name not in FAMILIES:
        raise ValueError(f"unknown family {name!r}; choose one of: {', '.join(FAMILIES)}")
    return FAMILIES[name]
