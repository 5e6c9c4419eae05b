"""Run a `Protocol` on its suite and write every output: the library entry point of `velo eval`."""

from __future__ import annotations

import os
from typing import NamedTuple

from velo import lopt, optimizers
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
      reused: ``(task, optimizer)`` sweeps taken from an earlier run in the same directory.
      ran: ``(task, optimizer)`` sweeps run now: missing, or made with another learning-rate grid
        or learned optimizer.
    """

    protocol: Protocol
    metrics: dict[str, dict[str, TaskMetrics]]
    summary: dict[str, aggregate.Summary]
    files: dict[str, str]
    reused: list[tuple[str, str]]
    ran: list[tuple[str, str]]


def evaluate(protocol: Protocol, out: str, *, progress: bool = False) -> Evaluation:
    """Run every optimizer of ``protocol`` on every task of its suite and write the outputs.

    Sweeps already in ``out/results.json`` are reused when the directory was made under the same
    `Protocol.comparable` fields and the sweep under the same identity (learning-rate grid, or
    learned-optimizer weights); only the other ``(task, optimizer)`` pairs run. Metrics, summary
    and report cover exactly this protocol's suite and optimizers.

    Raises:
      ValueError: bad protocol (unknown suite or optimizer, small budget, ...), a checkpoint that
        does not load, or ``out`` holding results of a different configuration.
    """
    protocol_lib.check(protocol)
    suite = protocol_lib.suite_tasks(protocol.suite)
    for task in suite:
        protocol_lib.check_budget(protocol_lib.budget(protocol, task), protocol.ema_decay)
    identities = {
        n: (lopt.identity(protocol.checkpoint) if n == optimizers.LEARNED
            else protocol_lib.baseline_identity(n, protocol))
        for n in protocol.optimizers
    }
    record = store.open_record(out, store.jsonable(protocol.comparable()))
    record["protocol"] = store.jsonable(protocol.as_dict())  # the latest run, for readers
    reused, ran = [], []
    for task in suite:
        entry = store.task_entry(record, task.name, dict(task.spec),
                                 protocol_lib.budget(protocol, task))
        missing = [n for n in protocol.optimizers
                   if not store.is_cached(entry, n, identities[n])]
        reused += [(task.name, n) for n in protocol.optimizers if n not in missing]
        for name, result in _run_sweeps(task, missing, protocol, progress):
            entry["sweeps"][name] = store.sweep_to_json(result, identities[name])
            store.save(out, record)
            ran.append((task.name, name))

    metrics, chosen = {}, {}
    for task in suite:  # from the record, as stored: a re-run reports the same numbers
        entry = record["tasks"][task.name]
        sweeps = {n: store.sweep_from_json(entry["sweeps"][n]) for n in protocol.optimizers}
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
        identities.get(optimizers.LEARNED))
    return Evaluation(protocol, metrics, summary, files, reused, ran)


def _run_sweeps(task, names: list[str], protocol: Protocol, progress: bool):
    """Yield ``(name, sweep.Sweep)`` for each optimizer of ``names`` on ``task``, in order."""
    from tqdm.auto import tqdm

    budget = protocol_lib.budget(protocol, task)
    horizons = {
        n: budget * (protocol.reference_factor if n == protocol_lib.REFERENCE else 1)
        for n in names
    }
    with tqdm(total=sum(horizons.values()), desc=task.name, unit="step",
              disable=not (progress and names), leave=False) as bar:
        for name in names:
            bar.set_postfix_str(name)
            yield name, sweep.run(
                task, name, protocol_lib.learning_rates(name, protocol), protocol.seeds, budget,
                horizons[name],
                checkpoint=protocol.checkpoint if name == optimizers.LEARNED else None,
                eval_params=optimizers.eval_params_fn(name),
                on_chunk=bar.update,
            )
