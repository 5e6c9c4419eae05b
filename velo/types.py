"""Type aliases shared by the training loop, the baselines and the evaluation.

Kept in a module of their own, free of JAX and of `tasks`, so that `velo.baselines` can name them
without importing the training loop or the task zoo.
"""

from collections.abc import Callable
from typing import Any

# ``(opt_state, params) -> params``: the point to evaluate a run at, for optimizers whose iterate
# is not it (schedule-free methods, Lookahead's slow weights).
EvalParamsFn = Callable[[Any, Any], Any]
