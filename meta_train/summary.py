"""A meta-training run in a few lines of text, from its log records: what the model card quotes."""

from __future__ import annotations

from collections import Counter


def summarize(records: list[dict]) -> list[str]:
    """Lines on ``records`` (`meta_train.log.read` or `RunResult.records`): generations, compute,
    tasks seen, meta-loss trend and validation (first, best, last)."""
    lines = []
    train = [r for r in records if "meta_loss" in r]
    if train:
        compile_s = sum(r["compile_s"] for r in train)
        train_s = sum(r["generation_s"] for r in train)
        val_s = sum(r.get("validation_s", 0.0) for r in records)
        steps = sum(r["model_steps_per_s"] * max(r["generation_s"] - r["compile_s"], 0.0)
                    for r in train)
        # Tasks change every generation, so compare means over several generations.
        finite = [r for r in train if r["meta_loss"] is not None]  # None: every member diverged
        k = max(1, len(finite) // 5)
        first, last = (sum(r["meta_loss"] for r in part) / max(len(part), 1)
                       for part in (finite[:k], finite[-k:]))
        lines.append(
            f"generations {train[0]['generation']}-{train[-1]['generation']}: meta-loss (mean of "
            f"{k} generations) {first:.4f} -> {last:.4f}")
        lines.append(
            f"wall time {(train_s + val_s) / 3600:.2f} h: training {train_s:.0f} s (of which "
            f"{compile_s:.0f} s compiling), validation {val_s:.0f} s; {steps:.3g} inner model "
            f"steps")
        seen = {name for r in train for name in r["tasks"]}
        families = Counter(name.split("_")[0] for name in seen)
        lines.append(f"{len(seen)} distinct training tasks: "
                     + ", ".join(f"{n} {f}" for f, n in sorted(families.items())))
    val = [r for r in records if "validation" in r]
    if val:
        scored = [r for r in val if r["validation"]["mean"] is not None]
        best = min(scored, key=lambda r: r["validation"]["mean"]) if scored else None
        parts = [f"{_validation_text(val[0])} (generation {val[0]['generation']})"]
        if best is not None:
            parts.append(f"best {best['validation']['mean']:.4f} (generation "
                         f"{best['generation']})")
        parts.append(f"last {_validation_text(val[-1])} (generation {val[-1]['generation']})")
        lines.append("validation meta-loss: " + ", ".join(parts))
    return lines


def _validation_text(record: dict) -> str:
    v = record["validation"]
    if v["mean"] is None:
        return f"diverged on {', '.join(v['diverged'])}"
    return f"{v['mean']:.4f}"
