"""velo's task population: training problems for meta-training and evaluation.

`tasks` knows nothing of `velo`: a task is a model, a dataset and a loss, usable with any optimizer.

- `TaskSpec`: the frozen, JSON-serialisable description of a task; `build(spec)` makes the `Task`.
- `get(name)` / `names()`: named tasks (``digits_mlp`` and the held-out suite).
- `sample(key, distribution)`: a random spec from ``tiny``, ``default`` or ``large``.
- `heldout_suite()` / `quick_suite()` / `long_suite()`, `suite(name)`: fixed evaluation suites,
  disjoint from every distribution.
"""

from tasks.base import Task
from tasks.registry import build, get, names
from tasks.sampler import DISTRIBUTIONS, in_support, sample
from tasks.spec import TaskSpec
from tasks.suites import SUITES, heldout_suite, long_suite, quick_suite, suite

__all__ = ["DISTRIBUTIONS", "SUITES", "Task", "TaskSpec", "build", "get", "heldout_suite",
           "in_support", "long_suite", "names", "quick_suite", "sample", "suite"]
