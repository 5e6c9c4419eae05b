"""The meta-training loop: ask, train the population on sampled tasks, shape, tell; repeat.

One generation (full-unroll ES): sample ``tasks_per_generation`` tasks and one horizon T, ask the
strategy for a population of meta-parameters, train every member on every task for T steps (in
chunks, by sharded programs compiled once per task: T is a traced argument), shape the
``[tasks, population]`` fitness within each task, average, tell. Truncated ES (``pes``/``nres``)
instead keeps the members' training states and advances them one ``chunk`` of steps per
generation until the horizon is reached.

All randomness of generation g comes from ``fold_in(run_key, g)``, so a resumed run repeats
exactly what an uninterrupted one would have done.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from meta_train import devices, population, sampler
from meta_train.checkpoint import RunStore
from meta_train.compiled import CompileCache
from meta_train.config import TRUNCATED, Config
from meta_train.es import make_strategy, shape_fitness
from meta_train.learner import Learner, lopt_learner
from meta_train.log import RunLog
from meta_train.validation import tail_steps, validate
from tasks import Task

# Process-wide: runs in one process (tests, notebooks) reuse each other's compiled programs.
CACHE = CompileCache()
_STRATEGY_FIELDS = ("estimator", "population", "sigma", "learning_rate", "clip", "chunk")
_STRATEGIES: dict = {}


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


class Trajectory(NamedTuple):
    """Truncated ES: the inner runs shared by the generations since ``start``.

    Attributes:
      start: generation that sampled the tasks, horizon and keys (all derived from it).
      tasks: the task instances.
      horizon: the runs' total length, a multiple of ``chunk``.
      keys: per task, ``(init_key, data_key)``.
      states: per task, the members' `TrainState` with a leading (sharded) population axis.
    """

    start: int
    tasks: list[Task]
    horizon: int
    keys: list[tuple[jax.Array, jax.Array]]
    states: list[Any]


@dataclasses.dataclass
class _Run:
    """What every generation of one run uses; ask and tell are compiled once per strategy."""

    config: Config
    learner: Learner
    mesh: Mesh
    cache: CompileCache
    es: Any
    es_params: Any
    run_key: jax.Array
    runner: population.Runner

    def replicate(self, tree):
        return devices.replicate(tree, self.mesh)

    def shared(self, key):
        return devices.shared_keys(key, self.mesh, self.config.population)

    def ask(self, key, es_state, es_params):
        shardings = (devices.sharded(self.mesh), devices.replicated(self.mesh))
        return self.cache(("ask", self.es, self.mesh), self.es.ask, self.replicate(key), es_state,
                          es_params, out_shardings=shardings)

    def tell(self, key, pop, fitness, es_state, es_params):
        config, es = self.config, self.es

        def tell(key, pop, fitness, state, params):
            fitness = jnp.stack(fitness)
            new, _ = es.tell(key, pop, shape_fitness(fitness, config, params), state, params)
            update = jnp.linalg.norm(new.mean - state.mean)
            return new, fitness, update

        key_ = ("tell", es, config.shaping, len(fitness), self.mesh)
        return self.cache(key_, tell, self.replicate(key), pop, tuple(fitness), es_state, es_params,
                          out_shardings=devices.replicated(self.mesh))


def meta_train(
    config: Config,
    out: str,
    *,
    resume: bool = False,
    num_devices: int | None = None,
    learner: Learner | None = None,
    validation: list[Task] | None = None,
    progress: bool = False,
    cache: CompileCache = CACHE,
) -> RunResult:
    """Meta-train ``learner`` (velo.lopt at ``config.lopt`` by default) with ``config``.

    Args:
      config: the run (see `Config`); ``config.generations`` is the total over resumed runs.
      out: run directory (config, checkpoints, ``log.jsonl``).
      resume: continue from the latest checkpoint in ``out`` (``out`` must hold the same config,
        up to `RESUMABLE_FIELDS`); without it ``out`` must not hold a run.
      num_devices: shard the population over the first this-many devices; all by default.
      learner: what is meta-trained; velo's learned optimizer by default.
      validation: the validation tasks; by default ``config.validation_tasks`` tasks drawn from
        the distribution outside the held-out suite (`sampler.validation_tasks`). Unused when
        ``config.validate_every`` is 0.
      progress: show a progress bar with ETA.
      cache: compiled programs, shared between runs of one process.
    """
    learner = learner or lopt_learner(config.lopt)
    mesh = devices.make_mesh(num_devices)
    devices.check_population(config.population, mesh)
    store = RunStore(out, config, resume)
    try:
        if not config.validate_every:
            validation = []
        elif validation is None:
            validation = sampler.validation_tasks(config)
        log = RunLog(store.out, enabled=devices.is_main_process())
        es, es_params = _strategy(config, learner)
        init_key, es_key, run_key = jax.random.split(jax.random.key(config.seed), 3)
        runner = population.Runner(learner, mesh, cache, config.chunk)
        run = _Run(config, learner, mesh, cache, es, _as_arrays(es_params), run_key, runner)
        es_state = run.replicate(es.init(es_key, learner.init(init_key), es_params))
        generation, trajectory = 0, None
        step = store.latest_step()
        if step is not None:
            es_state, trajectory = _restore(run, store, step, es_state)
            generation = step
        log.truncate(generation)
        records = []
        if generation == 0 and validation:
            records.append(_validation_record(run, es_state, validation, 0))
            log.write(records[-1])
        bar = _progress_bar(config.generations, generation, progress and log.enabled)
        while generation < config.generations:
            es_state, trajectory, record = _generation(run, es_state, trajectory, generation)
            generation += 1
            val_loss = None  # stays None when not validated or when validation diverged
            validated = bool(validation) and generation % config.validate_every == 0
            if validated:
                start = time.perf_counter()
                record["validation"] = validate(
                    run.es.get_mean(es_state), validation, config, run.runner)
                record["validation_s"] = time.perf_counter() - start  # with its compiles
                val_loss = record["validation"]["mean"]
            records.append(record)
            log.write(record)
            if (generation % config.checkpoint_every == 0 or validated
                    or generation == config.generations):
                _save(run, store, generation, es_state, trajectory, record, val_loss)
            bar.update(1)
            bar.set_postfix(meta_loss=f"{record['meta_loss']:.4f}",
                            **({"val": f"{val_loss:.4f}"} if val_loss is not None else {}))
        bar.close()
    finally:
        store.close()
    mean = jax.tree.map(np.asarray, es.get_mean(es_state))
    return RunResult(mean, generation, records)


def _strategy(config: Config, learner: Learner):
    """The evosax strategy for ``config``, shared by runs that differ only elsewhere."""
    key = (learner, *(getattr(config, f) for f in _STRATEGY_FIELDS))
    if key not in _STRATEGIES:
        _STRATEGIES[key] = make_strategy(config, learner.init(jax.random.key(0)))
    return _STRATEGIES[key]


def _as_arrays(tree):
    return jax.tree.map(jnp.asarray, tree)


def _generation(run: _Run, es_state, trajectory: Trajectory | None, generation: int):
    """Generation ``generation`` (0-based): the new ES state and trajectory, and its log record."""
    compile_before, start = run.cache.seconds, time.perf_counter()
    if run.config.estimator in TRUNCATED:
        es_state, trajectory, task_list, fitness, steps, update = _truncated_generation(
            run, es_state, trajectory, generation)
    else:
        es_state, task_list, fitness, steps, update = _full_generation(run, es_state, generation)
    elapsed = time.perf_counter() - start
    compile_s = run.cache.seconds - compile_before
    record = _train_record(generation + 1, task_list, fitness, es_state, update, steps, elapsed,
                           compile_s)
    return es_state, trajectory, record


def _full_generation(run: _Run, es_state, generation: int):
    config = run.config
    key = jax.random.fold_in(run.run_key, generation)
    k_tasks, k_horizon, k_ask, k_tell, k_data = jax.random.split(key, 5)
    task_list = sampler.generation_tasks(config, k_tasks, generation)
    horizon = sampler.horizon(config, k_horizon)
    pop, es_state_asked = run.ask(k_ask, es_state, run.es_params)
    fitness = []
    for m, task in enumerate(task_list):
        init_key, data_key = jax.random.split(jax.random.fold_in(k_data, m))
        fitness.append(run.runner.fitness(task, pop, run.shared(init_key), run.shared(data_key),
                                          horizon, tail_steps(config, horizon)))
    new_state, fitness, update = run.tell(k_tell, pop, fitness, es_state_asked, run.es_params)
    steps = config.population * len(task_list) * horizon
    return new_state, task_list, devices.to_host(fitness), steps, float(update)


def _trajectory(run: _Run, start: int) -> Trajectory:
    """Tasks, horizon and keys of the truncated-ES trajectory begun at generation ``start``."""
    key = jax.random.fold_in(jax.random.fold_in(run.run_key, start), 1)
    k_tasks, k_horizon, k_data = jax.random.split(key, 3)
    task_list = sampler.generation_tasks(run.config, k_tasks, start)
    keys = [tuple(jax.random.split(jax.random.fold_in(k_data, m))) for m in range(len(task_list))]
    return Trajectory(start, task_list, sampler.horizon(run.config, k_horizon), keys, [])


def _truncated_generation(run: _Run, es_state, trajectory: Trajectory | None, generation: int):
    config = run.config
    # Tag 0 here, tag 1 in `_trajectory`: the two never share a key.
    k_ask, k_tell = jax.random.split(
        jax.random.fold_in(jax.random.fold_in(run.run_key, generation), 0)
    )
    if trajectory is None:
        trajectory = _trajectory(run, generation)
    params = run.es_params.replace(T=jnp.asarray(trajectory.horizon))
    pop, es_state_asked = run.ask(k_ask, es_state, params)
    states = trajectory.states or [
        run.runner.init(task, pop, trajectory.horizon, run.shared(init_key))
        for task, (init_key, _) in zip(trajectory.tasks, trajectory.keys, strict=True)
    ]
    fitness = []
    for m, (task, (_, data_key)) in enumerate(zip(trajectory.tasks, trajectory.keys, strict=True)):
        states[m], sums = run.runner.advance(task, pop, states[m], run.shared(data_key),
                                             trajectory.horizon, 0)
        fitness.append(sums / config.chunk)
    new_state, fitness, update = run.tell(k_tell, pop, fitness, es_state_asked, params)
    task_list = trajectory.tasks
    done = int(new_state.inner_step_counter) == 0
    trajectory = None if done else trajectory._replace(states=states)
    steps = config.population * len(task_list) * config.chunk
    return new_state, trajectory, task_list, devices.to_host(fitness), steps, float(update)


def _train_record(generation, task_list, fitness, es_state, update, steps, elapsed, compile_s):
    """The log line of one generation; fitness is ``[tasks, population]`` normalised loss."""
    finite = np.isfinite(fitness)
    per_task = [float(np.mean(row[ok])) if ok.any() else float("inf")
                for row, ok in zip(fitness, finite, strict=True)]
    families: dict[str, list[float]] = {}
    for task, loss in zip(task_list, per_task, strict=True):
        families.setdefault(str(task.spec.get("family", task.name)), []).append(loss)
    run_s = max(elapsed - compile_s, 1e-9)
    return {
        "generation": generation,
        "meta_loss": float(np.mean(per_task)),
        "family_loss": {f: float(np.mean(v)) for f, v in families.items()},
        "tasks": [t.name for t in task_list],
        "nonfinite_fraction": float(1.0 - finite.mean()),
        "sigma": float(jnp.mean(es_state.std)),
        "update_norm": update,
        "generation_s": elapsed,
        "compile_s": compile_s,
        "model_steps_per_s": steps / run_s,
        "time": time.time(),
    }


def _validation_record(run: _Run, es_state, task_list, generation: int) -> dict:
    mean = run.es.get_mean(es_state)
    return {"generation": generation,
            "validation": validate(mean, task_list, run.config, run.runner)}


def _save(run: _Run, store: RunStore, generation, es_state, trajectory, record, validation):
    state = {"es": es_state}
    if trajectory is not None:
        state["inner"] = tuple(trajectory.states)
    meta = {
        "generation": generation,
        "key": _key_record(run, generation),
        "config": run.config.to_dict(),
        "trajectory_start": None if trajectory is None else trajectory.start,
        "metrics": {k: record[k] for k in ("meta_loss", "family_loss", "sigma", "update_norm")},
        "validation": validation,
    }
    store.save(generation, state, run.es.get_mean(es_state), meta, validation)


def _restore(run: _Run, store: RunStore, step: int, fresh_es_state):
    """ES state and truncated-ES trajectory saved at ``step``, shaped like a fresh run's."""
    meta = store.restore_meta(step)
    if meta.get("generation") != step or meta.get("key") != _key_record(run, step):
        raise ValueError(
            f"checkpoint {step} in {store.out} does not belong to this config (generation or "
            f"PRNG key differ); choose another --out"
        )
    abstract = {"es": _abstract(fresh_es_state)}
    trajectory = None
    if meta.get("trajectory_start") is not None:
        trajectory = _trajectory(run, meta["trajectory_start"])
        abstract["inner"] = tuple(_abstract_inner(run, trajectory, fresh_es_state))
    state = store.restore_state(step, abstract)
    if trajectory is not None:
        trajectory = trajectory._replace(states=list(state["inner"]))
    return state["es"], trajectory


def _key_record(run: _Run, generation: int) -> list[int]:
    """The PRNG key of ``generation`` as saved in checkpoints: a resumed run must derive it too."""
    return np.asarray(jax.random.key_data(jax.random.fold_in(run.run_key, generation))).tolist()


def _abstract(tree):
    return jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), tree
    )


def _abstract_inner(run: _Run, trajectory: Trajectory, es_state):
    params = run.es_params.replace(T=jnp.asarray(trajectory.horizon))
    pop, _ = jax.eval_shape(run.es.ask, jax.random.key(0), es_state, params)
    keys = run.shared(jax.random.key(0))
    sharding = devices.sharded(run.mesh)
    out = []
    for task in trajectory.tasks:
        fn = population.init_members(task, run.learner, run.mesh)
        shapes = jax.eval_shape(fn, pop, jnp.int32(trajectory.horizon), keys)
        out.append(jax.tree.map(
            lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), shapes))
    return out


def _progress_bar(total: int, initial: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="meta-train", unit="gen", disable=not enabled)
