"""The pretrained learned optimizers shipped with velo, read as package data.

They live in the top-level ``checkpoints/`` directory of the distribution (installed as package
data), one directory per checkpoint with its model card; a directory holding a ``config.json``
is a complete checkpoint (`checkpoint.save` writes it last).
"""

from __future__ import annotations

import importlib.resources
import os

_PACKAGE = "checkpoints"
_COMPLETE = "config.json"


def directory() -> str:
    """Absolute path of the shipped-checkpoints directory."""
    return os.fspath(importlib.resources.files(_PACKAGE))


def names() -> list[str]:
    """Names of the shipped checkpoints."""
    root = directory()
    return sorted(d for d in os.listdir(root) if os.path.isfile(os.path.join(root, d, _COMPLETE)))


def path(name: str) -> str:
    """Directory of the shipped checkpoint ``name``."""
    if name not in names():
        shipped = ", ".join(names()) or "(none)"
        raise ValueError(f"no shipped checkpoint called {name!r}; shipped: {shipped}")
    return os.path.join(directory(), name)
