"""Export the mean meta-parameters of a run's checkpoint as a learned-optimizer checkpoint."""

from __future__ import annotations

import dataclasses
import os

import jax

from meta_train import store
from meta_train.config import Config
from meta_train.learner import lopt_learner
from velo import overrides


def export(run_dir: str, path: str, step: str | int = "latest") -> str:
    """Write the mean meta-parameters of ``run_dir``'s checkpoint ``step`` to ``path``.

    The result is a `velo.lopt.save` directory: ``velo.optax_lopt(num_steps, checkpoint=path)``
    and ``velo train --optimizer velo --checkpoint path`` load it.

    Args:
      run_dir: a ``velo meta-train --out`` directory.
      path: a new directory for the learned-optimizer checkpoint.
      step: ``"latest"``, ``"best"`` (lowest validation loss) or a generation number.

    Returns:
      The absolute path written.
    """
    from velo import lopt

    config = load_config(run_dir)
    learner = lopt_learner(config.lopt, config.trainable)
    manager = store.open_readonly(run_dir)
    try:
        step = _resolve_step(manager, step, run_dir)
        meta = store.restore_meta(manager, step)
        abstract = jax.eval_shape(learner.init, jax.random.key(0))
        mean = store.restore_mean(manager, step, abstract)
    finally:
        manager.close()
    metadata = {
        "source": "velo meta-train", "run_dir": os.path.normpath(run_dir), "generation": step,
        "meta_train_config": config.to_dict(), "validation": meta.get("validation"),
        "metrics": meta.get("metrics"),
    }
    return lopt.save(path, learner.expand(mean), learner.config, metadata)


def load_config(run_dir: str) -> Config:
    """The `Config` saved in ``run_dir``."""
    saved = store.read_config(run_dir)
    if saved is None:
        raise ValueError(f"no {store.CONFIG_FILE} in {run_dir}; is it a `velo meta-train "
                         f"--out` directory?")
    known = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(saved) - known)
    if unknown:
        raise ValueError(f"{run_dir} was written by another velo version (unknown config keys "
                         f"{', '.join(unknown)})")
    return overrides.apply(Config(), saved)


def _resolve_step(manager, step, run_dir: str) -> int:
    steps = list(manager.all_steps())
    if step == "latest":
        return max(steps)
    if step == "best":
        scored = [(store.restore_meta(manager, s).get("validation"), s) for s in steps]
        scored = [(v, s) for v, s in scored if v is not None]
        if not scored:
            raise ValueError(
                f"no checkpoint in {run_dir} has a validation score; use --step latest"
            )
        return min(scored)[1]
    try:
        step = int(step)
    except ValueError:
        raise ValueError(
            f"--step must be latest, best or a generation number, got {step!r}"
        ) from None
    if step not in steps:
        raise ValueError(f"no checkpoint {step} in {run_dir}; kept: {', '.join(map(str, steps))}")
    return step
