"""Meta-training of velo's learned optimizer by evolution strategies over the task population.

`meta_train` composes `tasks` (what to train on) and `velo.lopt` (what is learned) with evosax
(how to estimate the meta-gradient), sharding the population over every device with a JAX mesh.

Public API: `meta_train`, `Config`, `preset`, `PRESETS`, `export`, `plot`.
"""

from meta_train.config import PRESETS, Config, preset
from meta_train.export import export
from meta_train.loop import RunResult, meta_train
from meta_train.plot import plot

__all__ = ["PRESETS", "Config", "RunResult", "export", "meta_train", "plot", "preset"]
