"""Saving and loading meta-parameters: an orbax checkpoint plus ``config.json`` beside it.

Layout of a checkpoint directory::

    <path>/config.json   {"feature_version": int, "config": {...}, "metadata": {...}}
    <path>/params/       orbax checkpoint of the meta-parameter pytree

``config.json`` is written last, so a directory holding it is complete (and is what
`shipped.names()` looks for). ``feature_version`` is that of the config's update rule
(`rules.feature_version`).
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import jax
import numpy as np

from velo.lopt import rules, shipped
from velo.lopt.config import DEFAULT_PRESET, Config, preset
from velo.lopt.init import check_meta_params, init_meta_params, meta_param_shapes

# The shipped checkpoint `optax_lopt` uses when given neither checkpoint= nor meta_params=.
DEFAULT_CHECKPOINT = "velo_small_lean"
CONFIG_FILE = "config.json"
# ``checkpoint="init"`` or ``"init:PRESET"``: the untrained initial meta-parameters of a preset.
INIT = "init"
PARAMS_DIR = "params"


def save(path: str, meta_params: Any, config: Config, metadata: dict | None = None) -> str:
    """Write ``meta_params`` (built for ``config``) and JSON-serialisable ``metadata`` to the new
    directory ``path``; returns its absolute path."""
    path = os.path.abspath(os.fspath(path))
    if os.path.exists(path) and os.listdir(path):
        raise ValueError(f"checkpoint path {path} already exists and is not empty; pick a new one")
    check_meta_params(meta_params, config, f"meta_params given to save({path!r})")
    try:
        record = json.dumps(
            {
                "feature_version": rules.feature_version(config),
                "config": config.to_dict(),
                "metadata": dict(metadata or {}),
            },
            indent=2,
        )
    except TypeError as err:
        raise ValueError(f"checkpoint metadata must be JSON-serialisable: {err}") from None
    import orbax.checkpoint as ocp

    host = jax.tree.map(np.asarray, meta_params)
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(os.path.join(path, PARAMS_DIR), host)
        ckptr.wait_until_finished()
    with open(os.path.join(path, CONFIG_FILE), "w") as f:
        f.write(record)
    return path


def load(path: str) -> tuple[Any, Config, dict]:
    """Read a checkpoint written by `save`: ``(meta_params, config, metadata)``.

    Raises `ValueError` for a missing or corrupted checkpoint, or one written for a different
    feature version or with a config this code does not know.
    """
    path = os.path.abspath(os.fspath(path))
    config_file = os.path.join(path, CONFIG_FILE)
    if not os.path.isfile(config_file):
        raise ValueError(
            f"no learned-optimizer checkpoint at {path} (missing {CONFIG_FILE}); pass a directory "
            "written by velo.lopt.save or the name of a shipped checkpoint"
        )
    try:
        with open(config_file) as f:
            record = json.load(f)
        version, fields = record["feature_version"], record["config"]
        metadata = record.get("metadata", {})
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"corrupted checkpoint {config_file}: {err}") from None
    config = Config.from_dict(fields)
    expected = rules.feature_version(config)
    if version != expected:
        raise ValueError(
            f"checkpoint {path} was written for feature version {version}, but this velo computes "
            f"feature version {expected} for rule {config.rule!r}; use a matching velo release "
            "or re-train"
        )
    target = meta_param_shapes(config)
    import orbax.checkpoint as ocp

    target = jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), target)
    try:
        with ocp.StandardCheckpointer() as ckptr:
            meta_params = ckptr.restore(os.path.join(path, PARAMS_DIR), target)
    except Exception as err:  # orbax raises many types for unreadable or mismatched data
        raise ValueError(
            f"corrupted checkpoint {path}: its parameters do not load for the config in "
            f"{CONFIG_FILE} ({type(err).__name__}: {str(err)[:300]})"
        ) from None
    meta_params = jax.tree.map(jax.numpy.asarray, meta_params)
    check_meta_params(meta_params, config, f"checkpoint {path}")
    return meta_params, config, metadata


def resolve(checkpoint: str | None, meta_params: Any, config: Config | None) -> tuple[Any, Config]:
    """The ``(meta_params, config)`` that `optax_lopt` runs with.

    ``meta_params`` (possibly traced) wins, with ``config`` or the default preset; else
    ``checkpoint``: ``"init"`` / ``"init:PRESET"`` (`init_checkpoint`), a path or a shipped
    checkpoint's name; else the shipped `DEFAULT_CHECKPOINT`.
    """
    if meta_params is not None:
        if checkpoint is not None:
            raise ValueError("pass either checkpoint= or meta_params=, not both")
        config = config if config is not None else preset(DEFAULT_PRESET)
        check_meta_params(meta_params, config)
        return meta_params, config
    if is_init(checkpoint):
        loaded, saved_config = init_checkpoint(checkpoint)
    else:
        loaded, saved_config, _ = load(locate(checkpoint))
    if config is not None and config != saved_config:
        raise ValueError(
            f"checkpoint {checkpoint!r} was saved with {saved_config}, which differs from the "
            f"config= given ({config}); drop config= or pass the matching one"
        )
    return loaded, saved_config


def is_init(checkpoint: str | None) -> bool:
    """Whether ``checkpoint`` names an untrained initialisation (``"init"``, ``"init:PRESET"``)."""
    return checkpoint == INIT or (checkpoint or "").startswith(INIT + ":")


def init_checkpoint(checkpoint: str) -> tuple[Any, Config]:
    """``(meta_params, config)`` of ``"init"`` (the default preset's initialisation) or
    ``"init:PRESET"``: `init_meta_params` at key 0, what meta-training starts from."""
    name = checkpoint.partition(":")[2] or DEFAULT_PRESET
    config = preset(name)
    return init_meta_params(jax.random.key(0), config), config


def locate(checkpoint: str | None) -> str:
    """Directory of ``checkpoint`` (a shipped name or a path); ``None`` is the shipped default."""
    checkpoint = DEFAULT_CHECKPOINT if checkpoint is None else checkpoint
    if checkpoint in shipped.names():
        return shipped.path(checkpoint)
    if os.path.isdir(checkpoint):
        return checkpoint
    names = ", ".join(shipped.names()) or "(none)"
    raise ValueError(
        f"no checkpoint directory {os.path.abspath(checkpoint)} and no shipped checkpoint named "
        f"{checkpoint!r}; shipped: {names}; or use 'init' / 'init:PRESET' for an untrained one"
    )


def identity(checkpoint: str | None) -> str:
    """Which learned optimizer ``checkpoint`` (as `resolve` takes it) is: its name and a digest
    of its weights and config, e.g. ``"velo_small (sha256 0123456789ab)"``, so results made
    with other weights are told apart.

    Raises:
      ValueError: the checkpoint does not exist or does not load.
    """
    if is_init(checkpoint):
        meta_params, config = init_checkpoint(checkpoint)
    else:
        meta_params, config, _ = load(locate(checkpoint))
    digest = hashlib.sha256(repr(config).encode())
    for leaf in jax.tree.leaves(meta_params):
        digest.update(np.asarray(leaf).tobytes())
    return f"{checkpoint or DEFAULT_CHECKPOINT} (sha256 {digest.hexdigest()[:12]})"
