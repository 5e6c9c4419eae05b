"""The readable outputs: ``summary.csv`` (one row per task and optimizer) and ``report.md``."""

from __future__ import annotations

import csv
import os

from velo.evaluation.aggregate import Summary
from velo.evaluation.metrics import TaskMetrics, reaches_adam
from velo.evaluation.protocol import REFERENCE, Protocol


def _speedup(m: TaskMetrics) -> str:
    return f"{'>' if m.speedup_censored else ''}{m.speedup:.2f}"


def _optional(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def summary_table(summary: dict[str, Summary]) -> str:
    """Markdown table of the across-task summary, best mean rank first.

    "beats Adam 1e-3" is `Summary.beats_default_adam_rate`, "reaches Adam" `reaches_adam_rate`."""
    lines = [
        "| optimizer | win rate vs tuned Adam | mean rank | speed-up IQM | speed-up median "
        "| divergences | time/step vs Adam | beats Adam 1e-3 | reaches Adam |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in sorted(summary.items(), key=lambda kv: kv[1].mean_rank):
        win = "-" if s.win_rate is None else f"{s.win_rate:.0%} of {s.tasks}"
        lines.append(
            f"| {name} | {win} | {s.mean_rank:.2f} | {s.speedup_iqm:.2f} | {s.speedup_median:.2f} "
            f"| {s.divergences} | {s.time_vs_adam:.2f}x | {s.beats_default_adam_rate:.0%} "
            f"| {_optional(s.reaches_adam_rate, '.0%')} |"
        )
    return "\n".join(lines)


def task_table(metrics: dict[str, dict[str, TaskMetrics]]) -> str:
    """Markdown table with one row per task and optimizer; "beats Adam 1e-3" is
    `TaskMetrics.beats_default_adam`, and a number under "steps to Adam's loss" means it reached
    tuned Adam's final loss within the budget."""
    lines = [
        "| task | optimizer | final train loss | test loss | test accuracy | speed-up "
        "| steps to Adam's loss | beats Adam 1e-3 | learning rate | us/step "
        "| forward passes/step |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for task, per_opt in metrics.items():
        for name, m in per_opt.items():
            loss = f"{m.final_loss:.4g}" + (" (diverged)" if m.diverged else "")
            lr = _optional(m.learning_rate, ".3g") + ("*" if m.lr_at_edge else "")
            beats = "yes" if m.beats_default_adam else "no"
            lines.append(
                f"| {task} | {name} | {loss} | {_optional(m.test.get('loss'), '.4g')} "
                f"| {_optional(m.test.get('accuracy'), '.2%')} | {_speedup(m)} "
                f"| {_optional(m.steps_to_adam, '.0f')} | {beats} "
                f"| {lr} | {m.seconds_per_step * 1e6:.0f} "
                f"| {_optional(m.forward_passes_per_step, '.2f')} |"
            )
    return "\n".join(lines)


def write_csv(path: str, metrics: dict[str, dict[str, TaskMetrics]]) -> str:
    """Write ``summary.csv``: the `TaskMetrics` fields, ``reaches_adam`` (`metrics.reaches_adam`),
    and test metrics as ``test_<name>`` columns. Returns ``path``."""
    test_keys = sorted({k for row in metrics.values() for m in row.values() for k in m.test})
    fields = [f for f in TaskMetrics._fields if f != "test"]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["task", "optimizer", *fields, "reaches_adam",
                         *(f"test_{k}" for k in test_keys)])
        for task, per_opt in metrics.items():
            for name, m in per_opt.items():
                row = [getattr(m, field) for field in fields]
                writer.writerow([task, name, *("" if v is None else v for v in row),
                                 reaches_adam(m), *(m.test.get(k, "") for k in test_keys)])
    return path


def write_markdown(
    path: str,
    protocol: Protocol,
    metrics: dict[str, dict[str, TaskMetrics]],
    summary: dict[str, Summary],
    files: dict[str, str],
    learned_optimizer: str | None = None,
) -> str:
    """Write ``report.md``: the protocol, the summary and per-task tables, the plots.

    ``learned_optimizer`` names the learned optimizer's weights, when it was run."""
    p = protocol
    budget = f"{p.steps} steps" if p.steps is not None else "each task's default steps"
    text = f"""# velo evaluation: {p.suite} suite

Optimizers: {', '.join(p.optimizers)}. Budget: {budget}; {p.seeds} seed(s) per run.
Learned optimizer: {learned_optimizer or 'not run'}.
Tuned baselines: {p.grid_size} learning rates, a factor {p.grid_ratio:.3g} apart around each
default, best by smoothed final training loss; learned and learning-rate-free optimizers untuned.
Training curves are smoothed by an EMA of {p.ema_decay}. Speed-up (VeLO's metric): the steps
{REFERENCE.capitalize()} needs, on the monotone lower envelope of its smoothed curves over all
learning rates and a horizon of {p.reference_factor}x the budget, to reach the optimizer's final
loss, divided by the budget (">" marks a lower bound: Adam never got there).

## Across {len(metrics)} task(s)

{summary_table(summary)}

Win rate: share of tasks with a lower final training loss than tuned Adam. Mean rank: by final
training loss among these optimizers (1 = best, a diverged run ranks last). IQM: mean of the middle
half of the per-task speed-ups. Time per step: geometric mean over tasks. Beats Adam 1e-3: share of
tasks with a lower final training loss than untuned Adam at its default learning rate 1e-3 (a
diverged run never beats it). Reaches Adam: share of tasks where the optimizer's smoothed loss got
down to tuned Adam's final loss within the budget, without diverging.

## Per task

{task_table(metrics)}

`*` the chosen learning rate is at the edge of the grid. Steps to Adam's loss: steps to reach tuned
Adam's final loss ("-": not within the budget). us/step: wall time of one step of one run:
the batched program's time per step divided by its runs ({p.grid_size} rates x {p.seeds} seeds for
tuned baselines, {p.seeds} for the others), so on small tasks the larger batches of the tuned
baselines amortise more overhead. Forward passes per step count line-search trials.

## Plots

![training loss per task]({os.path.basename(files['curves'])})

![speed-up per task]({os.path.basename(files['speedup'])})
"""
    with open(path, "w") as f:
        f.write(text)
    return path
