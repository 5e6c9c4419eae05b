"""Meta-training of velo's learned optimizer by evolution strategies over the task population.

`meta_train` composes `tasks` (what to train on) and `velo.lopt` (what is learned) with evosax
(how to estimate the meta-gradient), sharding the population over every device with a JAX mesh.

Public API: `meta_train`, `RunResult`, `TaskSource`, `Config`, `preset`, `PRESETS`, `export`,
`plot`.

References:
  Metz et al., "VeLO: Training Versatile Learned Optimizers by Scaling Up", 2022.
  https://arxiv.org/abs/2211.09760
  Salimans, Ho, Chen, Sidor, Sutskever, "Evolution Strategies as a Scalable Alternative to
  Reinforcement Learning", 2017. https://arxiv.org/abs/1703.03864
  Vicol, Metz, Sohl-Dickstein, "Unbiased Gradient Estimation in Unrolled Computation Graphs with
  Persistent Evolution Strategies", ICML 2021. https://arxiv.org/abs/2112.13835
  Lange, "evosax: JAX-based Evolution Strategies", 2022. https://arxiv.org/abs/2212.04180
"""

from meta_train.config import PRESETS, Config, preset
from meta_train.export import export
from meta_train.loop import RunResult, meta_train
from meta_train.plot import plot
from meta_train.run import TaskSource

__all__ = ["PRESETS", "Config", "RunResult", "TaskSource", "export", "meta_train", "plot",
           "preset"]
