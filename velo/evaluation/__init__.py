"""Fair comparison of optimizers: tuned baselines, VeLO's speed-up over two references (tuned
Adam and tuned AdamW with warmup and cosine decay), bootstrap intervals, tables and plots.

`evaluate(Protocol(...), out)` runs a suite and writes ``results.json``, ``summary.csv``,
``report.md`` and PNG plots to ``out``; `velo eval` is its command line.
"""

from velo.evaluation.aggregate import FamilySummary, Summary, by_family, iqm, summarize
from velo.evaluation.curves import ema, monotone_envelope, steps_to_reach
from velo.evaluation.evaluate import Evaluation, evaluate
from velo.evaluation.metrics import Resampled, TaskMetrics, resampled_metrics, task_metrics
from velo.evaluation.protocol import Protocol, learning_rates, select
from velo.evaluation.speedup import Speedup, speedup
from velo.evaluation.sweep import Sweep

__all__ = [
    "Evaluation", "FamilySummary", "Protocol", "Resampled", "Speedup", "Summary", "Sweep",
    "TaskMetrics", "by_family", "ema", "evaluate", "iqm", "learning_rates", "monotone_envelope",
    "resampled_metrics", "select", "speedup", "steps_to_reach", "summarize", "task_metrics",
]
