"""velo's task population: training problems for meta-training and evaluation.

`tasks` knows nothing of `velo`: a task is a model, a dataset and a loss, usable with any optimizer.
"""

from tasks.base import Task
from tasks.registry import get, names

__all__ = ["Task", "get", "names"]
