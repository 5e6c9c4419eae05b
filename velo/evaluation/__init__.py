"""Fair comparison of optimizers: tuned baselines, VeLO's speed-up over Adam, tables and plots.

`evaluate(Protocol(...), out)` runs a suite and writes ``results.json``, ``summary.csv``,
``report.md`` and PNG plots to ``out``; `velo eval` is its command line.
"""

from velo.evaluation.aggregate import Summary, iqm, summarize
from velo.evaluation.curves import ema, monotone_envelope, steps_to_reach
from velo.evaluation.evaluate import Evaluation, evaluate
from velo.evaluation.metrics import TaskMetrics, task_metrics
from velo.evaluation.protocol import Protocol, learning_rates, select
from velo.evaluation.speedup import Speedup, speedup
from velo.evaluation.sweep import Sweep

__all__ = [
    "Evaluation", "Protocol", "Speedup", "Summary", "Sweep", "TaskMetrics", "ema", "evaluate",
    "iqm", "learning_rates", "monotone_envelope", "select", "speedup", "steps_to_reach",
    "summarize", "task_metrics",
]
