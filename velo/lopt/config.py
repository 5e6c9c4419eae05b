"""The learned optimizer's architecture and fixed constants, with named presets.

A `Config` fixes everything that is *not* meta-learned: accumulator decays, feature definitions,
network sizes and the constants of the update rule. Meta-parameters (see `init.py`) only make
sense together with the `Config` they were built for, so checkpoints store both, plus
`FEATURE_VERSION`, which changes whenever the meaning of a feature changes.
"""

from __future__ import annotations

import dataclasses

# Bump when a feature's definition or order changes: old meta-parameters then read wrong inputs.
FEATURE_VERSION = 1


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
        for name in ("init_step", "param_scale_floor", "max_direction", "min_loss_half_life"):
            if not getattr(self, name) > 0:
                raise ValueError(f"Config.{name} must be > 0, got {getattr(self, name)}")

    def to_dict(self) -> dict:
        """JSON-ready fields (tuples become lists)."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

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
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})


PRESETS: dict[str, Config] = {
    "tiny": Config(lstm_size=32, bank_size=8),
    "small": Config(lstm_size=64, bank_size=32),
    "velo": Config(lstm_size=512, bank_size=256),
}
DEFAULT_PRESET = "small"


def preset(name: str) -> Config:
    """The named preset: ``"tiny"`` (LSTM 32, bank 8), ``"small"`` (64, 32; the default, about
    VeLO-S) or ``"velo"`` (512, 256: VeLO's sizes)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]
