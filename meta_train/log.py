"""The run log: one strict-JSON line per generation in ``out/log.jsonl``, and TensorBoard.

Every line parses with a strict JSON parser: a non-finite number (a task where every member
diverged has an infinite meta-loss) is written as ``null``, and the record's ``nonfinite_values``
counts how many were. With ``tensorboard`` set, the same records also go to TensorBoard event
files (`velo.tensorboard`): meta-loss overall and per family, validation, ES sigma, update norm
and throughput, by generation.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time

import numpy as np

LOG_FILE = "log.jsonl"
# Record fields drawn in TensorBoard, under these tags.
_SCALARS = {"meta_loss": "meta_loss/all", "sigma": "es/sigma", "update_norm": "es/update_norm",
            "model_steps_per_s": "throughput/model_steps_per_s",
            "nonfinite_fraction": "meta_loss/nonfinite_fraction"}


class RunLog:
    """Appends generation records to ``out/log.jsonl`` (process 0 only), and to TensorBoard
    event files in ``tensorboard`` if given."""

    def __init__(self, out: str, enabled: bool = True, tensorboard: str | None = None):
        self.path = os.path.join(out, LOG_FILE)
        self.enabled = enabled
        self.tensorboard = tensorboard
        self.board = None

    def truncate(self, generation: int) -> None:
        """Drop records after ``generation`` (all at 0): a run started there recomputes them.

        A last line cut short by a crash mid-write is dropped too. TensorBoard hides the events
        after ``generation`` in the same way."""
        if self.enabled and self.tensorboard:
            from velo.tensorboard import open_writer

            self.board = open_writer(self.tensorboard, purge_step=generation + (generation > 0))
        if self.enabled and os.path.exists(self.path):
            kept = [r for r in _records(self.path, torn_ok=True)
                    if generation and r["generation"] <= generation]
            tmp = self.path + ".tmp"
            with _writing(self.path):
                with open(tmp, "w") as f:
                    f.writelines(json.dumps(r, allow_nan=False) + "\n" for r in kept)
                os.replace(tmp, self.path)

    def write(self, record: dict) -> dict:
        """Append ``record`` with non-finite numbers as None; returns what was written."""
        record, count = _finite(record)
        record["nonfinite_values"] = count
        if self.enabled:
            with _writing(self.path), open(self.path, "a") as f:
                f.write(json.dumps(record, allow_nan=False) + "\n")
            if self.board is not None:
                _draw(self.board, record)
        return record

    def close(self) -> None:
        if self.board is not None:
            self.board.close()


@contextlib.contextmanager
def _writing(path: str):
    """Turn a failed write of ``path`` into the run store's clear error."""
    try:
        yield
    except OSError as e:
        from meta_train.store import write_error

        raise write_error(os.path.dirname(path), e, what=os.path.basename(path)) from None


def _finite(value):
    """``(value with every non-finite float replaced by None, how many were)``."""
    if isinstance(value, dict):
        pairs = [(k, _finite(v)) for k, v in value.items()]
        return {k: v for k, (v, _) in pairs}, sum(n for _, (_, n) in pairs)
    if isinstance(value, list | tuple):
        items = [_finite(v) for v in value]
        return [v for v, _ in items], sum(n for _, n in items)
    if isinstance(value, float) and not math.isfinite(value):
        return None, 1
    return value, 0


def _draw(board, record: dict) -> None:
    step = record["generation"]
    for field, tag in _SCALARS.items():
        if record.get(field) is not None:
            board.add_scalar(tag, record[field], step)
    for family, loss in record.get("family_loss", {}).items():
        if loss is not None:
            board.add_scalar(f"meta_loss/{family}", loss, step)
    validation = record.get("validation", {})
    for name, loss in validation.items():
        if name != "diverged" and loss is not None:
            board.add_scalar(f"validation/{name}", loss, step)
    board.flush()


def read(out: str) -> list[dict]:
    """Every record of run directory ``out``'s log."""
    path = os.path.join(out, LOG_FILE)
    if not os.path.exists(path):
        raise ValueError(f"no {LOG_FILE} in {out}; is it a `velo meta-train --out` directory?")
    return _records(path, torn_ok=False)


def _records(path: str, torn_ok: bool) -> list[dict]:
    """The records of log ``path``; with ``torn_ok`` an unparsable last line is dropped."""
    with open(path) as f:
        lines = [line for line in f if line.strip()]
    records = []
    for i, line in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            if torn_ok and i == len(lines) - 1:
                break
            raise ValueError(f"{path} line {i + 1} is not JSON ({e}); the log is damaged") from None
    return records


def train_record(generation: int, task_list: list, fitness: np.ndarray, sigma: float,
                 update_norm: float, steps: int, elapsed: float, compile_s: float) -> dict:
    """The log record of generation ``generation`` (1-based: generations completed).

    Args:
      task_list: the generation's tasks.
      fitness: ``[tasks, population]`` normalised training losses.
      sigma: mean ES standard deviation after the update.
      update_norm: norm of the mean meta-parameters' update.
      steps: inner model steps trained.
      elapsed: seconds of the generation, of which ``compile_s`` compiling.
    """
    finite = np.isfinite(fitness)
    per_task = [float(np.mean(row[ok])) if ok.any() else float("inf")
                for row, ok in zip(fitness, finite, strict=True)]
    families: dict[str, list[float]] = {}
    for task, loss in zip(task_list, per_task, strict=True):
        families.setdefault(str(task.spec.get("family", task.name)), []).append(loss)
    return {
        "generation": generation,
        "meta_loss": float(np.mean(per_task)),
        "family_loss": {f: float(np.mean(v)) for f, v in families.items()},
        "tasks": [t.name for t in task_list],
        "nonfinite_fraction": float(1.0 - finite.mean()),
        "sigma": sigma,
        "update_norm": update_norm,
        "generation_s": elapsed,
        "compile_s": compile_s,
        "model_steps_per_s": steps / max(elapsed - compile_s, 1e-9),
        "time": time.time(),
    }
