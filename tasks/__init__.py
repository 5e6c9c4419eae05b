"""velo's task population: training problems for meta-training and evaluation.

`tasks` knows nothing of `velo`: a task is a model, a dataset and a loss, usable with any optimizer.

- `TaskSpec`: the frozen, JSON-serialisable description of a task; `build(spec)` makes the `Task`.
- `get(name)` / `names()`: named tasks (``digits_mlp`` and the held-out suite).
- `sample(key, distribution)`: a random spec from ``tiny``, ``default`` or ``large``.
- `heldout_suite()` / `quick_suite()`: fixed evaluation suites, disjoint from every distribution.
"""

from tasks.base import Task
from tasks.registry import build, get, names
from tasks.sampler import DISTRIBUTIONS, in_support, sample
from tasks.spec import TaskSpec
from tasks.suites import heldout_suite, quick_suite

__all__ = ["DISTRIBUTIONS", "Task", "TaskSpec", "build", "get", "heldout_suite", "in_support",
           "names", "quick_suite", "sample"]
