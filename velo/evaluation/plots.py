"""PNG figures of an evaluation: training curves per task and the per-task speed-up chart."""

from __future__ import annotations

import math

import numpy as np

from velo.evaluation.metrics import TaskMetrics


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def loss_curves(path: str, curves: dict[str, dict[str, np.ndarray]]) -> str:
    """One panel per task, one line per optimizer: its smoothed training curve at its chosen rate.

    Args:
      path: the PNG to write.
      curves: task name -> optimizer name -> ``[budget]`` smoothed losses.

    Returns:
      ``path``.
    """
    plt = _pyplot()
    cols = min(4, len(curves))
    rows = math.ceil(len(curves) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    for ax, (task, per_opt) in zip(axes.flat, curves.items(), strict=False):
        for name, curve in per_opt.items():
            ax.plot(np.arange(1, len(curve) + 1), curve, label=name, linewidth=1.2)
        positive = all(np.nanmin(c) > 0 for c in per_opt.values() if np.isfinite(c).any())
        ax.set(title=task, xlabel="step", ylabel="train loss (EMA)",
               yscale="log" if positive else "linear")
    for ax in axes.flat[len(curves):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def speedups(path: str, metrics: dict[str, dict[str, TaskMetrics]]) -> str:
    """Grouped bars of each optimizer's speed-up over tuned Adam per task; hatched bars are lower
    bounds (Adam never reached that loss). Returns ``path``."""
    plt = _pyplot()
    tasks = list(metrics)
    names = list(next(iter(metrics.values())))
    width = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(tasks) * len(names) * width + 3), 4))
    x = np.arange(len(tasks))
    for i, name in enumerate(names):
        ms = [metrics[t][name] for t in tasks]
        bars = ax.bar(x + (i - (len(names) - 1) / 2) * width, [m.speedup for m in ms], width,
                      label=name)
        for bar, m in zip(bars, ms, strict=True):
            if m.speedup_censored:
                bar.set_hatch("//")
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_xticks(x, tasks, rotation=30, ha="right", fontsize="small")
    ax.set(ylabel="speed-up over tuned Adam", title="Adam steps needed / budget")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
