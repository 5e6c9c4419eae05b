"""The run log: one JSON line per generation in ``out/log.jsonl``."""

from __future__ import annotations

import json
import os
import time

import numpy as np

LOG_FILE = "log.jsonl"


class RunLog:
    """Appends generation records to ``out/log.jsonl`` (process 0 only)."""

    def __init__(self, out: str, enabled: bool = True):
        self.path = os.path.join(out, LOG_FILE)
        self.enabled = enabled

    def truncate(self, generation: int) -> None:
        """Drop records after ``generation`` (all at 0): a run started there recomputes them."""
        if self.enabled and os.path.exists(self.path):
            kept = [r for r in read(os.path.dirname(self.path))
                    if generation and r["generation"] <= generation]
            with open(self.path, "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in kept)

    def write(self, record: dict) -> None:
        if self.enabled:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")


def read(out: str) -> list[dict]:
    """Every record of run directory ``out``'s log."""
    path = os.path.join(out, LOG_FILE)
    if not os.path.exists(path):
        raise ValueError(f"no {LOG_FILE} in {out}; is it a `velo meta-train --out` directory?")
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


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
