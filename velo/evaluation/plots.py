"""PNG figures of an evaluation: training curves per task, speed-ups per task against both
references, and the median speed-up per model family with its bootstrap interval."""

from __future__ import annotations

import math

import numpy as np

from velo import optimizers
from velo.evaluation.aggregate import FamilySummary
from velo.evaluation.metrics import TaskMetrics
from velo.evaluation.protocol import COSINE, REFERENCE

# The two references are drawn in black and grey (solid: Adam, dashed: adamw_cosine) and the
# learned optimizer thick in red, so they stand out of the other baselines' colours everywhere.
STYLES = {
    REFERENCE: {"color": "black", "linestyle": "-", "linewidth": 1.6},
    COSINE: {"color": "dimgray", "linestyle": "--", "linewidth": 1.6},
    optimizers.LEARNED: {"color": "tab:red", "linewidth": 2.2},
}
OTHER_COLOURS = ("tab:blue", "tab:green", "tab:purple", "tab:orange", "tab:brown", "tab:pink",
                 "tab:olive", "tab:cyan", "tab:gray")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _styles(names: list[str]) -> dict[str, dict]:
    """Line style per optimizer: `STYLES` for the references and velo, colours for the rest."""
    others = iter(OTHER_COLOURS * (1 + len(names) // len(OTHER_COLOURS)))
    return {n: STYLES.get(n) or {"color": next(others), "linewidth": 1.1} for n in names}


def _label(name: str) -> str:
    return f"{name} (reference)" if name in (REFERENCE, COSINE) else name


def loss_curves(path: str, curves: dict[str, dict[str, np.ndarray]]) -> str:
    """One panel per task, one line per optimizer: its smoothed training curve at its chosen rate;
    a dotted line at each reference's final loss.

    Args:
      path: the PNG to write.
      curves: task name -> optimizer name -> ``[budget]`` smoothed losses.

    Returns:
      ``path``.
    """
    plt = _pyplot()
    names = list(dict.fromkeys(n for per_opt in curves.values() for n in per_opt))
    styles = _styles(names)
    cols = min(4, len(curves))
    rows = math.ceil(len(curves) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows + 0.6), squeeze=False)
    for ax, (task, per_opt) in zip(axes.flat, curves.items(), strict=False):
        finite = [c[np.isfinite(c)] for c in per_opt.values()]
        for name, curve in per_opt.items():
            ax.plot(np.arange(1, len(curve) + 1), curve, **styles[name])
            if name in (REFERENCE, COSINE) and np.isfinite(curve[-1]):
                ax.axhline(curve[-1], color="black", linestyle=":", linewidth=0.8)
        positive = all(len(c) == 0 or c.min() > 0 for c in finite)
        ax.set_yscale("log" if positive else "linear")
        _zoom(ax, finite, positive)
        if positive:
            _plain_log_ticks(ax)
        ax.set_title(task, fontsize="medium")
        ax.set_xlabel("step", fontsize="small")
        ax.set_ylabel("train loss (EMA)", fontsize="small")
        ax.tick_params(labelsize="x-small")
    for ax in axes.flat[len(curves):]:
        ax.axis("off")
    handles = [plt.Line2D([], [], **styles[n]) for n in names]
    handles.append(plt.Line2D([], [], color="black", linestyle=":", linewidth=0.8))
    labels = [*(_label(n) for n in names), "references' final loss"]
    fig.legend(handles, labels, loc="upper center", ncol=min(7, len(labels)), fontsize="small",
               frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _zoom(ax, finite: list[np.ndarray], log: bool) -> None:
    """Show from just below the lowest loss to the highest loss after the first tenth of the
    budget, so the end of the curves, where optimizers differ, is not squeezed by the first
    steps' high losses."""
    if not any(len(c) for c in finite):
        return
    low = min(c.min() for c in finite if len(c))
    high = max(c[len(c) // 10] for c in finite if len(c))
    if log:
        span = math.log10(high / low) if high > low else 0.1
        ax.set_ylim(low / 10 ** (0.05 * span), high * 10 ** (0.05 * span))
    else:
        span = high - low if high > low else 1.0
        ax.set_ylim(low - 0.05 * span, high + 0.05 * span)


def _plain_log_ticks(ax) -> None:
    """Log-axis ticks at 1, 2 and 5 per decade, printed as plain numbers (0.02, not 2x10^-2)."""
    from matplotlib import ticker

    ax.yaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:.3g}"))
    ax.yaxis.set_minor_formatter(ticker.NullFormatter())


def speedups(path: str, metrics: dict[str, dict[str, TaskMetrics]]) -> str:
    """Grouped bars of each optimizer's speed-up per task, one panel per reference; hatched bars
    are lower bounds (the reference never reached that loss). Returns ``path``."""
    plt = _pyplot()
    tasks = list(metrics)
    names = list(next(iter(metrics.values())))
    panels = [("speedup", "speedup_censored", "tuned Adam")]
    if COSINE in names:
        panels.append(("cosine_speedup", "cosine_speedup_censored", f"tuned {COSINE}"))
    colours = {n: s["color"] for n, s in _styles(names).items()}
    width = 0.8 / len(names)
    fig, axes = plt.subplots(len(panels), 1, squeeze=False,
                             figsize=(max(7.0, 0.35 * len(tasks) * len(names) + 3),
                                      3.6 * len(panels) + 0.8))
    x = np.arange(len(tasks))
    for ax, (field, censored, title) in zip(axes[:, 0], panels, strict=True):
        for i, name in enumerate(names):
            ms = [metrics[t][name] for t in tasks]
            bars = ax.bar(x + (i - (len(names) - 1) / 2) * width, [getattr(m, field) for m in ms],
                          width, label=name, color=colours[name])
            for bar, m in zip(bars, ms, strict=True):
                if getattr(m, censored):
                    bar.set_hatch("//")
        ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
        ax.set_xticks(x, tasks, rotation=30, ha="right", fontsize="small")
        ax.set_ylabel(f"speed-up over {title}", fontsize="small")
        ax.set_title(f"{title} steps needed / budget (hatched: lower bound)", fontsize="medium")
    axes[0, 0].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def families(path: str, by_family: dict[str, dict[str, FamilySummary]]) -> str:
    """Bars of each optimizer's median speed-up per model family with 95 % bootstrap intervals,
    one panel per reference. Returns ``path``."""
    plt = _pyplot()
    fams = list(by_family)
    names = list(next(iter(by_family.values())))
    panels = [("speedup_median", "speedup_median_ci", "tuned Adam")]
    if any(f.cosine_speedup_median is not None for f in next(iter(by_family.values())).values()):
        panels.append(("cosine_speedup_median", "cosine_speedup_median_ci", f"tuned {COSINE}"))
    colours = {n: s["color"] for n, s in _styles(names).items()}
    width = 0.8 / len(names)
    fig, axes = plt.subplots(1, len(panels), squeeze=False,
                             figsize=(max(6.0, 0.4 * len(fams) * len(names) + 2) * len(panels),
                                      4.2))
    x = np.arange(len(fams))
    for ax, (field, ci, title) in zip(axes[0], panels, strict=True):
        for i, name in enumerate(names):
            rows = [by_family[f][name] for f in fams]
            values = np.array([getattr(r, field) for r in rows])
            bounds = np.array([getattr(r, ci) for r in rows])
            ax.bar(x + (i - (len(names) - 1) / 2) * width, values, width, label=name,
                   color=colours[name], yerr=np.abs(bounds.T - values), capsize=2,
                   error_kw={"linewidth": 0.8})
        ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
        labels = [f"{f}\n({next(iter(by_family[f].values())).tasks} tasks)" for f in fams]
        ax.set_xticks(x, labels, fontsize="small")
        ax.set_ylabel(f"median speed-up over {title}", fontsize="small")
        ax.set_title(f"per family, vs {title} (bars: 95% bootstrap interval)", fontsize="medium")
    axes[0, -1].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
