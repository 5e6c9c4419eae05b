"""The run log: one JSON line per generation in ``out/log.jsonl``."""

from __future__ import annotations

import json
import os

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
