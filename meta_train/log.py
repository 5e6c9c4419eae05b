"""The run log: one JSON line per generation in ``out/log.jsonl``, and curves drawn from it."""

from __future__ import annotations

import json
import os

LOG_FILE = "log.jsonl"
PLOT_FILE = "meta_train.png"


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


def plot(out: str, path: str | None = None) -> str:
    """Draw meta-loss (per family), validation loss, ES step size and speed to a PNG; its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    records = read(out)
    train = [r for r in records if "meta_loss" in r]
    val = [r for r in records if "validation" in r]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    ax = axes[0, 0]
    gens = np.array([r["generation"] for r in train])
    if train:
        loss = np.array([r["meta_loss"] for r in train], float)
        window = max(1, len(loss) // 30)
        ax.plot(gens, loss, alpha=0.3, label="all tasks")
        if window > 1:
            smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
            ax.plot(gens[window - 1 :], smooth, label=f"mean of {window}")
        for family in sorted({f for r in train for f in r["family_loss"]}):
            pts = [(r["generation"], r["family_loss"][family]) for r in train
                   if family in r["family_loss"]]
            ax.plot(*zip(*pts, strict=True), ".", ms=2, alpha=0.5, label=family)
    ax.set(xlabel="generation", ylabel="normalised train loss (population mean)",
           title="meta-training loss", yscale="log")
    ax.legend(fontsize=7)
    ax = axes[0, 1]
    if val:
        ax.plot([r["generation"] for r in val], [r["validation"]["mean"] for r in val], "o-")
    ax.set(xlabel="generation", ylabel="normalised train loss of the mean",
           title="validation", yscale="log")
    ax = axes[1, 0]
    if train:
        ax.plot(gens, [r["sigma"] for r in train], label="ES sigma")
        ax.plot(gens, [r["update_norm"] for r in train], label="update norm")
    ax.set(xlabel="generation", yscale="log", title="ES step")
    ax.legend(fontsize=7)
    ax = axes[1, 1]
    if train:
        ax.plot(gens, [r["model_steps_per_s"] for r in train])
    ax.set(xlabel="generation", ylabel="inner model-steps/s", title="throughput")
    fig.tight_layout()
    path = path or os.path.join(out, PLOT_FILE)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
