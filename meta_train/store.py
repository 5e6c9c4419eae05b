"""The run store: a run directory's config, orbax checkpoints of its state, saving and resuming.

Layout of ``out/``: ``config.json`` (the meta-training config), ``checkpoints/<generation>/``
(orbax: ``state`` = ES state and, for truncated ES, the inner training states; ``meta`` = JSON with
the generation, the next generation's PRNG key, the config and the last metrics), ``log.jsonl``.

Every check runs before anything is written, so a failed start (bad config, a directory holding
another run, an unreadable checkpoint) leaves existing checkpoints as they were; ``config.json``
is written with the first checkpoint.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import orbax.checkpoint as ocp

from meta_train import truncated
from meta_train.config import RESUMABLE_FIELDS, Config
from meta_train.run import Plan, Run

CONFIG_FILE = "config.json"
CHECKPOINTS = "checkpoints"


class RunStore:
    """Checkpoints of one run directory, opened for a fresh start or to resume."""

    def __init__(self, out: str, config: Config, resume: bool):
        self.out = os.path.abspath(out)
        self.config = config
        saved = read_config(self.out)
        existing = _steps(self.out)
        if not resume and (saved is not None or existing):
            raise ValueError(
                f"{self.out} already holds a meta-training run; pass --resume to continue it or "
                f"choose another --out"
            )
        if saved is not None:
            _check_same_run(saved, config, self.out)
        try:
            os.makedirs(self.out, exist_ok=True)
        except OSError as e:
            raise ValueError(f"cannot write to --out {out!r}: {e.strerror}") from None
        self._config_saved = False
        policy = ocp.checkpoint_managers.AnyPreservationPolicy([
            ocp.checkpoint_managers.LatestN(config.keep_checkpoints),
            ocp.checkpoint_managers.BestN(
                get_metric_fn=lambda m: m["validation"], reverse=True, n=1,
                keep_checkpoints_without_metrics=False,
            ),
        ])
        self.manager = ocp.CheckpointManager(
            os.path.join(self.out, CHECKPOINTS),
            options=ocp.CheckpointManagerOptions(preservation_policy=policy, create=True),
        )

    def save(self, run: Run, generation: int, es_state, carry: Plan | None, record: dict) -> None:
        """Checkpoint the state after ``generation`` generations: the ES state, the truncated-ES
        trajectory ``carry`` if any, the mean meta-parameters (apart, so export reads only them)
        and a JSON record (generation, PRNG key, config, the generation's metrics).

        The validation mean of ``record`` (lower is better) ranks the checkpoint for keeping the
        best one; a checkpoint without one (not validated, or diverged) never ranks as best.
        """
        validation = record.get("validation", {}).get("mean")
        state = {"es": es_state}
        if carry is not None:
            state["inner"] = tuple(carry.states)
        meta = {
            "generation": generation,
            "key": run.key_record(generation),
            "config": run.config.to_dict(),
            "trajectory_start": None if carry is None else carry.start,
            "metrics": {k: record[k] for k in ("meta_loss", "family_loss", "sigma", "update_norm")},
            "validation": validation,
        }
        if not self._config_saved:  # written with the first checkpoint: a run exists from then
            _write_json(os.path.join(self.out, CONFIG_FILE), self.config.to_dict())
            self._config_saved = True
        self.manager.save(
            generation,
            args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                    mean=ocp.args.StandardSave(run.es.get_mean(es_state)),
                                    meta=ocp.args.JsonSave(meta)),
            metrics=None if validation is None else {"validation": validation},
        )

    def restore(self, run: Run) -> tuple[int, Any, Plan | None]:
        """``(generation, ES state, truncated-ES carry)`` of the latest checkpoint, shaped and
        sharded like a fresh run's; generation 0 and the initial state without a checkpoint."""
        fresh = run.initial_state()
        step = self.manager.latest_step()
        if step is None:
            return 0, fresh, None
        meta = restore_meta(self.manager, step)
        if meta.get("generation") != step or meta.get("key") != run.key_record(step):
            raise ValueError(
                f"checkpoint {step} in {self.out} does not belong to this config (generation or "
                f"PRNG key differ); choose another --out"
            )
        abstract = {"es": jax.tree.map(_abstract, fresh)}
        carry = None
        if meta.get("trajectory_start") is not None:
            carry = truncated.abstract_plan(run, meta["trajectory_start"], fresh)
            abstract["inner"] = tuple(carry.states)
        state = restore(self.manager, step, state=ocp.args.StandardRestore(abstract)).state
        if carry is not None:
            carry = carry._replace(states=list(state["inner"]))
        return step, state["es"], carry

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


def read_config(out: str) -> dict | None:
    """The config saved in run directory ``out``, or None if there is none."""
    path = os.path.join(out, CONFIG_FILE)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read {path}: {e}") from None


def open_readonly(out: str) -> ocp.CheckpointManager:
    """The checkpoints of run directory ``out``, for export."""
    if not _steps(os.path.abspath(out)):
        raise ValueError(f"no checkpoints in {out}; is it a `velo meta-train --out` directory?")
    return ocp.CheckpointManager(
        os.path.join(os.path.abspath(out), CHECKPOINTS),
        options=ocp.CheckpointManagerOptions(read_only=True, create=False),
    )


def restore_meta(manager: ocp.CheckpointManager, step: int) -> dict:
    """The JSON record of checkpoint ``step``."""
    return restore(manager, step, meta=ocp.args.JsonRestore()).meta


def restore_mean(manager: ocp.CheckpointManager, step: int, abstract: Any) -> Any:
    """The mean meta-parameters of checkpoint ``step``, shaped like ``abstract``."""
    return restore(manager, step, mean=ocp.args.StandardRestore(abstract)).mean


def restore(manager: ocp.CheckpointManager, step: int, **items) -> Any:
    """Restore ``items`` (orbax restore args by name) of ``step``, with a clear error."""
    try:
        return manager.restore(step, args=ocp.args.Composite(**items))
    except Exception as e:  # orbax raises many types for unreadable or mismatched files
        raise ValueError(
            f"cannot restore checkpoint {step} in {manager.directory}: {type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''} -- the checkpoint is corrupted or was "
            f"written by another config or code version; it was left untouched"
        ) from None


def _abstract(x) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)


def _steps(out: str) -> list[int]:
    root = os.path.join(out, CHECKPOINTS)
    if not os.path.isdir(root):
        return []
    return sorted(int(d) for d in os.listdir(root) if d.isdigit())


def _check_same_run(saved: dict, config: Config, out: str) -> None:
    current = json.loads(json.dumps(config.to_dict()))  # tuples as lists, as saved
    # A field added since the run started must still hold its default, which the run used.
    defaults = json.loads(json.dumps(Config().to_dict()))
    saved = {**{k: v for k, v in defaults.items() if k not in saved}, **saved}
    differ = sorted(
        k for k in set(saved) | set(current)
        if k not in RESUMABLE_FIELDS and saved.get(k) != current.get(k)
    )
    if differ:
        details = ", ".join(
            f"{k}: saved {saved.get(k)!r} vs now {current.get(k)!r}" for k in differ
        )
        raise ValueError(
            f"{out} holds a run with another config ({details}); resume with the same preset "
            f"and --set values, or choose another --out"
        )


def _write_json(path: str, value: dict) -> None:
    if jax.process_index() != 0:
        return
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(value, f, indent=1)
    os.replace(tmp, path)
