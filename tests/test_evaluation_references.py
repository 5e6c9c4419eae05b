"""Two references (tuned Adam, tuned adamw_cosine), seed-paired scores, bootstrap intervals,
per-family summaries and the report tables, on synthetic sweeps (nothing is trained)."""

import csv

import numpy as np
import pytest

from velo.evaluation import aggregate, bootstrap, metrics, report
from velo.evaluation.sweep import Sweep

BUDGET = 100
GRID = [1e-4, 1e-3, 1e-2]


def flat(*per_seed, length=BUDGET):
    """``[S, length]`` curves, each seed constant at its value."""
    return np.array([np.full(length, v) for v in per_seed], np.float32)


def sweep(rates, *per_rate):
    """A `Sweep` from ``[S, T]`` curves per learning rate."""
    return Sweep(rates, np.stack(per_rate), {}, None, 1e-6, 0.0)


def adam(*per_seed):  # the reference runs 2x the budget; the middle rate (its default) is best
    return sweep(GRID, flat(*[v + 1 for v in per_seed], length=2 * BUDGET),
                 flat(*per_seed, length=2 * BUDGET), flat(*[v + 2 for v in per_seed],
                                                          length=2 * BUDGET))


def task(adam_seeds, cosine_seeds, velo_seeds):
    return {"adam": adam(*adam_seeds),
            "adamw_cosine": sweep(GRID, flat(*[v + 1 for v in cosine_seeds]), flat(*cosine_seeds),
                                  flat(*[v + 1 for v in cosine_seeds])),
            "velo": sweep(None, flat(*velo_seeds))}


SWEEPS = {  # 2 seeds per task; velo beats both references on t1, Adam only on t2, none on t3
    "t1": task([0.5, 0.5], [0.4, 0.4], [0.3, 0.3]),
    "t2": task([0.5, 0.5], [0.2, 0.2], [0.4, 0.45]),
    "t3": task([0.5, 0.5], [0.3, 0.3], [0.6, 0.4]),
}
FAMILIES = {"t1": "mlp", "t2": "mlp", "t3": "rnn"}


@pytest.fixture(scope="module")
def evaluated():
    scores = {t: metrics.resampled_metrics(s, BUDGET, 0.95) for t, s in SWEEPS.items()}
    return {t: r.metrics[0] for t, r in scores.items()}, scores


def test_both_references_and_the_stronger_one(evaluated):
    m, _ = evaluated
    v1 = m["t1"]["velo"]
    assert v1.cosine_speedup == 1.0 and v1.cosine_speedup_censored  # never reached by cosine
    assert v1.steps_to_cosine is not None and metrics.reaches_cosine(v1)
    v2 = m["t2"]["velo"]
    assert v2.speedup_censored and not metrics.reaches_cosine(v2)
    assert v2.cosine_speedup == pytest.approx(1 / BUDGET) and not v2.cosine_speedup_censored
    assert [aggregate.stronger_baseline(m[t]) for t in SWEEPS] == ["adamw_cosine"] * 3
    adam_only = {n: x for n, x in m["t1"].items() if n != "adamw_cosine"}
    assert aggregate.stronger_baseline(adam_only) is None


def test_resampled_metrics_recompute_every_seed_multiset(evaluated):
    m, scores = evaluated
    t3 = scores["t3"]
    assert m["t3"] == metrics.task_metrics(SWEEPS["t3"], BUDGET, 0.95)
    np.testing.assert_allclose(t3.probabilities, [0.5, 0.25, 0.25])  # {0, 1}, {0, 0}, {1, 1}
    assert [r["velo"].final_loss for r in t3.metrics] == pytest.approx([0.5, 0.6, 0.4])
    twice_first, twice_second = t3.metrics[1]["velo"], t3.metrics[2]["velo"]
    assert twice_first.speedup == pytest.approx(0.01) and not twice_first.speedup_censored
    assert twice_second.speedup == 2.0 and twice_second.speedup_censored  # Adam never got there


def test_summary_win_rates_and_intervals(evaluated):
    m, scores = evaluated
    s = aggregate.summarize(m, scores)["velo"]
    assert s.win_rate == pytest.approx(2 / 3) and s.cosine_win_rate == pytest.approx(1 / 3)
    assert s.reaches_cosine_rate == pytest.approx(1 / 3)
    assert 0.0 <= s.win_rate_ci[0] < s.win_rate_ci[1] <= 1.0
    assert s.cosine_win_rate_ci[0] == 0.0 and s.cosine_win_rate_ci[1] == 1.0
    assert s.cosine_speedup_iqm_ci[0] <= s.cosine_speedup_iqm <= s.cosine_speedup_iqm_ci[1]
    a = aggregate.summarize(m, scores)["adam"]
    assert a.win_rate is None and a.cosine_win_rate == 0.0 and a.cosine_win_rate_ci == (0.0, 0.0)
    assert aggregate.summarize(m, scores) == aggregate.summarize(m, scores)  # fixed bootstrap seed


def test_seed_multisets_and_their_probabilities():
    multisets, p = bootstrap.seed_multisets(3)
    assert multisets.shape == (10, 3) and list(multisets[0]) == [0, 1, 2]
    assert p.sum() == pytest.approx(1.0) and p[0] == pytest.approx(6 / 27)
    assert p[list(map(tuple, multisets)).index((1, 1, 1))] == pytest.approx(1 / 27)
    assert bootstrap.seed_multisets(1)[0].tolist() == [[0]]
    many, p = bootstrap.seed_multisets(6)
    assert many.shape == (bootstrap.MAX_MULTISETS, 6) and list(many[0]) == list(range(6))


def test_bootstrap_resamples_tasks_and_seeds():
    assert bootstrap.interval(np.full((5, 3), 0.7), bootstrap.iqm_rows) == pytest.approx(
        (0.7, 0.7))
    # Identical tasks whose seeds disagree: only resampling seeds makes the interval wide.
    seeds_vary = np.tile([1.0, 0.0, 1.0], (4, 1))
    low, high = bootstrap.interval(seeds_vary, bootstrap.mean_rows, np.array([0.5, 0.25, 0.25]))
    assert 0.0 < low < 0.75 and high == 1.0  # 4 tasks, each 1 with probability 3/4
    assert bootstrap.interval(seeds_vary[:, :1], bootstrap.mean_rows) == (1.0, 1.0)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(12, 1))
    assert bootstrap.iqm_rows(x.T)[0] == pytest.approx(aggregate.iqm(x[:, 0]))
    wide = bootstrap.interval(x, bootstrap.mean_rows)
    narrow = bootstrap.interval(np.repeat(x, 4, axis=0), bootstrap.mean_rows)
    assert wide[0] < x.mean() < wide[1] and narrow[1] - narrow[0] < 0.7 * (wide[1] - wide[0])
    with pytest.raises(ValueError, match=r"\[tasks, seed multisets\]"):
        bootstrap.interval(np.zeros(3), bootstrap.mean_rows)


def test_family_summaries(evaluated):
    m, scores = evaluated
    fam = aggregate.by_family(m, scores, FAMILIES)
    assert list(fam) == ["mlp", "rnn"] and fam["mlp"]["velo"].tasks == 2
    assert fam["mlp"]["velo"].win_rate == 1.0 and fam["mlp"]["velo"].cosine_win_rate == 0.5
    assert fam["rnn"]["velo"].win_rate == 0.0 and fam["rnn"]["velo"].speedup_median < 1.0
    low, high = fam["rnn"]["velo"].speedup_median_ci
    assert low < high  # the two seeds disagree: 0.01 and 2.0


def test_report_tables_and_csv(evaluated, tmp_path):
    m, scores = evaluated
    summary = aggregate.summarize(m, scores)
    fam = aggregate.by_family(m, scores, FAMILIES)
    assert "| velo | 67% [" in report.summary_table(summary)
    assert "| velo | 33% [0%, 100%] |" in report.cosine_table(summary)
    assert "| t2 | mlp | 0.5 | 0.2 | adamw_cosine |" in report.baselines_table(m, FAMILIES)
    assert "| rnn | 1 | velo | 0% | 0% |" in report.family_table(fam)
    path = report.write_csv(str(tmp_path / "s.csv"), m, summary, FAMILIES)
    rows = list(csv.DictReader(open(path)))
    assert len(rows) == 9 + 3 and [r["task"] for r in rows[9:]] == ["ALL"] * 3
    velo = next(r for r in rows[9:] if r["optimizer"] == "velo")
    assert float(velo["win_rate_low"]) <= float(velo["win_rate"]) <= float(velo["win_rate_high"])
    assert rows[0]["stronger_baseline"] == "adamw_cosine" and rows[2]["reaches_cosine"] == "True"
    without = {t: {n: x for n, x in ms.items() if n != "adamw_cosine"} for t, ms in m.items()}
    lone = aggregate.summarize(without, scores)
    assert "adamw_cosine was not run" in report.cosine_table(lone)
    assert lone["velo"].cosine_win_rate is None
