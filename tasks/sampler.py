"""Seeded task sampler: ``sample(key, distribution) -> TaskSpec``.

A distribution is a finite grid per hyperparameter. Sizes are powers of two between VeLO-like
bounds, drawn uniformly from the grid (log-uniform, bucketed), and hidden layers share one width,
so the number of distinct specs, and hence of compiled programs, stays small. Specs whose
estimated FLOPs per step exceed the distribution's budget are rejected and redrawn.
`in_support` says exactly which specs a distribution can produce; the held-out suite lies outside
every distribution's support.

Distributions: ``tiny`` (tests: a few milliseconds per step), ``default`` (CPU meta-training,
the issue's ranges) and ``large`` (accelerators: wider, longer, bigger batches).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import jax
import numpy as np

from tasks import cost, datasets
from tasks.families import ACTIVATIONS, CELL_GATES
from tasks.spec import MAX_EXPONENT, TaskSpec

MAX_TRIES = 10_000
# VeLO left 2/7 of its tasks unreparameterised; the rest split between global and per-tensor.
REPARAM_PROBS = {"none": 2 / 7, "global": 5 / 14, "tensor": 5 / 14}
# Exponents drawn for each: a global scale of 10**e, or per-tensor scales within 10**(+-e).
REPARAM_EXPONENTS = {
    "none": (0,),
    "global": tuple(e for e in range(-MAX_EXPONENT, MAX_EXPONENT + 1) if e),
    "tensor": tuple(range(1, MAX_EXPONENT + 1)),
}
# Probability of each label augmentation being switched on (when the task has labels).
LABEL_AUGMENTATION_PROB = 0.3


@dataclasses.dataclass(frozen=True)
class Distribution:
    """A named distribution over task specs.

    Attributes:
      name: ``tiny``, ``default`` or ``large``.
      flops_budget: largest estimated FLOPs per training step accepted.
      family_weights: relative probability of each family.
      datasets: the datasets each family is drawn with (uniformly).
      arch: per family and hyperparameter, the tuple of values drawn from (uniformly).
      batch_sizes: batch sizes drawn from (uniformly).
      label_smoothing: non-zero label-smoothing values.
      label_noise: non-zero label-noise fractions.
      seeds: data seeds drawn from; few, since each is its own compiled program.
    """

    name: str
    flops_budget: float
    family_weights: Mapping[str, float]
    datasets: Mapping[str, tuple[str, ...]]
    arch: Mapping[str, Mapping[str, tuple]]
    batch_sizes: tuple[int, ...]
    label_smoothing: tuple[float, ...]
    label_noise: tuple[float, ...]
    seeds: tuple[int, ...]


def _pow2(lo: int, hi: int) -> tuple[int, ...]:
    return tuple(2**k for k in range(lo.bit_length() - 1, hi.bit_length()))


def _layers(depths: range, widths: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """Hidden-width lists of each depth, every layer the same width."""
    return tuple(dict.fromkeys((w,) * d for d in depths for w in widths))


IMAGE_DATASETS = ("digits8", "digits4", "mnist1d")


def _distribution(name, budget, *, depth, width, channels, rnn, transformer, vit, quadratic,
                  batch, smoothing, noise, seeds) -> Distribution:
    """One distribution; ``rnn``/``transformer``/``vit`` give each field's (lo, hi) bounds."""
    return Distribution(
        name=name,
        flops_budget=budget,
        family_weights={"mlp": 3, "cnn": 2, "autoencoder": 1, "rnn": 2, "transformer": 2,
                        "vit": 1, "quadratic": 1},
        datasets={"mlp": (*IMAGE_DATASETS, "teacher", "logistic"), "cnn": IMAGE_DATASETS,
                  "autoencoder": IMAGE_DATASETS, "rnn": ("english",),
                  "transformer": ("english",), "vit": IMAGE_DATASETS,
                  "quadratic": ("quadratic",)},
        arch={
            "mlp": {"hidden": _layers(range(depth + 1), _pow2(*width)),
                    "activation": ACTIVATIONS},
            "cnn": {"channels": _layers(range(1, 4), _pow2(*channels)),
                    "downsample": ("stride", "pool"), "activation": ACTIVATIONS},
            "autoencoder": {"hidden": _layers(range(1, 4), _pow2(*width)),
                            "activation": ACTIVATIONS},
            "rnn": {"cell": tuple(CELL_GATES), "hidden": _pow2(*rnn["hidden"]),
                    "embed": _pow2(*rnn["embed"]), "seq": _pow2(*rnn["seq"])},
            "transformer": {"layers": tuple(range(1, transformer["layers"] + 1)),
                            "width": _pow2(*transformer["width"]),
                            "heads": _pow2(*transformer["heads"]),
                            "seq": _pow2(*transformer["seq"])},
            "vit": {"patch": (2, 4), "width": _pow2(*vit["width"]),
                    "layers": tuple(range(1, vit["layers"] + 1)), "heads": _pow2(*vit["heads"])},
            "quadratic": {"dim": _pow2(*quadratic["dim"]),
                          "log10_condition": tuple(range(1, quadratic["condition"] + 1))},
        },
        batch_sizes=_pow2(*batch),
        label_smoothing=smoothing,
        label_noise=noise,
        seeds=seeds,
    )


DISTRIBUTIONS: dict[str, Distribution] = {
    "tiny": _distribution(
        "tiny", 2e7, depth=2, width=(8, 32), channels=(4, 16),
        rnn={"hidden": (16, 32), "embed": (8, 16), "seq": (16, 32)},
        transformer={"layers": 1, "width": (16, 32), "heads": (1, 2), "seq": (16, 32)},
        vit={"width": (16, 32), "layers": 1, "heads": (1, 2)},
        quadratic={"dim": (8, 32), "condition": 2},
        batch=(8, 32), smoothing=(0.1,), noise=(0.1,), seeds=(0,)),
    "default": _distribution(
        "default", 3e8, depth=4, width=(8, 256), channels=(4, 64),
        rnn={"hidden": (16, 256), "embed": (8, 128), "seq": (16, 128)},
        transformer={"layers": 4, "width": (16, 128), "heads": (1, 8), "seq": (16, 128)},
        vit={"width": (16, 128), "layers": 4, "heads": (1, 8)},
        quadratic={"dim": (8, 256), "condition": 3},
        batch=(8, 256), smoothing=(0.1, 0.2), noise=(0.1, 0.2), seeds=(0, 1)),
    "large": _distribution(
        "large", 3e10, depth=4, width=(8, 1024), channels=(4, 256),
        rnn={"hidden": (16, 1024), "embed": (8, 256), "seq": (16, 256)},
        transformer={"layers": 4, "width": (16, 512), "heads": (1, 8), "seq": (16, 256)},
        vit={"width": (16, 256), "layers": 4, "heads": (1, 8)},
        quadratic={"dim": (8, 1024), "condition": 4},
        batch=(8, 512), smoothing=(0.1, 0.2), noise=(0.1, 0.2), seeds=(0, 1, 2, 3)),
}


def get_distribution(name: str) -> Distribution:
    """The distribution called ``name``."""
    if name not in DISTRIBUTIONS:
        raise ValueError(f"unknown task distribution {name!r}; choose one of: "
                         f"{', '.join(DISTRIBUTIONS)}")
    return DISTRIBUTIONS[name]


def _label_targets(family: str, dataset: str) -> str:
    """``"labels"``, ``"tokens"`` or ``"none"``: which label augmentations apply."""
    target = datasets.info(dataset).target
    return "none" if family == "autoencoder" or target not in ("labels", "tokens") else target


def _pick(rng: np.random.Generator, values: tuple):
    return values[rng.integers(len(values))]


def _draw(rng: np.random.Generator, dist: Distribution) -> TaskSpec:
    families = list(dist.family_weights)
    weights = np.array([dist.family_weights[f] for f in families], float)
    family = families[rng.choice(len(families), p=weights / weights.sum())]
    dataset = _pick(rng, dist.datasets[family])
    arch = {key: _pick(rng, grid) for key, grid in dist.arch[family].items()}
    reparam = list(REPARAM_PROBS)[rng.choice(3, p=list(REPARAM_PROBS.values()))]
    exponent = _pick(rng, REPARAM_EXPONENTS[reparam])
    labels = _label_targets(family, dataset)
    smoothing = noise = 0.0
    if labels != "none" and rng.random() < LABEL_AUGMENTATION_PROB:
        smoothing = float(_pick(rng, dist.label_smoothing))
    if labels == "labels" and rng.random() < LABEL_AUGMENTATION_PROB:
        noise = float(_pick(rng, dist.label_noise))
    return TaskSpec(family, dataset, arch, int(_pick(rng, dist.batch_sizes)), reparam,
                    exponent, smoothing, noise, int(_pick(rng, dist.seeds)))


def _generator(key: jax.Array) -> np.random.Generator:
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return np.random.default_rng(np.asarray(key, np.uint32).ravel().tolist())


def sample(key: jax.Array, distribution: str = "default") -> TaskSpec:
    """A spec drawn from ``distribution`` by ``key``; the same key gives the same spec.

    Args:
      key: a JAX PRNG key (typed, ``jax.random.key``, or raw, ``jax.random.PRNGKey``).
      distribution: ``tiny``, ``default`` or ``large``.
    """
    dist = get_distribution(distribution)
    rng = _generator(key)
    for _ in range(MAX_TRIES):
        spec = _draw(rng, dist)
        if cost.flops_per_step(spec) <= dist.flops_budget:
            return spec
    raise RuntimeError(f"no spec under the {dist.name!r} budget after {MAX_TRIES} draws")


def in_support(spec: TaskSpec, distribution: str) -> bool:
    """Whether `sample` can return ``spec`` for ``distribution`` (mirrors `_draw` exactly)."""
    dist = get_distribution(distribution)
    if spec.family not in dist.family_weights or spec.dataset not in dist.datasets[spec.family]:
        return False
    arch = spec.arch_dict
    if any(arch[key] not in grid for key, grid in dist.arch[spec.family].items()):
        return False
    return (spec.batch_size in dist.batch_sizes
            and spec.reparam_exponent in REPARAM_EXPONENTS[spec.reparam]
            and spec.label_smoothing in (0.0, *dist.label_smoothing)
            and spec.label_noise in (0.0, *dist.label_noise)
            and spec.seed in dist.seeds
            and cost.flops_per_step(spec) <= dist.flops_budget)
