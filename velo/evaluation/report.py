"""The readable outputs: ``summary.csv`` (a row per task and optimizer, then a row per optimizer
over the suite) and ``report.md``."""

from __future__ import annotations

import csv
import os

from velo.evaluation.aggregate import FamilySummary, Summary, stronger_baseline
from velo.evaluation.metrics import TaskMetrics, reaches_adam, reaches_cosine
from velo.evaluation.protocol import COSINE, REFERENCE, Protocol

ALL_TASKS = "ALL"  # the task column of summary.csv's suite-level rows


def _speedup(value: float | None, censored: bool | None) -> str:
    return "-" if value is None else f"{'>' if censored else ''}{value:.2f}"


def _optional(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _with_interval(value, interval, fmt: str) -> str:
    """``"0.77 [0.61, 0.93]"``, or ``"-"`` for ``None``."""
    if value is None:
        return "-"
    return f"{format(value, fmt)} [{format(interval[0], fmt)}, {format(interval[1], fmt)}]"


def summary_table(summary: dict[str, Summary]) -> str:
    """Markdown table of the across-task summary against tuned Adam, best mean rank first.

    "beats Adam 1e-3" is `Summary.beats_default_adam_rate`, "reaches Adam" `reaches_adam_rate`;
    brackets hold bootstrap 95 % intervals over tasks and seeds."""
    lines = [
        "| optimizer | win rate vs tuned Adam [95% CI] | mean rank | speed-up IQM [95% CI] "
        "| speed-up median | divergences | time/step vs Adam | beats Adam 1e-3 | reaches Adam |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in sorted(summary.items(), key=lambda kv: kv[1].mean_rank):
        lines.append(
            f"| {name} | {_with_interval(s.win_rate, s.win_rate_ci, '.0%')} | {s.mean_rank:.2f} "
            f"| {_with_interval(s.speedup_iqm, s.speedup_iqm_ci, '.2f')} "
            f"| {s.speedup_median:.2f} | {s.divergences} | {s.time_vs_adam:.2f}x "
            f"| {s.beats_default_adam_rate:.0%} | {_optional(s.reaches_adam_rate, '.0%')} |"
        )
    return "\n".join(lines)


def cosine_table(summary: dict[str, Summary]) -> str:
    """Markdown table of the across-task summary against tuned ``adamw_cosine`` (or a line saying
    it was not run), best mean rank first."""
    if all(s.cosine_speedup_iqm is None for s in summary.values()):
        return (f"{COSINE} was not run, so there is no second reference: add it to "
                f"--optimizers (e.g. --optimizers velo,adam,{COSINE}).")
    lines = [
        f"| optimizer | win rate vs tuned {COSINE} [95% CI] | speed-up IQM [95% CI] "
        f"| speed-up median | reaches {COSINE} |",
        "|---|---|---|---|---|",
    ]
    for name, s in sorted(summary.items(), key=lambda kv: kv[1].mean_rank):
        lines.append(
            f"| {name} | {_with_interval(s.cosine_win_rate, s.cosine_win_rate_ci, '.0%')} "
            f"| {_with_interval(s.cosine_speedup_iqm, s.cosine_speedup_iqm_ci, '.2f')} "
            f"| {_optional(s.cosine_speedup_median, '.2f')} "
            f"| {_optional(s.reaches_cosine_rate, '.0%')} |"
        )
    return "\n".join(lines)


def family_table(families: dict[str, dict[str, FamilySummary]]) -> str:
    """Markdown table: per model family and optimizer, win rates and median speed-ups against
    both references."""
    lines = [
        f"| family | tasks | optimizer | win rate vs Adam | win rate vs {COSINE} "
        f"| median speed-up vs Adam [95% CI] | median speed-up vs {COSINE} [95% CI] |",
        "|---|---|---|---|---|---|---|",
    ]
    for family, per_opt in families.items():
        for name, f in per_opt.items():
            lines.append(
                f"| {family} | {f.tasks} | {name} | {_optional(f.win_rate, '.0%')} "
                f"| {_optional(f.cosine_win_rate, '.0%')} "
                f"| {_with_interval(f.speedup_median, f.speedup_median_ci, '.2f')} "
                f"| {_with_interval(f.cosine_speedup_median, f.cosine_speedup_median_ci, '.2f')} |"
            )
    return "\n".join(lines)


def baselines_table(metrics: dict[str, dict[str, TaskMetrics]], families: dict[str, str]) -> str:
    """Markdown table naming the stronger of the two references on each task."""
    lines = [f"| task | family | tuned Adam final loss | tuned {COSINE} final loss "
             f"| stronger baseline |", "|---|---|---|---|---|"]
    for task, per_opt in metrics.items():
        cosine = per_opt.get(COSINE)
        lines.append(
            f"| {task} | {families[task]} | {per_opt[REFERENCE].final_loss:.4g} "
            f"| {'not run' if cosine is None else format(cosine.final_loss, '.4g')} "
            f"| {stronger_baseline(per_opt) or '-'} |"
        )
    return "\n".join(lines)


def task_table(metrics: dict[str, dict[str, TaskMetrics]]) -> str:
    """Markdown table with one row per task and optimizer; "beats Adam 1e-3" is
    `TaskMetrics.beats_default_adam`, and a number under "steps to Adam's loss" means it reached
    tuned Adam's final loss within the budget (likewise for ``adamw_cosine``)."""
    lines = [
        "| task | optimizer | final train loss | test loss | test accuracy | speed-up "
        f"| speed-up vs {COSINE} | steps to Adam's loss | steps to {COSINE}'s loss "
        "| beats Adam 1e-3 | learning rate | us/step | forward passes/step |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for task, per_opt in metrics.items():
        for name, m in per_opt.items():
            loss = f"{m.final_loss:.4g}" + (" (diverged)" if m.diverged else "")
            lr = _optional(m.learning_rate, ".3g") + ("*" if m.lr_at_edge else "")
            beats = "yes" if m.beats_default_adam else "no"
            lines.append(
                f"| {task} | {name} | {loss} | {_optional(m.test.get('loss'), '.4g')} "
                f"| {_optional(m.test.get('accuracy'), '.2%')} "
                f"| {_speedup(m.speedup, m.speedup_censored)} "
                f"| {_speedup(m.cosine_speedup, m.cosine_speedup_censored)} "
                f"| {_optional(m.steps_to_adam, '.0f')} | {_optional(m.steps_to_cosine, '.0f')} "
                f"| {beats} | {lr} | {m.seconds_per_step * 1e6:.0f} "
                f"| {_optional(m.forward_passes_per_step, '.2f')} |"
            )
    return "\n".join(lines)


def _summary_columns() -> list[str]:
    """Summary fields for the CSV, an interval as ``<field>_low`` and ``<field>_high``."""
    out = []
    for field in Summary._fields:
        stem = field.removesuffix("_ci")
        out += [f"{stem}_low", f"{stem}_high"] if field.endswith("_ci") else [field]
    return out


def _summary_values(s: Summary) -> list:
    out = []
    for field, value in s._asdict().items():
        if field.endswith("_ci"):
            out += [None, None] if value is None else list(value)
        else:
            out.append(value)
    return out


def write_csv(path: str, metrics: dict[str, dict[str, TaskMetrics]],
              summary: dict[str, Summary], families: dict[str, str]) -> str:
    """Write ``summary.csv``: per task and optimizer the `TaskMetrics` fields, ``reaches_adam``,
    ``reaches_cosine``, the task's stronger baseline and test metrics as ``test_<name>``; then
    per optimizer a row with task `ALL_TASKS` holding the `Summary` fields (intervals as
    ``_low``/``_high`` columns). Returns ``path``."""
    test_keys = sorted({k for row in metrics.values() for m in row.values() for k in m.test})
    fields = [f for f in TaskMetrics._fields if f != "test"]
    task_columns = [*fields, "reaches_adam", "reaches_cosine", "stronger_baseline",
                    *(f"test_{k}" for k in test_keys)]
    suite_columns = _summary_columns()
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["task", "optimizer", "family", *task_columns, *suite_columns])
        for task, per_opt in metrics.items():
            for name, m in per_opt.items():
                row = [getattr(m, field) for field in fields]
                row += [reaches_adam(m), reaches_cosine(m) if COSINE in per_opt else None,
                        stronger_baseline(per_opt), *(m.test.get(k) for k in test_keys)]
                writer.writerow([task, name, families[task], *_blank(row),
                                 *[""] * len(suite_columns)])
        for name, s in summary.items():
            writer.writerow([ALL_TASKS, name, "", *[""] * len(task_columns),
                             *_blank(_summary_values(s))])
    return path


def _blank(values: list) -> list:
    return ["" if v is None else v for v in values]


def write_markdown(
    path: str,
    protocol: Protocol,
    metrics: dict[str, dict[str, TaskMetrics]],
    summary: dict[str, Summary],
    families: dict[str, dict[str, FamilySummary]],
    task_families: dict[str, str],
    files: dict[str, str],
    learned_optimizer: str | None = None,
) -> str:
    """Write ``report.md``: the protocol, the summaries against both references, the per-family
    and per-task tables, the plots.

    ``learned_optimizer`` names the learned optimizer's weights, when it was run."""
    p = protocol
    text = f"""{_introduction(p, learned_optimizer)}

## Across {len(metrics)} task(s): against tuned Adam

{summary_table(summary)}

Win rate: share of tasks with a lower final training loss than tuned Adam. Mean rank: by final
training loss among these optimizers (1 = best, a diverged run ranks last). IQM: mean of the middle
half of the per-task speed-ups. Time per step: geometric mean over tasks. Beats Adam 1e-3: share of
tasks with a lower final training loss than untuned Adam at its default learning rate 1e-3 (a
diverged run never beats it). Reaches Adam: share of tasks where the optimizer's smoothed loss got
down to tuned Adam's final loss within the budget, without diverging. Brackets: bootstrap 95%
intervals (2,000 resamples of the tasks, then of the seeds within each task, fixed generator
seed), the metric recomputed on each resample's seeds with every optimizer on the same seeds
(same initialisation and batches) as the references.

## Across {len(metrics)} task(s): against tuned {COSINE}

{cosine_table(summary)}

## Stronger baseline per task

{baselines_table(metrics, task_families)}

## Per model family

{family_table(families)}

Median speed-up over the family's tasks; brackets: bootstrap 95% intervals over its tasks and
seeds (wide for a family of one or two tasks).

## Per task

{task_table(metrics)}

`*` the chosen learning rate is at the edge of the grid. Steps to Adam's loss: steps to reach tuned
Adam's final loss ("-": not within the budget), likewise for {COSINE}. us/step: wall time of one
step of one run: the batched program's time per step divided by its runs ({p.grid_size} rates x
{p.seeds} seeds for tuned baselines, {p.seeds} for the others), so on small tasks the larger
batches of the tuned baselines amortise more overhead. Forward passes per step count line-search
trials.

## Plots

![training loss per task]({os.path.basename(files['curves'])})

![speed-up per task]({os.path.basename(files['speedup'])})

![median speed-up per family]({os.path.basename(files['families'])})
"""
    with open(path, "w") as f:
        f.write(text)
    return path


def _introduction(p: Protocol, learned_optimizer: str | None) -> str:
    """The report's title and the paragraph saying what was run and how it is scored."""
    budget = f"{p.steps} steps" if p.steps is not None else "each task's default steps"
    return f"""# velo evaluation: {p.suite} suite

Optimizers: {', '.join(p.optimizers)}. Budget: {budget}; {p.seeds} seed(s) per run.
Learned optimizer: {learned_optimizer or 'not run'}.
Tuned baselines: {p.grid_size} learning rates, a factor {p.grid_ratio:.3g} apart around each
default, best by smoothed final training loss; learned and learning-rate-free optimizers untuned.
Training curves are smoothed by an EMA of {p.ema_decay}. Two references: tuned constant-rate
Adam, as in the papers, and tuned {COSINE} (AdamW, 5% linear warmup, cosine decay to 0.01x the
peak over the budget, tuned over the peak rate), the recipe people train with. Speed-up (VeLO's
metric): the steps the reference needs, on the monotone lower envelope of its smoothed curves over
all learning rates, to reach the optimizer's final loss, divided by the budget (">" marks a lower
bound: the reference never got there). Adam's horizon is {p.reference_factor}x the budget;
{COSINE}'s schedule is fitted to the budget, so a speed-up over it is at most 1 (">1.00": the
optimizer ended lower) and, below 1, flatters the optimizer (a shorter cosine run would anneal
sooner)."""
