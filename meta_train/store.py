"""The run store: a run directory's config, orbax checkpoints of its state, saving and resuming.

Layout of ``out/``: ``config.json`` (the meta-training config), ``checkpoints/<generation>/``
(orbax: ``state`` = ES state and, for truncated ES, the inner training states; ``meta`` = JSON with
the generation, the next generation's PRNG key, the config, the running trajectory's start
generation (staggered: each slot's) and the last metrics), ``log.jsonl``.

Every check runs before anything is written, so a failed start (bad config, a directory holding
another run) leaves existing checkpoints as they were; ``config.json`` is written with the first
checkpoint. Writes are atomic: orbax writes each checkpoint to a temporary directory and renames
it when complete, and ``config.json`` is replaced, not rewritten. An unreadable checkpoint is set
aside as ``<generation>.corrupt`` on resume, which continues from the one before.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from typing import Any

import jax
import orbax.checkpoint as ocp

from meta_train.config import RESUMABLE_FIELDS, Config
from meta_train.run import Plan, Run
from velo.lopt.transform import STATE_LAYOUT

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
            # A write cut short (a crash) leaves a temporary directory: removed on reopening.
            options=ocp.CheckpointManagerOptions(preservation_policy=policy, create=True,
                                                 cleanup_tmp_directories=True),
        )

    def save(self, run: Run, generation: int, es_state, carry: Plan | None,
             record: dict | None) -> None:
        """Checkpoint the state after ``generation`` generations: the ES state, the truncated-ES
        trajectory ``carry`` if any, the mean meta-parameters (apart, so export reads only them)
        and a JSON record (generation, PRNG key, config, the metrics of ``record``, the log
        record of the last generation; None before the first).

        The validation mean of ``record`` (lower is better) ranks the checkpoint for keeping the
        best one; a checkpoint without one (not validated, or diverged) never ranks as best.
        """
        record = record or {}
        validation = record.get("validation", {}).get("mean")
        state = {"es": es_state}
        if carry is not None:
            state["inner"] = tuple(carry.states)
        meta = {
            "generation": generation,
            "key": run.key_record(generation),
            "config": run.config.to_dict(),
            "trajectory_start": None if carry is None else carry.start,
            "inner_layout": None if carry is None else STATE_LAYOUT,
            "metrics": {k: record[k] for k in ("meta_loss", "family_loss", "sigma", "update_norm")
                        if k in record},
            "validation": validation,
        }
        if not self._config_saved:  # written with the first checkpoint: a run exists from then
            try:
                _write_json(os.path.join(self.out, CONFIG_FILE), self.config.to_dict())
            except OSError as e:
                raise write_error(self.out, e) from None
            self._config_saved = True
        try:  # errors of an asynchronous write surface here, at the next save or at close
            self.manager.save(
                generation,
                args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                        mean=ocp.args.StandardSave(run.es.get_mean(es_state)),
                                        meta=ocp.args.JsonSave(meta)),
                metrics=None if validation is None else {"validation": validation},
            )
        except Exception as e:  # orbax and tensorstore raise many types for failed writes
            raise write_error(self.out, e) from None

    def restore(self, run: Run, estimator) -> tuple[int, Any, Plan | None]:
        """``(generation, ES state, truncated-ES carry)`` of the latest readable checkpoint,
        shaped and sharded like a fresh run's; generation 0 and the initial state without one.
        ``estimator`` is the run's estimator module (`meta_train.truncated` or
        `meta_train.staggered` when a trajectory was running): its ``abstract_plan`` gives the
        shapes of the saved trajectory.

        An unreadable checkpoint (truncated or corrupted files) is renamed ``<step>.corrupt``,
        with a warning, and the one before it is tried: a crash while writing costs at most the
        generations since the previous checkpoint.
        """
        fresh = run.initial_state()
        steps = sorted(self.manager.all_steps(), reverse=True)
        for step in steps:
            try:
                return (step, *self._restore(run, estimator, step, fresh))
            except CorruptCheckpoint as e:
                moved = self._set_aside(step)
                warnings.warn(f"{e}; moved it to {moved} and trying the previous checkpoint",
                              stacklevel=2)
        if steps:
            raise ValueError(f"no readable checkpoint in {self.out}: all were set aside as "
                             f"*.corrupt; rerun with --resume to start again from generation 0")
        return 0, fresh, None

    def _restore(self, run: Run, estimator, step: int, fresh) -> tuple[Any, Plan | None]:
        meta = restore_meta(self.manager, step)
        if meta.get("generation") != step or meta.get("key") != run.key_record(step):
            raise ValueError(
                f"checkpoint {step} in {self.out} does not belong to this config (generation or "
                f"PRNG key differ); choose another --out"
            )
        abstract = {"es": jax.tree.map(_abstract, fresh)}
        carry, start = None, meta.get("trajectory_start")
        layout = meta.get("inner_layout", 1)  # checkpoints before the field held layout 1
        if start is not None and layout != STATE_LAYOUT:
            warnings.warn(
                f"checkpoint {step} in {self.out} holds inner training states in the learned "
                f"optimizer's state layout {layout}, which this velo (layout {STATE_LAYOUT}) "
                f"cannot read: resuming from its ES state, with the running truncated "
                f"trajectory started afresh",
                stacklevel=3,
            )
            return restore_part(self.manager, step, "state", abstract)["es"], None
        if start is not None:
            carry = estimator.abstract_plan(run, start, fresh)
            abstract["inner"] = tuple(carry.states)
        state = restore(self.manager, step, state=ocp.args.StandardRestore(abstract)).state
        if carry is not None:
            carry = carry._replace(states=list(state["inner"]))
        return state["es"], carry

    def _set_aside(self, step: int) -> str:
        """Rename checkpoint ``step`` out of orbax's sight (process 0; the others wait)."""
        path = os.path.join(self.out, CHECKPOINTS, str(step))
        moved = f"{path}.corrupt"
        if jax.process_index() == 0:
            if os.path.exists(moved):  # set aside by an earlier resume, and written again since
                shutil.rmtree(moved)
            os.replace(path, moved)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices(f"velo set aside checkpoint {step}")
        self.manager.reload()
        return moved

    def close(self) -> None:
        """Wait for the last checkpoint to be written."""
        try:
            self.manager.wait_until_finished()
        except Exception as e:  # orbax and tensorstore raise many types for failed writes
            raise write_error(self.out, e) from None
        finally:
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
    """The mean meta-parameters of checkpoint ``step``, shaped like ``abstract``, on this
    process's first device (whatever the devices and processes of the run that saved it)."""
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
                            abstract)
    return restore(manager, step, mean=ocp.args.StandardRestore(abstract)).mean


class CorruptCheckpoint(ValueError):
    """A checkpoint whose files cannot be read back."""


def restore(manager: ocp.CheckpointManager, step: int, **items) -> Any:
    """Restore ``items`` (orbax restore args by name) of ``step``, with a clear error."""
    try:
        return manager.restore(step, args=ocp.args.Composite(**items))
    except Exception as e:  # orbax raises many types for unreadable or mismatched files
        raise _corrupt(manager, step, e) from None


def restore_part(manager: ocp.CheckpointManager, step: int, item: str, abstract: Any) -> Any:
    """The part of item ``item`` of ``step`` that ``abstract`` names (a subtree), with
    `restore`'s error. A checkpointer of its own reads it: a partial restore through the
    manager would bind the item to another handler than the one that saves it."""
    path = os.path.join(str(manager.directory), str(step), item)
    args = ocp.checkpoint_utils.construct_restore_args(abstract)
    try:
        with ocp.Checkpointer(ocp.PyTreeCheckpointHandler()) as checkpointer:
            return checkpointer.restore(
                path, args=ocp.args.PyTreeRestore(abstract, restore_args=args, partial_restore=True)
            )
    except Exception as e:  # orbax raises many types for unreadable or mismatched files
        raise _corrupt(manager, step, e) from None


def _corrupt(manager: ocp.CheckpointManager, step: int, error: Exception) -> CorruptCheckpoint:
    detail = str(error).splitlines()[0] if str(error) else ""
    return CorruptCheckpoint(
        f"cannot restore checkpoint {step} in {manager.directory}: {type(error).__name__}: "
        f"{detail} -- the checkpoint is corrupted or was written by another config or code "
        f"version"
    )


def write_error(out: str, error: Exception, what: str = "a checkpoint") -> ValueError:
    """The error for a failed write of ``what`` to run directory ``out``."""
    detail = str(error).splitlines()[0] if str(error) else ""
    return ValueError(
        f"cannot write {what} to {out}: {type(error).__name__}: {detail} -- is the disk full or "
        f"the directory read-only? The checkpoints already written are kept: free space or fix "
        f"the permissions, then rerun with --resume"
    )


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
