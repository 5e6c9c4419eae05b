"""The learned optimizer: per-tensor LSTM hypernetwork emitting per-parameter MLP weights.

Public API: `optax_lopt` (the guarded optimizer), `scale_by_lopt` (the bare transform),
`Config`, `preset`, `init_meta_params`, `save`, `load`, `locate`, `identity`, `shipped`
(the checkpoints that ship), `rules` (the update rules by name).
"""

from velo.lopt import rules, shipped
from velo.lopt.checkpoint import DEFAULT_CHECKPOINT, identity, load, locate, save
from velo.lopt.config import FEATURE_VERSION, PRESETS, Config, preset
from velo.lopt.init import init_meta_params, num_meta_params
from velo.lopt.transform import LOptState, ScaleByLOptState, optax_lopt, scale_by_lopt

__all__ = [
    "DEFAULT_CHECKPOINT",
    "FEATURE_VERSION",
    "PRESETS",
    "Config",
    "LOptState",
    "ScaleByLOptState",
    "identity",
    "init_meta_params",
    "load",
    "locate",
    "num_meta_params",
    "optax_lopt",
    "preset",
    "rules",
    "save",
    "scale_by_lopt",
    "shipped",
]
