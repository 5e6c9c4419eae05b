"""Meta-training configuration: a frozen dataclass with named presets.

A run is fully described by its `Config`: the same config on the same number of devices gives the
same meta-parameters. Presets are starting points; change single fields with `velo.overrides`
(``--set key=value`` on the command line), which goes through the checks in `__post_init__`.

References (the estimators' papers are listed in `meta_train.es`):
  Metz et al., "VeLO: Training Versatile Learned Optimizers by Scaling Up", 2022, the recipe of
  the ``velo`` preset. https://arxiv.org/abs/2211.09760
"""

from __future__ import annotations

import dataclasses
import math

from tasks.spec import MAX_EXPONENT

ESTIMATORS = ("open_es", "pgpe", "snes", "pes", "nres")
# Estimators whose members come in (+eps, -eps) pairs: the first half and the second half.
ANTITHETIC = ("open_es", "pgpe", "pes", "nres")
# Estimators that advance one `chunk` of steps per generation and carry the inner states over.
TRUNCATED = ("pes", "nres")
SHAPINGS = ("rank", "sign")

# Fields a resumed run may change: they decide how long and how often, not what is computed.
RESUMABLE_FIELDS = ("generations", "checkpoint_every", "keep_checkpoints")


@dataclasses.dataclass(frozen=True)
class Config:
    """One meta-training run.

    Attributes:
      lopt: `velo.lopt.preset` name of the learned optimizer being meta-trained.
      trainable: paths (``/``-separated) of the meta-parameter subtrees ES searches over, e.g.
        ``("hypernet/step",)``; the rest stay at the untrained ``init:LOPT`` (empty = all are
        meta-trained). ES's gradient estimate from N directions in D dimensions has a cosine
        of about sqrt(N / D) with the true gradient: 0.02 for 32 members on all 45,569 of the
        ``v2`` preset, 0.5 on its 65-dimensional step head.
      distribution: `tasks.sample` distribution the training tasks come from.
      families: keep only draws of these task families (e.g. ``("mlp", "quadratic")``); empty
        keeps all. Applies to training and validation tasks.
      max_task_flops: redraw tasks whose estimated FLOPs per training step exceed this (0 = no
        limit): on CPU the largest tasks of a distribution cost more than the rest together.
      max_reparam_exponent: redraw tasks reparameterised by more than ``10**this`` (0..3; 3 keeps
        all): with a small task pool, one extreme scale dominates what the optimizer learns.
      estimator: evosax strategy: ``open_es`` (antithetic OpenAI-ES), ``pgpe``, ``snes``, or the
        truncated ``pes`` (PersistentES) and ``nres`` (NoiseReuseES).
      shaping: how fitness is shaped within each task before averaging over tasks: ``rank``
        (centred ranks; SNES's recombination weights for ``snes``) or ``sign`` (sign of the
        antithetic difference, as VeLO).
      population: members per generation; even for antithetic estimators. With ``stagger``,
        members per slot (the strategy's population is ``population * tasks_per_generation``).
      tasks_per_generation: tasks drawn per generation; every member trains on each. With
        ``stagger``, the number of slots, each with its own task and members.
      stagger: truncated estimators only: each of the ``tasks_per_generation`` slots runs its
        own trajectory (task, horizon, start, inner states, perturbations) with its own
        ``population`` members, and the first trajectories end after a random number of chunks,
        so slots begin and end at different generations (`meta_train.staggered`). Off, one
        trajectory at a time: every member trains on every task, all of one horizon and start.
      task_pool: size of the pool of task specs drawn from ``distribution`` at the start (by
        ``seed``) that generations draw from; each distinct spec is a compiled program, which on
        CPU costs far more than a generation. 0 = draw fresh specs every generation.
      pool_refresh: every this many generations one pool entry is replaced by a fresh draw
        (0 = never), so long runs keep seeing new tasks at one compile per refresh.
      pool_by_family: pool slot ``i`` draws only family ``families[i % len(families)]``, so
        every listed family stays in the pool (otherwise ``max_task_flops`` rejects the costlier
        families, RNNs and transformers, almost every time).
      slot_per_pool_entry: with ``stagger``, slot ``i`` always trains pool entry ``i`` (needs
        ``tasks_per_generation == task_pool``), so every generation trains every pool entry
        (with ``pool_by_family``, every family) instead of a random draw per trajectory, which
        let long trajectories of one family hold most slots.
      horizon_min, horizon_max: inner training lengths are drawn log-uniformly from this range,
      horizon_buckets: rounded to this many log-spaced multiples of ``chunk``.
      balance_horizons: draw a bucket with probability proportional to 1 / horizon. A truncated
        trajectory lasts horizon / chunk generations, so each bucket then gets about the same
        number of meta-updates; plain uniform draws give the longest bucket most of them.
      chunk: inner steps per compiled call (one program per task serves every horizon); also the
        truncation length of ``pes``/``nres``, which advance one chunk per generation.
      fitness_tail: fraction of the unroll (its last part) whose mean normalised training loss is
        the fitness; 1.0 = the whole unroll. Truncated estimators use each chunk's mean; with
        ``stagger`` only the chunks in the last ``fitness_tail`` of each slot's trajectory enter
        the estimate (NRES keeps a slot's perturbation for its whole trajectory, so those
        chunks still carry the effect of every earlier step: the estimate is of the gradient
        of the final loss, what evaluation measures, not of the loss summed over training,
        which rewards large early steps). Without ``stagger`` it is ignored there.
      sigma: initial standard deviation of the ES perturbations.
      learning_rate: outer Adam learning rate.
      clip: the ES gradient is clipped to this global norm before Adam.
      generations: total generations of the run.
      seed: seeds the meta-parameter init, tasks, horizons, perturbations and data.
      validate_every: generations between validations of the mean meta-parameters (0 = never).
      validation_tasks: size of the fixed validation task set (disjoint from the held-out suite);
        each task is trained ``population`` times (seeds) with the mean meta-parameters.
      validation_steps: inner steps per validation run (rounded to a multiple of ``chunk``).
      validation_long_steps: the cheapest validation task (FLOPs per step) trains for this many
        steps instead (0 = none), so a meta-parameter set whose runs blow up late never
        validates best.
      validation_families: validation task ``i`` is of family ``validation_families[i %
        len(validation_families)]`` (empty = any of ``families``), so validation sees the
        families that training does.
      validation_geometric: the validation "mean" (what ``--step best`` ranks by) is the
        geometric mean over tasks, so each task's relative change counts the same; the
        arithmetic mean lets the tasks with the largest losses decide, or the one task that
        moves while the others are flat.
      checkpoint_every: generations between checkpoints.
      keep_checkpoints: most recent checkpoints kept (the best by validation is kept too).
    """

    lopt: str = "tiny"
    trainable: tuple[str, ...] = ()
    distribution: str = "tiny"
    families: tuple[str, ...] = ()
    max_task_flops: float = 0.0
    max_reparam_exponent: int = MAX_EXPONENT
    estimator: str = "open_es"
    shaping: str = "rank"
    population: int = 16
    tasks_per_generation: int = 2
    stagger: bool = False
    task_pool: int = 4
    pool_refresh: int = 0
    pool_by_family: bool = False
    slot_per_pool_entry: bool = False
    horizon_min: int = 50
    horizon_max: int = 200
    horizon_buckets: int = 3
    balance_horizons: bool = False
    chunk: int = 25
    fitness_tail: float = 1.0
    sigma: float = 0.01
    learning_rate: float = 3e-3
    clip: float = 1.0
    generations: int = 100
    seed: int = 0
    validate_every: int = 10
    validation_tasks: int = 3
    validation_steps: int = 100
    validation_long_steps: int = 0
    validation_families: tuple[str, ...] = ()
    validation_geometric: bool = False
    checkpoint_every: int = 10
    keep_checkpoints: int = 3

    def __post_init__(self):
        if self.estimator not in ESTIMATORS:
            raise ValueError(
                f"unknown estimator {self.estimator!r}; choose one of: {', '.join(ESTIMATORS)}"
            )
        if self.shaping not in SHAPINGS:
            raise ValueError(
                f"unknown shaping {self.shaping!r}; choose one of: {', '.join(SHAPINGS)}"
            )
        if self.shaping == "sign" and self.estimator not in ANTITHETIC:
            raise ValueError(
                f"shaping='sign' needs antithetic pairs, which {self.estimator!r} does not draw; "
                f"use shaping='rank' or one of: {', '.join(ANTITHETIC)}"
            )
        if self.population < 2:
            raise ValueError(f"population must be >= 2, got {self.population}")
        if self.estimator in ANTITHETIC and self.population % 2:
            raise ValueError(
                f"population must be even for antithetic sampling ({self.estimator}), got "
                f"{self.population}; set population={self.population + 1}"
            )
        if self.stagger and self.estimator not in TRUNCATED:
            raise ValueError(
                f"stagger needs a truncated estimator ({', '.join(TRUNCATED)}), got "
                f"{self.estimator!r}; set stagger=False or estimator=nres"
            )
        positive = ("tasks_per_generation", "horizon_min", "horizon_buckets", "chunk",
                    "generations", "validation_tasks", "validation_steps", "checkpoint_every",
                    "keep_checkpoints")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("validate_every", "task_pool", "pool_refresh", "validation_long_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (0 = off), got {getattr(self, name)}")
        if self.horizon_max < self.horizon_min:
            raise ValueError(
                f"horizon_max ({self.horizon_max}) must be >= horizon_min ({self.horizon_min})"
            )
        if not 0.0 < self.fitness_tail <= 1.0:
            raise ValueError(f"fitness_tail must be in (0, 1], got {self.fitness_tail}")
        if not 0 <= self.max_reparam_exponent <= MAX_EXPONENT:
            raise ValueError(
                f"max_reparam_exponent must be in [0, {MAX_EXPONENT}], got "
                f"{self.max_reparam_exponent}"
            )
        if self.pool_by_family and not (self.families and self.task_pool):
            raise ValueError("pool_by_family needs families and a task_pool; set both or "
                             "pool_by_family=false")
        if self.slot_per_pool_entry and not (
                self.stagger and self.task_pool == self.tasks_per_generation):
            raise ValueError(
                f"slot_per_pool_entry needs stagger=True and task_pool == tasks_per_generation "
                f"(got stagger={self.stagger}, task_pool={self.task_pool}, "
                f"tasks_per_generation={self.tasks_per_generation})")
        for i, path in enumerate(self.trainable):
            if not path or any(path == other or path.startswith(other + "/") or
                               other.startswith(path + "/")
                               for other in self.trainable[i + 1:]):
                raise ValueError(f"trainable paths must be non-empty and not nested, got "
                                 f"{self.trainable}")
        if self.max_task_flops < 0:
            raise ValueError(
                f"max_task_flops must be >= 0 (0 = no limit), got {self.max_task_flops}"
            )
        for name in ("sigma", "learning_rate", "clip"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value}")

    @property
    def horizons(self) -> tuple[int, ...]:
        """The log-spaced horizon buckets, multiples of ``chunk``."""
        n = self.horizon_buckets
        ratio = self.horizon_max / self.horizon_min
        raw = [self.horizon_min * ratio ** (i / max(n - 1, 1)) for i in range(n)]
        return tuple(sorted({self.round_to_chunk(h) for h in raw}))

    def round_to_chunk(self, steps: float) -> int:
        """``steps`` rounded to the nearest positive multiple of ``chunk``."""
        return max(1, round(steps / self.chunk)) * self.chunk

    @property
    def members(self) -> int:
        """The strategy's population: ``population`` per slot with ``stagger``."""
        return self.population * (self.tasks_per_generation if self.stagger else 1)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


PRESETS = {
    # A visible improvement within minutes on 2 CPU cores: MLP and quadratic tasks of the tiny
    # distribution, which compile fastest (each distinct task is a program compiled once).
    "tiny": Config(families=("mlp", "quadratic"), task_pool=3, validation_tasks=2,
                   generations=200),
    # The CPU recipe of the shipped checkpoint: a few seconds per generation, thousands of
    # generations over several resumed invocations (Celo/µLO regime, scaled down). Revised after
    # four runs that made the optimizer greedier (faster early, worse or diverging at the
    # 1000-step budgets of the held-out suite; checkpoints/velo_small/README.md has the numbers):
    # horizons 250-1000 instead of 50-400, fitness on the last fifth of the unroll, a 16-task
    # pool of cheap MLP, autoencoder and quadratic tasks (under 2 MFLOPs/step, scales within
    # 10**+-2; one replaced every 25 generations), 4 tasks per generation, 1000-step validation.
    "small": Config(
        lopt="small", distribution="default", families=("mlp", "autoencoder", "quadratic"),
        max_task_flops=2e6, max_reparam_exponent=2, seed=7, population=32,
        tasks_per_generation=4, task_pool=16, pool_refresh=25, horizon_min=250,
        horizon_max=1000, horizon_buckets=3, fitness_tail=0.2, sigma=0.01, learning_rate=5e-4,
        clip=1.0, generations=5000, validate_every=20, validation_tasks=4, validation_steps=1000,
        checkpoint_every=10, keep_checkpoints=3,
    ),
    # The v2 recipe for CPU (issue 15), resumable over ~20 core-hours. NRES (noise-reuse
    # truncated ES: lower variance than PES, and faster in wall-clock on learned optimizers; Li
    # et al. 2023) reaches 10,000-step horizons one 50-step chunk per generation; horizons are
    # weighted 1/T so the 250- and 10,000-step buckets get equal meta-updates (held-out budgets
    # are 300-1000 steps). The 6-task pool keeps one task of each family (CNN, RNN, transformer
    # beside MLP, autoencoder, quadratic) under 1e7 FLOPs/step, where the cheapest RNNs and
    # transformers still run hundreds of steps/s; one entry is redrawn every 200 generations,
    # since compiling rule v2 for a task takes 1-2 minutes on loaded cores. Reparameterised by
    # up to 10**+-3 as VeLO/Celo/Celo2 (rule v2 measures steps in each tensor's initial scale).
    # Staggered trajectories: 6 slots of 8 members, slot i always on pool entry i (one family
    # each), out of phase from a random first truncation, so every generation's meta-gradient
    # mixes all six families and early and late training.
    # Only the step head is meta-trained (65 of the 45,569 meta-parameters): the LSTM, the
    # mixing head and the MLP bank stay at init:v2. Two runs over all 45,569 (runs/base,
    # runs/base2: 634 and 800 generations) made validation worse: 32 directions a generation
    # estimate a 45,569-dimensional gradient with a cosine of ~0.03, so outer Adam mostly
    # walked at random, and one family (the transformer held 35% of the slots) drove what
    # signal there was. On 65 dimensions the cosine is ~0.6, and the step head is what the
    # init gets most wrong (its fixed 0.01 step is too small for the RNNs and CNNs at the
    # held-out budgets, too large late in others): it sets each tensor's step within x0.1-x10
    # of the prior schedule from the LSTM's view of the tensor, the progress and the loss.
    # sigma 0.03 moves a step by ~10-30 %, enough for antithetic pairs (which share data) to
    # differ clearly. Outer Adam 6e-4: Adam moves every coordinate by about its learning rate
    # whatever the noise, and the step output sums 64 of them, so at 2e-3 the kernel walked to
    # norm 1.2 in 200 generations and the autoencoder's validation loss went 0.05 -> 0.94; at
    # 2228 generations 6e-4 (runs/base4, shipped as velo_v2) beat 2e-4 (runs/base3) on the
    # held-out suite: speed-up IQM vs tuned Adam 0.90 against 0.83, reaches tuned AdamW-cosine
    # on 9 of 21 tasks against 6.
    # Fitness: only the chunks in the last fifth of each slot's trajectory (`fitness_tail`).
    # Summed over the whole trajectory, the meta-loss rewards large early steps: ES raised the
    # steps, and the autoencoder validation task (which ends at 0.019 with half the init's
    # step, 0.057 with it and 0.30 with twice it, while its first 100 steps go the other way)
    # got worse in each of the first three runs.
    # Validation: 5 tasks, one per family of the pool but the RNN (the first RNN validation draw,
    # an LSTM of 32 units, hung in XLA's CPU runtime: a vmapped orthogonal init, since replaced
    # by `lax.map` in `population.init_members`; the families stay so the runs resume), the
    # cheapest dense network for 5000 steps,
    # scored on each run's last fifth, so a late blow-up never validates best; their geometric
    # mean ranks checkpoints. With 3 tasks (autoencoder, quadratic, logistic regression) and
    # the arithmetic mean, validation followed the autoencoder alone (0.052 -> 0.098 in 500
    # generations, the others flat) while the same checkpoint beat init:v2 on all 5 quick
    # held-out tasks (3 seeds, 3-18 % lower final loss).
    "base": Config(
        lopt="v2", trainable=("hypernet/step",), distribution="default",
        families=("mlp", "autoencoder", "quadratic", "cnn", "rnn", "transformer"),
        pool_by_family=True, max_task_flops=1e7, max_reparam_exponent=3, seed=16,
        estimator="nres", population=8, tasks_per_generation=6, stagger=True, task_pool=6,
        slot_per_pool_entry=True, pool_refresh=200, horizon_min=250, horizon_max=10_000,
        horizon_buckets=4, balance_horizons=True, chunk=50, fitness_tail=0.2, sigma=0.03,
        learning_rate=6e-4, clip=1.0, generations=20_000, validate_every=200,
        validation_tasks=5, validation_steps=1000, validation_long_steps=5000,
        validation_families=("mlp", "autoencoder", "quadratic", "cnn", "transformer"),
        validation_geometric=True, checkpoint_every=20, keep_checkpoints=2,
    ),
    # Accelerator scale, VeLO's recipe: full-unroll antithetic ES with sign shaping, sigma 0.01,
    # Adam 3e-4 with clipping, 8 tasks per estimate, horizons log-uniform up to 20k steps; a
    # large pool, slowly refreshed (VeLO resampled each worker's task every ~1000 steps).
    "velo": Config(
        lopt="velo", distribution="large", shaping="sign", population=256,
        tasks_per_generation=8, task_pool=64, pool_refresh=10, horizon_min=100,
        horizon_max=20_000, horizon_buckets=8, chunk=100,
        fitness_tail=0.1, sigma=0.01, learning_rate=3e-4, clip=3.0, generations=100_000,
        validate_every=500, validation_tasks=16, validation_steps=2000,
        checkpoint_every=100, keep_checkpoints=5,
    ),
}


def preset(name: str) -> Config:
    """The named preset: ``tiny``, ``small``, ``base`` or ``velo``."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]
