"""Run a `Protocol` on its suite and write every output: the library entry point of `velo eval`."""

from __future__ import annotations

import hashlib
import os
from typing import NamedTuple

import jax
import numpy as np

from velo import optimizers
from velo.evaluation import aggregate, plots, report, store, sweep
from velo.evaluation import protocol as protocol_lib
from velo.evaluation.metrics import TaskMetrics, choose, task_metrics
from velo.evaluation.protocol import Protocol


class Evaluation(NamedTuple):
    """What `evaluate` found and wrote.

    Attributes:
      protocol: the protocol run.
      metrics: task name -> optimizer name -> `TaskMetrics`.
      summary: optimizer name -> `aggregate.Summary` over the suite.
      files: output name (``"results"``, ``"summary"``, ``"report"``, ``"curves"``,
        ``"speedup"``) -> path.
      reused: names of the tasks taken from an earlier run in the same directory.
    """

    protocol: Protocol
    metrics: dict[str, dict[str, TaskMetrics]]
    summary: dict[str, aggregate.Summary]
    files: dict[str, str]
    reused: list[str]


def evaluate(protocol: Protocol, out: str, *, progress: bool = False) -> Evaluation:
    """Run every optimizer of ``protocol`` on every task of its suite and write the outputs.

    Tasks already in ``out/results.json`` under the same protocol are reused, not re-run.

    Raises:
      ValueError: bad protocol (unknown suite or optimizer, small budget, ...), a checkpoint that
        does not load, or ``out`` holding results of a different configuration.
    """
    protocol_lib.check(protocol)
    suite = protocol_lib.suite_tasks(protocol.suite)
    for task in suite:
        protocol_lib.check_budget(protocol_lib.budget(protocol, task), protocol.ema_decay)
    config = protocol.as_dict()
    if optimizers.LEARNED in protocol.optimizers:
        config["learned_optimizer"] = _learned_optimizer_identity(protocol.checkpoint)
    record = store.open_record(out, store.jsonable(config))
    reused = []
    for task in suite:
        if store.cached_task(record, task.name, dict(task.spec)) is not None:
            reused.append(task.name)
            continue
        record["tasks"][task.name] = _run_task(task, protocol, progress)
        store.save(out, record)

    metrics, chosen = {}, {}
    for task in suite:
        entry = record["tasks"][task.name]
        sweeps = {n: store.sweep_from_json(s) for n, s in entry["sweeps"].items()}
        metrics[task.name] = task_metrics(sweeps, entry["budget"], protocol.ema_decay)
        chosen[task.name] = {
            n: choose(s, entry["budget"], protocol.ema_decay).curve for n, s in sweeps.items()
        }
    summary = aggregate.summarize(metrics)
    record["metrics"] = {t: {n: m._asdict() for n, m in ms.items()} for t, ms in metrics.items()}
    record["summary"] = {n: s._asdict() for n, s in summary.items()}
    store.save(out, record)
    files = {
        "results": os.path.join(out, store.RESULTS),
        "curves": plots.loss_curves(os.path.join(out, "loss_curves.png"), chosen),
        "speedup": plots.speedups(os.path.join(out, "speedup.png"), metrics),
    }
    files["summary"] = report.write_csv(os.path.join(out, "summary.csv"), metrics)
    files["report"] = report.write_markdown(
        os.path.join(out, "report.md"), protocol, metrics, summary, files,
        config.get("learned_optimizer"))
    return Evaluation(protocol, metrics, summary, files, reused)


def _run_task(task, protocol: Protocol, progress: bool) -> dict:
    """Every optimizer's sweep on ``task``, as a JSON-ready record entry."""
    from tqdm.auto import tqdm

    budget = protocol_lib.budget(protocol, task)
    horizons = {
        n: budget * (protocol.reference_factor if n == protocol_lib.REFERENCE else 1)
        for n in protocol.optimizers
    }
    sweeps = {}
    with tqdm(total=sum(horizons.values()), desc=task.name, unit="step", disable=not progress,
              leave=False) as bar:
        for name in protocol.optimizers:
            bar.set_postfix_str(name)
            result = sweep.run(
                task, name, protocol_lib.learning_rates(name, protocol), protocol.seeds, budget,
                horizons[name],
                checkpoint=protocol.checkpoint if name == optimizers.LEARNED else None,
                eval_params=optimizers.eval_params_fn(name),
                on_chunk=bar.update,
            )
            sweeps[name] = store.sweep_to_json(result)
    return {"spec": store.jsonable(dict(task.spec)), "budget": budget, "sweeps": sweeps}


def _learned_optimizer_identity(checkpoint: str | None) -> str:
    """Which learned optimizer a run uses: the checkpoint's name and a digest of its weights and
    config, so a results directory made with other weights is refused rather than mixed in.

    Raises:
      ValueError: the checkpoint does not load.
    """
    import checkpoints
    from velo import lopt

    name = checkpoint
    if name is None:
        if lopt.DEFAULT_CHECKPOINT not in checkpoints.names():
            return "untrained initialisation"
        name = lopt.DEFAULT_CHECKPOINT
    path = checkpoints.path(name) if name in checkpoints.names() else name
    try:
        meta_params, config, _ = lopt.load(path)
    except Exception as e:  # orbax and the file system raise many types; report them all alike
        raise ValueError(f"learned-optimizer checkpoint {name!r} does not load: {e}") from None
    digest = hashlib.sha256(repr(config).encode())
    for leaf in jax.tree.leaves(meta_params):
        digest.update(np.asarray(leaf).tobytes())
    return f"{name} (sha256 {digest.hexdigest()[:12]})"
