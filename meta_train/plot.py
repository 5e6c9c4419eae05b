"""Curves of a meta-training run, drawn from its log to a PNG."""

from __future__ import annotations

import os

from meta_train.log import read

PLOT_FILE = "meta_train.png"


def plot(out: str, path: str | None = None) -> str:
    """Draw meta-loss (per family), validation loss, ES step size and speed to a PNG; its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    records = read(out)
    train = [r for r in records if "meta_loss" in r]
    val = [r for r in records if r.get("validation", {}).get("mean") is not None]  # not diverged
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
        hours = dict(zip([r["generation"] for r in records], device_hours(records), strict=True))
        ax.plot([hours[r["generation"]] for r in val], [r["validation"]["mean"] for r in val],
                "o-")
    ax.set(xlabel="device-hours (generations, compiles and validation)",
           ylabel="normalised train loss of the mean", title="validation", yscale="log")
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


def device_hours(records: list[dict]) -> list[float]:
    """Per log record, the hours spent up to and including it: each generation's seconds (its
    compiles included) plus validation seconds. On one CPU device, core-hours of the run."""
    seconds, out = 0.0, []
    for r in records:
        seconds += r.get("generation_s", 0.0) + r.get("validation_s", 0.0)
        out.append(seconds / 3600.0)
    return out
