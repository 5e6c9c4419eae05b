"""Pretrained learned optimizers shipped with velo, one directory each with a model card."""

from __future__ import annotations

import os


def directory() -> str:
    """Absolute path of the shipped-checkpoints directory (inside the installed package)."""
    return os.path.dirname(os.path.abspath(__file__))


def names() -> list[str]:
    """Names of the shipped checkpoints: subdirectories holding a ``config.json``."""
    root = directory()
    return sorted(
        d for d in os.listdir(root) if os.path.isfile(os.path.join(root, d, "config.json"))
    )


def path(name: str) -> str:
    """Directory of shipped checkpoint ``name``."""
    if name not in names():
        shipped = ", ".join(names()) or "(none)"
        raise ValueError(f"no shipped checkpoint called {name!r}; shipped: {shipped}")
    return os.path.join(directory(), name)
