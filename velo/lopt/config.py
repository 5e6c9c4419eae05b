"""The learned optimizer's architecture and fixed constants, with named presets.

A `Config` fixes everything that is *not* meta-learned: accumulator decays, feature definitions,
network sizes and the constants of the update rule. Meta-parameters (see `init.py`) only make
sense together with the `Config` they were built for, so checkpoints store both, plus the
feature version of the config's update rule (`rules.feature_version`), which changes whenever
the meaning of a feature or an output changes.

Presets: ``tiny``, ``small`` and ``velo`` use rule ``v1`` (`rule_v1`, VeLO's unbounded rule);
``v2_tiny`` and ``v2`` use rule ``v2`` (`rule_v2`, bounded by construction).
"""

from __future__ import annotations

import dataclasses
import math

# The update rules `Config.rule` may name (`rules.RULES` holds them).
RULE_NAMES = ("v1", "v2")
# The element samples `Config.stats_sample` may name.
STATS_SAMPLES = ("strided", "blocks")
# The newest rule's feature version (`rules.feature_version` gives any config's).
FEATURE_VERSION = 2


@dataclasses.dataclass(frozen=True)
class Config:
    """Static description of a learned optimizer.

    Attributes:
      lstm_size: width of the per-tensor LSTM and of its input embedding.
      bank_size: K, number of per-parameter MLP weight sets the LSTM mixes between.
      mlp_hidden: width of each of the per-parameter MLP's two hidden layers.
      momentum_decays: decays of the gradient EMAs.
      second_moment_decay: decay of the full (per-element) EMA of g**2.
      factored_decays: decays of the Adafactor row/column EMAs of g**2 (full vectors below rank 2).
      num_loss_emas: number of loss EMAs, half-lives log-spaced from `min_loss_half_life` to the
        run length.
      min_loss_half_life: shortest loss-EMA half-life, in steps.
      progress_offsets: s in the progress features tanh(10 (t/T - s)).
      init_step: step multiplier of the initial meta-parameters: each tensor moves by about
        `init_step * max(RMS(p), param_scale_floor)` per step (RMS over the tensor).
      mag_mult: update factor exp(mag_mult * m) for the MLP's log-magnitude output m.
      param_scale_floor: smallest tensor scale, so zero-initialised tensors (biases) still move.
      max_direction: |d * exp(mag_mult * m)| is clipped to this, bounding one step in units of
        the tensor's scale.
      init_noise: relative spread of the bank members around the hand-designed initial MLP.
      rule: the update rule, ``"v1"`` or ``"v2"``. The fields below are read by rule v2 only.
      step_bound: b in the learned step modulation exp(b * tanh(u)): the LSTM can scale each
        tensor's scheduled step by at most exp(+-b).
      warmup_fraction: the prior schedule rises linearly over this fraction of ``num_steps``...
      final_step_fraction: ...then decays by a half cosine to this fraction of `init_step` at
        ``num_steps``, and holds it after.
      max_progress: the fraction of training done that the progress features see is capped here
        (v1: no cap), so a run longer than planned shows the LSTM nothing new.
      orthogonalize: replace the direction of every 2-D tensor by its Newton-Schulz
        orthogonalisation (Muon's quintic) before normalising it.
      adam_for_vectors: tensors of rank < 2 (biases, norms) step along Adam's direction
        m / sqrt(v), not the MLP's, at the same scheduled step.
      scale_reference: the tensor scale steps are measured in: ``"current"``, max(RMS(p),
        floor) now (steps are relative, so a weight norm can grow geometrically), or
        ``"initial"``, max(RMS(p at init), floor) (steps are fixed in size after init, so
        norms can grow at most linearly).
      dropped_inputs: per-element features (`features.PER_ELEMENT_FEATURES`) the MLP does not
        read: neither they nor their statistics are computed, their ``w1`` rows are ignored
        (zero at init), and each saves ~8 flops per parameter and step. A checkpoint whose
        rows of these features are zero computes the same updates with or without them.
      stats_sample: which elements of a tensor larger than `sampling.STATS_SAMPLE` its
        statistics (LSTM inputs, feature RMS) are computed on: ``"strided"``, every k-th
        element; ``"blocks"``, every k-th run of `sampling.SAMPLE_BLOCK` contiguous elements
        (k odd), about as many elements in all. The strided sample reads almost every cache
        line of six full-size arrays; the blocks read a few percent of them.
    """

    lstm_size: int = 64
    bank_size: int = 32
    mlp_hidden: int = 4
    momentum_decays: tuple[float, ...] = (0.9, 0.99, 0.999)
    second_moment_decay: float = 0.999
    factored_decays: tuple[float, ...] = (0.9, 0.99, 0.999)
    num_loss_emas: int = 10
    min_loss_half_life: float = 10.0
    progress_offsets: tuple[float, ...] = (0.03, 0.1, 0.2, 0.4, 0.6, 0.8, 0.9, 1.0, 1.1)
    init_step: float = 0.01
    mag_mult: float = 1.0
    param_scale_floor: float = 0.01
    max_direction: float = 10.0
    init_noise: float = 0.05
    rule: str = "v1"
    step_bound: float = math.log(10.0)
    warmup_fraction: float = 0.05
    final_step_fraction: float = 0.02
    max_progress: float = math.inf
    orthogonalize: bool = False
    adam_for_vectors: bool = False
    scale_reference: str = "current"
    dropped_inputs: tuple[str, ...] = ()
    stats_sample: str = "strided"

    def __post_init__(self):
        for name in ("lstm_size", "bank_size", "mlp_hidden", "num_loss_emas"):
            if getattr(self, name) < 1:
                raise ValueError(f"Config.{name} must be >= 1, got {getattr(self, name)}")
        if self.num_loss_emas < 2:
            raise ValueError("Config.num_loss_emas must be >= 2 (features compare adjacent EMAs)")
        for name in ("momentum_decays", "factored_decays"):
            if len(getattr(self, name)) != 3:
                raise ValueError(f"Config.{name} must hold 3 decays, got {getattr(self, name)}")
        decays = (*self.momentum_decays, *self.factored_decays, self.second_moment_decay)
        if not all(0.0 < d < 1.0 for d in decays):
            raise ValueError(f"every decay must lie in (0, 1), got {decays}")
        for name in ("init_step", "param_scale_floor", "max_direction", "min_loss_half_life",
                     "step_bound", "final_step_fraction", "max_progress"):
            if not getattr(self, name) > 0:
                raise ValueError(f"Config.{name} must be > 0, got {getattr(self, name)}")
        if self.scale_reference not in ("current", "initial"):
            raise ValueError(
                "Config.scale_reference must be 'current' or 'initial', "
                f"got {self.scale_reference!r}"
            )
        if self.rule not in RULE_NAMES:
            raise ValueError(f"Config.rule must be one of {RULE_NAMES}, got {self.rule!r}")
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise ValueError(
                f"Config.warmup_fraction must lie in [0, 1), got {self.warmup_fraction}"
            )
        _check_dropped_inputs(self.dropped_inputs)
        if self.stats_sample not in STATS_SAMPLES:
            raise ValueError(
                f"Config.stats_sample must be one of {STATS_SAMPLES}, got {self.stats_sample!r}"
            )

    @property
    def full_momenta(self) -> int:
        """How many momenta, fastest first, are kept per element: up to the slowest one that a
        per-element MLP input reads (rule v2's `adam_for_vectors` reads the fastest). The
        others are kept at the statistics sample only (`accumulators.SharedMoments`)."""
        from velo.lopt.features import PER_ELEMENT_FEATURES

        kept = set(PER_ELEMENT_FEATURES) - set(self.dropped_inputs)
        read = [
            i
            for i in range(1, len(self.momentum_decays) + 1)
            if {f"m{i}", f"m{i}_v", f"m{i}_f{i}"} & kept or (i == 1 and self.adam_for_vectors)
        ]
        return max(read, default=0)

    def to_dict(self) -> dict:
        """JSON-ready fields (tuples become lists; an infinite float becomes the string "inf",
        since strict JSON has no Infinity)."""
        return {k: _to_json(v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, fields: dict) -> Config:
        """Inverse of `to_dict`; unknown keys raise `ValueError`."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise ValueError(
                f"config has fields this version of velo does not know: {', '.join(unknown)}; "
                "upgrade velo or re-save the checkpoint"
            )
        return cls(**{k: _from_json(v) for k, v in fields.items()})


def _check_dropped_inputs(dropped: tuple[str, ...]) -> None:
    if not dropped:
        return
    # Imported here (the presets below have none): the feature table's module imports this one.
    from velo.lopt.features import PER_ELEMENT_FEATURES
    from velo.lopt.param_mlp import PASS_THROUGH_FEATURE

    unknown = [name for name in dropped if name not in PER_ELEMENT_FEATURES]
    if unknown:
        raise ValueError(f"Config.dropped_inputs names no per-element feature: {unknown}; "
                         f"choose among {', '.join(PER_ELEMENT_FEATURES)}")
    if PASS_THROUGH_FEATURE in dropped:
        raise ValueError(f"Config.dropped_inputs cannot drop {PASS_THROUGH_FEATURE!r}: the "
                         "initial MLP passes it through")
    if list(dropped) != sorted(set(dropped), key=PER_ELEMENT_FEATURES.index):
        raise ValueError(f"Config.dropped_inputs must list each feature once, in table order "
                         f"(`features.PER_ELEMENT_FEATURES`), got {dropped}")


def _to_json(value):
    if isinstance(value, tuple):
        return list(value)
    return "inf" if isinstance(value, float) and math.isinf(value) else value


def _from_json(value):
    if isinstance(value, list):
        return tuple(value)
    return math.inf if value == "inf" else value


# Rule v2 measures steps against each tensor's scale at init: with the current scale, steps are
# relative and a weight norm can grow geometrically over a long run (a deep ReLU MLP on digits
# overflowed to NaN within 10,000 steps; with the initial scale it stayed finite and trained).
_V2 = dict(
    rule="v2", max_progress=1.0, scale_reference="initial",
    progress_offsets=(0.03, 0.1, 0.2, 0.4, 0.6, 0.8, 0.9, 1.0),
)


PRESETS: dict[str, Config] = {
    "tiny": Config(lstm_size=32, bank_size=8),
    "small": Config(lstm_size=64, bank_size=32),
    "velo": Config(lstm_size=512, bank_size=256),
    "v2_tiny": Config(lstm_size=32, bank_size=8, **_V2),
    "v2": Config(lstm_size=64, bank_size=32, **_V2),
}
DEFAULT_PRESET = "small"


def preset(name: str) -> Config:
    """The named preset: rule v1 at ``"tiny"`` (LSTM 32, bank 8), ``"small"`` (64, 32; the
    default, about VeLO-S) or ``"velo"`` (512, 256: VeLO's sizes); rule v2 at ``"v2_tiny"``
    (32, 8) or ``"v2"`` (64, 32)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]
