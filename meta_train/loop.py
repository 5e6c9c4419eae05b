"""The meta-training loop: ask, evaluate, tell; validate, log and checkpoint; repeat.

Each generation plans its tasks, horizon and keys, asks the strategy for a population, evaluates
it with the run's estimator (`meta_train.full` for ``open_es``/``pgpe``/``snes``,
`meta_train.truncated` for ``pes``/``nres``, `meta_train.staggered` for those with ``stagger``)
and tells the strategy the fitness. The run store (`meta_train.store`) saves and resumes the
whole state, so a resumed run repeats exactly what an uninterrupted one would have done.

References:
  Salimans, Ho, Chen, Sidor, Sutskever, "Evolution Strategies as a Scalable Alternative to
  Reinforcement Learning", 2017. https://arxiv.org/abs/1703.03864
  Metz et al., "VeLO: Training Versatile Learned Optimizers by Scaling Up", 2022.
  https://arxiv.org/abs/2211.09760
  Lange, "evosax: JAX-based Evolution Strategies", 2022. https://arxiv.org/abs/2212.04180
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from meta_train import devices, full, sampler, staggered, truncated
from meta_train.compiled import CompileCache
from meta_train.config import TRUNCATED, Config
from meta_train.learner import Learner, lopt_learner
from meta_train.log import RunLog, train_record
from meta_train.run import Run, TaskSource, make_run
from meta_train.stop import StopFlag, Stopped
from meta_train.store import RunStore
from meta_train.validation import validate
from tasks import Task

# Process-wide: runs in one process (tests, notebooks) reuse each other's compiled programs.
CACHE = CompileCache()


class RunResult(NamedTuple):
    """Outcome of `meta_train`.

    Attributes:
      meta_params: the ES mean meta-parameters after the last generation (host arrays).
      generation: number of generations completed in total (over all resumed invocations).
      records: the log records written by this invocation.
    """

    meta_params: Any
    generation: int
    records: list[dict]


def meta_train(
    config: Config,
    out: str,
    *,
    resume: bool = False,
    num_devices: int | None = None,
    learner: Learner | None = None,
    validation: list[Task] | None = None,
    task_source: TaskSource = sampler.generation_tasks,
    tensorboard: str | None = None,
    progress: bool = False,
    cache: CompileCache = CACHE,
) -> RunResult:
    """Meta-train ``learner`` (velo.lopt at ``config.lopt``, ``config.trainable`` of it, by
    default) with ``config``.

    SIGINT (Ctrl-C) and SIGTERM stop the run after the compiled chunk in progress: the last
    completed generation is checkpointed and `Stopped` is raised (`meta_train.stop`).

    Args:
      config: the run (see `Config`); ``config.generations`` is the total over resumed runs.
      out: run directory (config, checkpoints, ``log.jsonl``).
      resume: continue from the latest readable checkpoint in ``out`` (``out`` must hold the
        same config, up to `RESUMABLE_FIELDS`); without it ``out`` must not hold a run.
      num_devices: shard the population over the first this-many devices; all by default.
      learner: what is meta-trained; velo's learned optimizer by default.
      validation: the validation tasks; by default ``config.validation_tasks`` tasks drawn from
        the distribution outside the held-out suite (`sampler.validation_tasks`). Unused when
        ``config.validate_every`` is 0.
      task_source: ``source(config, key, generation) -> tasks``, each generation's training
        tasks; by default drawn from ``config``'s task pool (`sampler.generation_tasks`).
      tensorboard: also write the log records as TensorBoard event files to this directory
        (needs the ``velo[tensorboard]`` extra).
      progress: show a progress bar with ETA, generations/s, meta-loss and validation.
      cache: compiled programs, shared between runs of one process.
    """
    learner = learner or lopt_learner(config.lopt, config.trainable)
    mesh = devices.make_mesh(num_devices)
    devices.check_population(config.population, mesh)
    store = RunStore(out, config, resume)
    log = RunLog(store.out, enabled=devices.is_main_process(), tensorboard=tensorboard)
    try:
        if not config.validate_every:
            validation = []
        elif validation is None:
            validation = sampler.validation_tasks(config)
        with StopFlag() as flag:
            run = make_run(config, learner, mesh, cache, task_source, flag.check)
            return _loop(run, store, log, validation, progress)
    finally:
        log.close()
        store.close()


def _loop(run: Run, store: RunStore, log: RunLog, validation: list[Task],
          progress: bool) -> RunResult:
    """Generations from the store's latest checkpoint up to ``run.config.generations``."""
    config = run.config
    estimator = full if config.estimator not in TRUNCATED else (
        staggered if config.stagger else truncated)
    generation, es_state, carry = store.restore(run, estimator)
    saved, record, records = (generation if generation else None), None, []
    log.truncate(generation)
    bar = _progress_bar(config.generations, generation, progress and log.enabled)
    try:
        if generation == 0 and validation:
            records.append(log.write({"generation": 0, **_validation(run, es_state, validation)}))
        while generation < config.generations:
            compile_before, start = run.cache.seconds, time.perf_counter()
            plan = estimator.plan(run, generation, carry)
            pop, asked = run.ask(plan, es_state)
            evaluated = estimator.evaluate(run, pop, plan)
            es_state, fitness, update = run.tell(plan, pop, evaluated.fitness, asked,
                                                 evaluated.weights)
            carry, generation = evaluated.carry, generation + 1
            record = train_record(
                generation, plan.tasks, devices.to_host(fitness), float(jnp.mean(es_state.std)),
                float(update), evaluated.steps, time.perf_counter() - start,
                run.cache.seconds - compile_before)
            record.update(evaluated.extra or {})
            validated = bool(validation) and generation % config.validate_every == 0
            if validated:
                record.update(_validation(run, es_state, validation))
            record = log.write(record)
            records.append(record)
            if (generation % config.checkpoint_every == 0 or validated
                    or generation == config.generations):
                store.save(run, generation, es_state, carry, record)
                saved = generation
            _show(bar, record)
    except Stopped as stopped:
        if saved != generation:
            store.save(run, generation, es_state, carry, record)
        stopped.generation = generation
        raise
    finally:
        bar.close()
    return RunResult(jax.tree.map(np.asarray, run.es.get_mean(es_state)), generation, records)


def _validation(run: Run, es_state, task_list: list[Task]) -> dict:
    """The validation fields of a log record: losses of the mean and seconds (with compiles)."""
    start = time.perf_counter()
    result = validate(run.es.get_mean(es_state), task_list, run.config, run.runner)
    return {"validation": result, "validation_s": time.perf_counter() - start}


def _progress_bar(total: int, initial: int, enabled: bool):
    from tqdm.auto import tqdm

    # tqdm shows the ETA and the rate (gen/s, or s/gen when slower); the postfix the losses.
    return tqdm(total=total, initial=initial, desc="meta-train", unit="gen", disable=not enabled)


def _show(bar, record: dict) -> None:
    bar.update(1)
    shown = {"meta_loss": record["meta_loss"], "val": record.get("validation", {}).get("mean")}
    bar.set_postfix({k: f"{v:.4f}" for k, v in shown.items() if v is not None})
