"""The long suite: cheap tasks trained for 3,000-10,000 steps, VeLOdrome-like budgets on a CPU.

The held-out budgets are 300-1,000 steps, where an optimizer that anneals its own steps wins
easily; these tasks ask whether it still wins when the run is long enough for a tuned, decayed
baseline to converge. They are small, picked by measured steps per second (see BENCHMARKS.md), so
three optimizers (learned, Adam, AdamW with cosine decay) on all of them, 3 seeds and a 9-rate
grid, fit in about half an hour on 2 CPU cores. Like the held-out suite they lie outside every
sampler distribution (batch sizes and widths off the power-of-two grids), and none repeats a
held-out spec, so `tasks.build` maps each spec back to exactly one named task.
"""

from __future__ import annotations

from tasks.spec import TaskSpec

LONG: dict[str, tuple[TaskSpec, int]] = {
    "long_digits4_mlp": (
        TaskSpec("mlp", "digits4", {"hidden": [20, 20], "activation": "relu"}, 40), 5000),
    "long_teacher_mlp": (
        TaskSpec("mlp", "teacher", {"hidden": [24, 24], "activation": "gelu"}, 40), 5000),
    "long_digits4_cnn": (
        TaskSpec("cnn", "digits4", {"channels": [6, 12], "downsample": "stride",
                                    "activation": "relu"}, 24), 3000),
    "long_digits4_autoencoder": (
        TaskSpec("autoencoder", "digits4", {"hidden": [12, 6], "activation": "relu"}, 40),
        5000),
    "long_english_rnn": (
        TaskSpec("rnn", "english", {"cell": "vanilla", "hidden": 24, "embed": 8, "seq": 20}, 12),
        3000),
    # On a CPU a sequence model costs per time step more than per FLOP (a 20-character LSTM took
    # 14 ms per run-step in a 27-run sweep on a loaded machine), so these get short contexts.
    "long_english_lstm": (
        TaskSpec("rnn", "english", {"cell": "lstm", "hidden": 20, "embed": 8, "seq": 12}, 8),
        3000),
    "long_english_transformer": (
        TaskSpec("transformer", "english", {"layers": 1, "width": 24, "heads": 2, "seq": 12},
                 8), 3000),
    "long_digits4_vit": (
        TaskSpec("vit", "digits4", {"patch": 2, "width": 12, "layers": 1, "heads": 2}, 24), 3000),
    "long_quadratic": (
        TaskSpec("quadratic", "quadratic", {"dim": 48, "log10_condition": 3}, 6), 10000),
    "long_logistic_regression": (TaskSpec("mlp", "logistic", {"hidden": [], "activation": "relu"},
                                          200), 5000),
}
