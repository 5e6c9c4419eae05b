"""Datasets for the task families: offline built-ins plus optional external loaders.

Every dataset is loaded once per process (`load` is cached) and held on device as float32 (or
integer token) arrays, so minibatches are drawn inside `jit` by random indices. `info` describes a
dataset without loading it, which the sampler uses to estimate costs.

Built-in, offline: ``digits8`` and ``digits4`` (scikit-learn's 8x8 digits, also pooled to 4x4),
``mnist1d`` (generated locally), ``english`` (a character corpus shipped in ``tasks/data``),
``teacher`` (teacher-student regression), ``logistic`` (logistic-regression data) and
``quadratic`` (ill-conditioned quadratics, built by the quadratic family itself).
Optional (extra ``datasets``, downloaded once): ``mnist``, ``fashion_mnist``, ``cifar10``,
``tiny_shakespeare``; and ``npz:/path/to/file.npz`` for local arrays.
"""

from __future__ import annotations

import functools

from tasks.datasets import mnist1d, synthetic
from tasks.datasets.base import Dataset, DatasetInfo
from tasks.datasets.external import EXTERNAL, NPZ_PREFIX, load_external, load_npz

_BUILTIN: dict[str, DatasetInfo] = {
    "digits8": DatasetInfo("image", (8, 8, 1), 10),
    "digits4": DatasetInfo("image", (4, 4, 1), 10),
    "mnist1d": mnist1d.INFO,
    "english": DatasetInfo("text", (), 96, target="tokens"),
    "teacher": synthetic.TEACHER,
    "logistic": synthetic.LOGISTIC,
    "quadratic": DatasetInfo("quadratic", (), 0, target="none"),
}


def names() -> list[str]:
    """Every dataset name except the open-ended ``npz:PATH``."""
    return sorted(_BUILTIN) + sorted(EXTERNAL)


def builtin_names() -> list[str]:
    """Datasets that need neither a download nor a file."""
    return sorted(_BUILTIN)


def info(name: str) -> DatasetInfo:
    """What dataset ``name`` holds, without loading it (an ``npz:`` file is read, once)."""
    if name in _BUILTIN:
        return _BUILTIN[name]
    if name in EXTERNAL:
        return EXTERNAL[name].info
    if name.startswith(NPZ_PREFIX):
        return load_npz(name[len(NPZ_PREFIX):]).info
    raise ValueError(
        f"unknown dataset {name!r}; choose one of: {', '.join(names())}, or npz:/path/to/file.npz"
    )


# Datasets whose content or split depends on the seed; the others ignore it.
_SEEDED = ("digits8", "digits4", "mnist1d", "teacher", "logistic")


def load(name: str, seed: int = 0) -> Dataset:
    """Dataset ``name`` with its train/test split (and synthetic content) drawn from ``seed``.

    Loaded once per process for each distinct content; later calls return the same arrays.
    """
    info(name)  # rejects unknown names with the list of valid ones
    return _load(name, seed if name in _SEEDED else 0)


@functools.cache
def _load(name: str, seed: int) -> Dataset:
    if name in ("digits8", "digits4"):
        from tasks.datasets.digits import load_digits

        return load_digits(seed, size=int(name[-1]))
    if name == "mnist1d":
        return mnist1d.load_mnist1d(seed)
    if name == "english":
        from tasks.datasets.text import load_english

        return load_english()
    if name in ("teacher", "logistic"):
        return getattr(synthetic, f"load_{name}")(seed)
    if name == "quadratic":
        raise ValueError("dataset 'quadratic' has no arrays: the quadratic family builds it")
    if name in EXTERNAL:
        return load_external(name)
    return load_npz(name[len(NPZ_PREFIX):])


__all__ = ["Dataset", "DatasetInfo", "builtin_names", "info", "load", "names"]
