"""The learned optimizer: per-tensor LSTM hypernetwork emitting per-parameter MLP weights.

Public API: `optax_lopt`, `Config`, `preset`, `init_meta_params`, `save`, `load`, `locate`,
`identity`.
"""

from velo.lopt.checkpoint import DEFAULT_CHECKPOINT, identity, load, locate, save
from velo.lopt.config import FEATURE_VERSION, PRESETS, Config, preset
from velo.lopt.init import init_meta_params, num_meta_params
from velo.lopt.transform import LOptState, optax_lopt

__all__ = [
    "DEFAULT_CHECKPOINT",
    "FEATURE_VERSION",
    "PRESETS",
    "Config",
    "LOptState",
    "identity",
    "init_meta_params",
    "load",
    "locate",
    "num_meta_params",
    "optax_lopt",
    "preset",
    "save",
]
