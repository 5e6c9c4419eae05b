"""Write a training run to disk: ``run.json`` (config and curve) and ``curve.png``."""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np


def check_writable(out: str) -> str:
    """Create ``out`` if needed and make sure files can be written there; returns its path."""
    try:
        os.makedirs(out, exist_ok=True)
        probe = os.path.join(out, ".velo-write-test")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as e:
        raise ValueError(f"cannot write to --out {out!r}: {e.strerror}") from None
    return out


def write_run(out: str, config: dict[str, Any], losses: np.ndarray, test: dict[str, float]) -> None:
    """Save ``config``, the ``[num_steps]`` loss curve and the test metrics under ``out``."""
    record = {"config": config, "losses": [float(x) for x in losses], "test": test}
    with open(os.path.join(out, "run.json"), "w") as f:
        json.dump(record, f, indent=1)
    plot_curve(os.path.join(out, "curve.png"), losses, title=config.get("task", ""))


def plot_curve(path: str, losses: np.ndarray, title: str = "") -> None:
    """Plot a training-loss curve, raw and smoothed, on a log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.arange(1, len(losses) + 1)
    window = max(1, len(losses) // 50)
    smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(steps, losses, alpha=0.3, label="minibatch")
    ax.plot(steps[window - 1 :], smooth, label=f"mean of {window}")
    ax.set(xlabel="step", ylabel="train loss", yscale="log", title=title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
