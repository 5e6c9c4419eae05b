"""The update rules by name: `Config.rule` selects one (`rule.Rule` says what a rule is)."""

from __future__ import annotations

from velo.lopt import rule_v1, rule_v2
from velo.lopt.config import RULE_NAMES, Config
from velo.lopt.rule import Rule

RULES: dict[str, Rule] = {r.name: r for r in (rule_v1.RULE, rule_v2.RULE)}
assert tuple(RULES) == RULE_NAMES, "config.RULE_NAMES must list every rule"


def get(config: Config) -> Rule:
    """The `Rule` of ``config`` (`Config.__post_init__` has checked the name)."""
    return RULES[config.rule]


def feature_version(config: Config) -> int:
    """The feature version that checkpoints of ``config`` are stored with."""
    return get(config).feature_version
