"""Run a `Protocol` on its suite and write every output: the library entry point of `velo eval`."""

from __future__ import annotations

import os
from typing import NamedTuple

from velo import lopt, optimizers
from velo.evaluation import aggregate, plots, report, store, sweep
from velo.evaluation import protocol as protocol_lib
from velo.evaluation.metrics import Resampled, TaskMetrics, choose, resampled_metrics
from velo.evaluation.protocol import Protocol


class Evaluation(NamedTuple):
    """What `evaluate` found and wrote.

    Attributes:
      protocol: the protocol run.
      metrics: task name -> optimizer name -> `TaskMetrics`.
      scores: task name -> `metrics.Resampled` (the metrics on resampled seeds, for intervals).
      summary: optimizer name -> `aggregate.Summary` over the suite.
      families: model family -> optimizer name -> `aggregate.FamilySummary`.
      files: output name (``"results"``, ``"summary"``, ``"report"``, ``"curves"``,
        ``"speedup"``, ``"families"``) -> path.
      reused: ``(task, optimizer)`` sweeps taken from an earlier run in the same directory.
      ran: ``(task, optimizer)`` sweeps run now: missing, or made with another learning-rate grid
        or learned optimizer.
    """

    protocol: Protocol
    metrics: dict[str, dict[str, TaskMetrics]]
    scores: dict[str, Resampled]
    summary: dict[str, aggregate.Summary]
    families: dict[str, dict[str, aggregate.FamilySummary]]
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
        n: (lopt.identity(protocol.checkpoint) + protocol_lib.settings(n, protocol)
            if n == optimizers.LEARNED else protocol_lib.baseline_identity(n, protocol))
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

    metrics, scores, chosen = {}, {}, {}
    for task in suite:  # from the record, as stored: a re-run reports the same numbers
        entry = record["tasks"][task.name]
        sweeps = {n: store.sweep_from_json(entry["sweeps"][n]) for n in protocol.optimizers}
        scores[task.name] = resampled_metrics(sweeps, entry["budget"], protocol.ema_decay)
        metrics[task.name] = scores[task.name].metrics[0]  # every seed once
        chosen[task.name] = {
            n: choose(s, entry["budget"], protocol.ema_decay).curve for n, s in sweeps.items()
        }
    task_families = {task.name: task.spec.family for task in suite}
    summary = aggregate.summarize(metrics, scores)
    families = aggregate.by_family(metrics, scores, task_families)
    record["metrics"] = {t: {n: m._asdict() for n, m in ms.items()} for t, ms in metrics.items()}
    record["summary"] = {n: s._asdict() for n, s in summary.items()}
    record["families"] = {f: {n: s._asdict() for n, s in fs.items()} for f, fs in families.items()}
    store.save(out, record)
    files = {
        "results": os.path.join(out, store.RESULTS),
        "curves": plots.loss_curves(os.path.join(out, "loss_curves.png"), chosen),
        "speedup": plots.speedups(os.path.join(out, "speedup.png"), metrics),
        "families": plots.families(os.path.join(out, "speedup_families.png"), families),
    }
    files["summary"] = report.write_csv(os.path.join(out, "summary.csv"), metrics, summary,
                                        task_families)
    files["report"] = report.write_markdown(
        os.path.join(out, "report.md"), protocol, metrics, summary, families, task_families,
        files, identities.get(optimizers.LEARNED))
    return Evaluation(protocol, metrics, scores, summary, families, files, reused, ran)


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
                hparams=protocol.hparams.get(name),
                eval_params=optimizers.eval_params_fn(name),
                on_chunk=bar.update,
            )
