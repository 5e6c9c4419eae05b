"""Long-horizon stability of a learned optimizer: train far past each task's budget.

A learned optimizer must stay stable well beyond the horizons it was meta-trained on (the shipped
one's target is 10 times its longest meta-training horizon). A task passes when every seed stays
finite and the smoothed training loss at the end of the long run is not materially above the
smoothed loss at the task's budget: training longer must not make things worse. `velo stability`
is the command line of `run_check`.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import tasks
from velo import lopt, optimizers
from velo.evaluation import curves, store, sweep
from velo.evaluation import protocol as protocol_lib
from velo.train import run_steps, start_state

# Final / at-budget smoothed loss still called stable: the EMA leaves a few percent of minibatch
# noise in a flat curve, while a real upward trend over a 10x longer run exceeds it.
STABLE_RATIO = 1.05
# Default time allowed per task (all seeds together), so the held-out suite finishes in an hour or
# two on a laptop CPU; the tasks over it are listed as skipped, never silently dropped.
DEFAULT_MAX_SECONDS = 300.0
# The run is timed on its first 1/PROBE_CHUNKS before it commits to the rest, so a task over the
# time limit costs its compilation and ~2 % of its run.
PROBE_CHUNKS = 50
EMA_DECAY = protocol_lib.Protocol.ema_decay  # the smoothing `velo eval` reports, so numbers agree
RECORD = "stability.json"
REPORT = "stability.md"
FORMAT = 1


@dataclasses.dataclass(frozen=True)
class Check:
    """What one stability check runs.

    Attributes:
      suite: ``"heldout"``, ``"quick"``, ``"long"``, or comma-separated task names.
      steps: length of every run; exactly one of ``steps`` and ``horizon_factor`` is given.
      horizon_factor: run this many times the checkpoint's longest meta-training horizon.
      seeds: runs per task, seeds ``0..seeds-1`` as `velo.train.train` uses them.
      budget: step the final loss is compared with; ``None`` uses each task's ``default_steps``.
      max_seconds: tasks estimated to take longer (all seeds) are skipped.
      checkpoint: learned-optimizer checkpoint path or shipped name; the default when ``None``.
    """

    suite: str
    steps: int | None = None
    horizon_factor: float | None = None
    seeds: int = 3
    budget: int | None = None
    max_seconds: float = DEFAULT_MAX_SECONDS
    checkpoint: str | None = None

    def command_line(self, out: str) -> str:
        """The ``velo stability`` invocation that runs this check into ``out``."""
        words = ["velo", "stability", "--suite", self.suite]
        for flag, value in (("--checkpoint", self.checkpoint), ("--steps", self.steps),
                            ("--horizon-factor", self.horizon_factor), ("--budget", self.budget)):
            if value is not None:
                words += [flag, str(value)]
        words += ["--seeds", str(self.seeds), "--max-seconds", f"{self.max_seconds:g}",
                  "--out", out]
        return shlex.join(words)


class Result(NamedTuple):
    """What `run_check` found and wrote.

    Attributes:
      record: the contents of ``stability.json``.
      table: the markdown table of ``stability.md``.
      files: ``{"record": path, "report": path}``.
      reused: tasks taken from an earlier run in the same directory.
    """

    record: dict[str, Any]
    table: str
    files: dict[str, str]
    reused: list[str]


class Runs(NamedTuple):
    """Outcome of `train_seeds`.

    Attributes:
      losses: ``[S, T]`` minibatch training losses, or ``None`` when the probe found the run too
        slow.
      seconds: measured run time of all seeds (compilation excluded), or the estimate if too slow.
      compile_seconds: time to compile the program.
    """

    losses: np.ndarray | None
    seconds: float
    compile_seconds: float


def curve_metrics(losses: np.ndarray, budget: int, ema_decay: float = EMA_DECAY) -> dict[str, Any]:
    """Stability numbers and verdict of ``S`` runs of one task.

    Losses are smoothed per seed as `velo eval` does and averaged over seeds before the ratios are
    taken, so a single noisy seed does not decide the verdict; a non-finite seed does.

    Args:
      losses: ``[S, T]`` minibatch training losses, ``T > budget``.
      budget: the step (1-based) the end of the run is compared with.
      ema_decay: smoothing factor.

    Returns:
      A JSON-ready dict: ``finite`` (all seeds, all steps), ``diverged_at`` (per seed, first
      non-finite step or None), ``first_loss``, ``loss_at_budget``, ``final_loss`` (seed means;
      the latter two smoothed), ``final_ratio`` (final / at budget), ``peak_ratio`` (highest
      smoothed loss after the budget / at budget: a transient blow-up shows here) and
      ``verdict`` (``"stable"`` or ``"unstable"``).
    """
    losses = np.asarray(losses, np.float64)
    bad = ~np.isfinite(losses)
    mean = curves.ema(losses, ema_decay).mean(axis=0)
    at_budget = mean[budget - 1]
    final_ratio = float(mean[-1] / at_budget)
    finite = not bad.any()
    return {
        "finite": finite,
        "diverged_at": [int(np.argmax(b)) + 1 if b.any() else None for b in bad],
        "first_loss": float(losses[:, 0].mean()),
        "loss_at_budget": float(at_budget),
        "final_loss": float(mean[-1]),
        "final_ratio": final_ratio,
        "peak_ratio": float(np.max(mean[budget - 1:]) / at_budget),
        "verdict": "stable" if finite and final_ratio <= STABLE_RATIO else "unstable",
    }


def train_seeds(
    task: tasks.Task,
    opt: optax.GradientTransformationExtraArgs,
    steps: int,
    seeds: int,
    max_seconds: float,
    on_chunk: Callable[[int], None] = lambda steps: None,
) -> Runs:
    """Train ``task`` with ``opt`` for ``steps`` steps at seeds ``0..seeds-1`` in one program.

    Seed ``s`` initialises and draws its data from ``jax.random.key(s)`` as `velo.train.train`
    does. The first of `PROBE_CHUNKS` chunks is timed; if the whole run would take longer than
    ``max_seconds`` it stops there.
    """
    params, data_keys = sweep.initial_params(task, seeds)
    # A copy: the state is donated below, and these parameters are cached for other runs.
    state = jax.vmap(lambda p: start_state(opt, p))(jax.tree.map(jnp.copy, params))
    chunk = sweep.chunk_length(steps, PROBE_CHUNKS)
    start = time.perf_counter()
    advance = jax.jit(
        jax.vmap(lambda k, s: run_steps(task, opt, k, s, chunk)), donate_argnums=1
    ).lower(data_keys, state).compile()
    compile_seconds = time.perf_counter() - start
    losses, seconds = [], 0.0
    for done in range(chunk, steps + 1, chunk):
        begin = time.perf_counter()
        state, chunk_losses = advance(data_keys, state)
        losses.append(np.asarray(chunk_losses))
        seconds += time.perf_counter() - begin
        on_chunk(chunk)
        if done == chunk and seconds * steps / chunk > max_seconds:
            return Runs(None, seconds * steps / chunk, compile_seconds)
    return Runs(np.concatenate(losses, axis=-1), seconds, compile_seconds)


def longest_horizon(checkpoint: str | None) -> int | None:
    """``horizon_max`` of the meta-training run that produced ``checkpoint`` (path or shipped name;
    the default when ``None``), as `velo meta-train export` records it; ``None`` if unknown
    (always for an untrained ``init`` / ``init:PRESET``)."""
    if lopt.checkpoint.is_init(checkpoint):
        return None
    _, _, metadata = lopt.load(lopt.locate(checkpoint))
    horizon = (metadata.get("meta_train_config") or {}).get("horizon_max")
    return None if horizon is None else int(horizon)


def resolve_steps(check: Check) -> tuple[int, int | None]:
    """``(steps, longest meta-training horizon or None)`` of ``check``.

    Raises:
      ValueError: neither or both of steps and horizon_factor, or a horizon factor for a
        checkpoint that does not record its horizon.
    """
    if (check.steps is None) == (check.horizon_factor is None):
        raise ValueError("give exactly one of --steps N and --horizon-factor F (F times the "
                         "checkpoint's longest meta-training horizon)")
    horizon = longest_horizon(check.checkpoint)
    if check.steps is not None:
        return check.steps, horizon
    if horizon is None:
        which = check.checkpoint or "the default learned optimizer"
        raise ValueError(f"{which} records no meta-training horizon (only checkpoints from "
                         "`velo meta-train export` do); pass --steps N instead of "
                         "--horizon-factor")
    return max(1, round(check.horizon_factor * horizon)), horizon


def run_check(check: Check, out: str, *, progress: bool = False) -> Result:
    """Run ``check`` on every task of its suite and write ``out/stability.json`` and
    ``out/stability.md``.

    Tasks already finished in ``out`` under the same checkpoint, steps, seeds and budget are
    reused; a task skipped as too slow is retried only if ``max_seconds`` now allows it.

    Raises:
      ValueError: bad settings, a checkpoint that does not load, or ``out`` holding a check of
        another configuration.
    """
    from tqdm.auto import tqdm

    if check.seeds < 1 or not check.max_seconds > 0:
        raise ValueError(f"seeds must be >= 1 and max_seconds > 0, got {check.seeds} and "
                         f"{check.max_seconds}")
    if check.budget is not None:
        protocol_lib.check_budget(check.budget, EMA_DECAY)
    suite = protocol_lib.suite_tasks(check.suite)
    steps, horizon = resolve_steps(check)
    identity = {"learned_optimizer": lopt.identity(check.checkpoint),
                "steps": steps, "seeds": check.seeds, "budget": check.budget,
                "ema_decay": EMA_DECAY}
    record = store.open_record(out, store.jsonable(identity), RECORD, FORMAT)
    record.update(command=check.command_line(out), arguments=dataclasses.asdict(check),
                  longest_horizon=horizon)
    opt = optimizers.make(optimizers.LEARNED, steps, checkpoint=check.checkpoint)
    reused = []
    for task in suite:
        old = record["tasks"].get(task.name)
        if old is not None and _still_valid(old, task, check.max_seconds):
            reused.append(task.name)
            continue
        budget = check.budget or task.default_steps
        entry = {"spec": store.jsonable(dict(task.spec)), "budget": budget}
        if budget >= steps:
            entry["skipped"] = f"a {steps}-step run does not go past the budget of {budget} steps"
        else:
            with tqdm(total=steps, desc=task.name, unit="step", disable=not progress,
                      leave=False) as bar:
                runs = train_seeds(task, opt, steps, check.seeds, check.max_seconds, bar.update)
            entry.update(seconds=runs.seconds, compile_seconds=runs.compile_seconds)
            if runs.losses is None:
                entry["skipped"] = (f"estimated {runs.seconds:.0f} s for {check.seeds} seeds x "
                                    f"{steps} steps > --max-seconds {check.max_seconds:g}")
            else:
                entry.update(curve_metrics(runs.losses, budget))
        record["tasks"][task.name] = entry
        store.save(out, record, RECORD)
    table = markdown_table(record, [t.name for t in suite])
    report = os.path.join(out, REPORT)
    with open(report, "w") as f:
        f.write(_report(record, table))
    return Result(record, table, {"record": os.path.join(out, RECORD), "report": report}, reused)


def _still_valid(entry: dict, task: tasks.Task, max_seconds: float) -> bool:
    """Whether a recorded task entry answers the current run: same spec, and finished or skipped
    for a reason the current ``max_seconds`` does not change."""
    if entry["spec"] != store.jsonable(dict(task.spec)):
        return False
    return "skipped" not in entry or entry.get("seconds", 0.0) > max_seconds


def markdown_table(record: dict[str, Any], names: list[str]) -> str:
    """One row per finished task of ``names``, then one line per skipped task with the reason."""
    rows = ["| task | budget | finite | first loss | loss at budget | final loss | final / budget "
            "| peak / budget | verdict |", "|" + " --- |" * 9]
    skipped = []
    for name in names:
        e = record["tasks"][name]
        if "skipped" in e:
            skipped.append(f"- {name}: skipped, {e['skipped']}")
            continue
        rows.append(f"| {name} | {e['budget']} | {'yes' if e['finite'] else 'no'} | "
                    f"{e['first_loss']:.4g} | {e['loss_at_budget']:.4g} | {e['final_loss']:.4g} | "
                    f"{e['final_ratio']:.3f} | {e['peak_ratio']:.3f} | {e['verdict']} |")
    stable = sum(record["tasks"][n].get("verdict") == "stable" for n in names)
    summary = f"{stable} of {len(names) - len(skipped)} tasks stable, {len(skipped)} skipped."
    return "\n".join([*rows, "", *skipped, *([""] if skipped else []), summary])


def _report(record: dict[str, Any], table: str) -> str:
    config = record["config"]
    horizon = record["longest_horizon"]
    factor = record["arguments"]["horizon_factor"]
    length = f"{config['steps']} steps" + (
        f" ({factor:g} x the longest meta-training horizon, {horizon})" if factor else "")
    return "\n".join([
        "# Long-horizon stability of the learned optimizer", "",
        f"Produced by: `{record['command']}`", "",
        f"Learned optimizer: {config['learned_optimizer']}; runs of {length}, "
        f"{config['seeds']} seed(s) each.",
        f"A task is stable when every seed stays finite and the final smoothed loss (EMA "
        f"{config['ema_decay']}, seed mean) is at most {STABLE_RATIO} x the smoothed loss at the "
        f"budget (the task's default step budget unless --budget is given). The peak column is "
        f"the highest smoothed loss after the budget over the loss at the budget.", "",
        table, "",
    ])
