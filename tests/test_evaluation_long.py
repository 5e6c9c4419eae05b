"""The long suite: long budgets, every family the issue names, and the held-out guarantees."""

import tasks
from tasks.heldout import HELDOUT
from tasks.long import LONG
from velo.evaluation import protocol


def test_long_suite_has_long_budgets_and_covers_the_families():
    suite = protocol.suite_tasks("long")
    assert [t.name for t in suite] == list(LONG) and len(suite) >= 8
    assert all(3000 <= t.default_steps <= 10_000 for t in suite)
    families = {t.spec.family for t in suite}
    assert {"mlp", "cnn", "rnn", "transformer", "autoencoder", "quadratic"} <= families
    assert any(t.spec.arch_dict.get("cell") == "lstm" for t in suite)


def test_long_tasks_keep_the_heldout_guarantees():
    heldout_specs = {spec for spec, _ in HELDOUT.values()}
    for name, (spec, _) in LONG.items():
        assert spec not in heldout_specs, name
        for distribution in tasks.DISTRIBUTIONS:
            assert not tasks.in_support(spec, distribution), (name, distribution)
        assert tasks.build(spec) is tasks.get(name)  # one name per spec
    assert "long" in tasks.SUITES and set(tasks.SUITES["long"]) <= set(tasks.names())
