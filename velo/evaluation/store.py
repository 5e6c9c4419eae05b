"""``results.json``: the record of an evaluation, and the cache that lets a re-run skip tasks.

The record holds the protocol, and per task its spec, every sweep (all curves) and the metrics.
It is rewritten atomically after each task, so an interrupted evaluation resumes where it
stopped. A directory whose record was made under another protocol is refused, never overwritten.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from velo import run_record
from velo.evaluation.sweep import Sweep

RESULTS = "results.json"
FORMAT = 1
SIGNIFICANT = 6  # digits kept per loss value: float32 holds ~7, and it halves the file size


def open_record(out: str, config: dict[str, Any]) -> dict[str, Any]:
    """The record in ``out`` if it was made under ``config``, else a fresh one.

    Raises:
      ValueError: ``out`` is not writable, or holds a record of another configuration.
    """
    run_record.check_writable(out)
    path = os.path.join(out, RESULTS)
    if not os.path.exists(path):
        return {"format": FORMAT, "config": config, "tasks": {}}
    try:
        with open(path) as f:
            record = json.load(f)
        stored = record["config"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path} is not an evaluation record ({e}); use another --out") from None
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


def cached_task(record: dict[str, Any], name: str, spec: dict[str, Any]) -> dict | None:
    """The finished entry of task ``name``, or None. Raises ValueError if its spec has changed."""
    entry = record["tasks"].get(name)
    if entry is not None and entry["spec"] != jsonable(spec):
        raise ValueError(
            f"task {name!r} in the record was built from another spec; the task definition has "
            f"changed since: choose another --out"
        )
    return entry


def save(out: str, record: dict[str, Any]) -> None:
    """Write ``record`` to ``out/results.json`` atomically."""
    path = os.path.join(out, RESULTS)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(record, f, separators=(",", ":"))
    os.replace(tmp, path)


def sweep_to_json(sweep: Sweep) -> dict[str, Any]:
    return {
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
