"""``results.json``: the record of an evaluation, and the cache that lets a re-run skip sweeps.

The record holds the `Protocol.comparable` fields (its identity), and per task its spec, budget
and one sweep (all curves) per optimizer, each with the identity of what was run (learning-rate
grid, learned-optimizer weights); then the metrics of the latest run. A sweep is reused while its
identity holds, so adding an optimizer or changing the checkpoint runs only what is new. The
record is rewritten atomically after each sweep, so an interrupted evaluation resumes where it
stopped. A directory whose record was made under other comparable fields is refused, never
overwritten.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from velo import run_record
from velo.evaluation.sweep import Sweep

RESULTS = "results.json"
FORMAT = 2  # 2: sweeps cached per (task, optimizer) with an identity; 1 cached whole tasks
SIGNIFICANT = 6  # digits kept per loss value: float32 holds ~7, and it halves the file size


def open_record(out: str, config: dict[str, Any], filename: str = RESULTS,
                version: int = FORMAT) -> dict[str, Any]:
    """The record ``out/filename`` if it was made under ``config`` in format ``version``, else a
    fresh one (`velo eval`'s results by default; `velo stability` keeps its own file).

    Raises:
      ValueError: ``out`` is not writable, or holds a record of another format or configuration.
    """
    run_record.check_writable(out)
    path = os.path.join(out, filename)
    if not os.path.exists(path):
        return {"format": version, "config": config, "tasks": {}}
    try:
        with open(path) as f:
            record = json.load(f)
        stored, stored_format = record["config"], record["format"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path} is not a velo record ({e}); use another --out") from None
    if stored_format != version:
        raise ValueError(
            f"{path} is in results format {stored_format}, this velo reads format {version}; "
            f"choose another --out or delete {path} to re-run"
        )
    if stored != config:
        diff = ", ".join(
            f"{k}: {stored.get(k)!r} there, {config.get(k)!r} now"
            for k in sorted(set(stored) | set(config)) if stored.get(k) != config.get(k)
        )
        raise ValueError(
            f"--out {out!r} holds results of a different configuration ({diff}); "
            f"choose another --out or delete {path}"
        )
    return record


def task_entry(record: dict[str, Any], name: str, spec: dict[str, Any],
               budget: int) -> dict[str, Any]:
    """The entry of task ``name`` in ``record``, added empty if missing.

    Raises:
      ValueError: the entry was made from another spec or budget (the task definition changed).
    """
    fresh = {"spec": jsonable(spec), "budget": budget, "sweeps": {}}
    entry = record["tasks"].setdefault(name, fresh)
    if (entry["spec"], entry["budget"]) != (fresh["spec"], budget):
        raise ValueError(
            f"task {name!r} in the record was built from another spec or budget; the task "
            f"definition has changed since: choose another --out"
        )
    return entry


def is_cached(entry: dict[str, Any], name: str, identity: str) -> bool:
    """Whether a task ``entry`` holds optimizer ``name``'s sweep as run under ``identity``."""
    return entry["sweeps"].get(name, {}).get("identity") == identity


def save(out: str, record: dict[str, Any], filename: str = RESULTS) -> None:
    """Write ``record`` to ``out/filename`` atomically."""
    path = os.path.join(out, filename)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(record, f, separators=(",", ":"))
    os.replace(tmp, path)


def sweep_to_json(sweep: Sweep, identity: str) -> dict[str, Any]:
    return {
        "identity": identity,
        "learning_rates": sweep.learning_rates,
        "losses": _rounded(sweep.losses).tolist(),
        "test": {k: np.asarray(v, np.float64).tolist() for k, v in sweep.test.items()},
        "forward_passes": None if sweep.forward_passes is None else sweep.forward_passes.tolist(),
        "seconds_per_step": sweep.seconds_per_step,
        "compile_seconds": sweep.compile_seconds,
    }


def sweep_from_json(data: dict[str, Any]) -> Sweep:
    forward = data["forward_passes"]
    return Sweep(
        learning_rates=data["learning_rates"],
        losses=np.asarray(data["losses"], np.float32),
        test={k: np.asarray(v) for k, v in data["test"].items()},
        forward_passes=None if forward is None else np.asarray(forward),
        seconds_per_step=data["seconds_per_step"],
        compile_seconds=data["compile_seconds"],
    )


def _rounded(x: np.ndarray) -> np.ndarray:
    """``x`` as float64 rounded to `SIGNIFICANT` digits, so JSON prints short numbers.

    Non-finite values stay as they are (JSON ``NaN`` / ``Infinity``, as Python's json writes).
    """
    x = np.asarray(x, np.float64)
    finite = np.isfinite(x) & (x != 0)
    exponent = np.floor(np.log10(np.abs(np.where(finite, x, 1.0))))
    scale = 10.0 ** (SIGNIFICANT - 1 - exponent)
    return np.where(finite, np.round(x * scale) / scale, x)


def jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value))
