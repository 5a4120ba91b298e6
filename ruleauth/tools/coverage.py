"""Which rule each `tests:` case reaches, for the "no test reaches this rule" warnings.

The tools compute these warnings (`ruleauth validate`, and the warning count the other
commands note), not the loader: a case's rule is found by building its event and routing
it, which is the request pipeline, and a cold start never shows the answer.
"""

from __future__ import annotations

from typing import Any

from ruleauth.errors import WARNING, BadEvent, Problem
from ruleauth.rules.ruleset import RuleSet
from ruleauth.runtime.events import parse_event
from ruleauth.tools.synthetic_events import event_for_test


def route_of_test(ruleset: RuleSet, case: Any) -> str | None:
    """The rule a `tests:` case reaches, or None (no rule, or no event can be built)."""
    try:
        request = parse_event(event_for_test(ruleset, case))
    except (BadEvent, OSError, ValueError):
        return None
    match = ruleset.router.find(request.method, request.path)
    return match.target.name if match else None


def untested_rules(ruleset: RuleSet) -> list[Problem]:
    """A warning at every enforced rule no case reaches (none when there are no tests)."""
    if not ruleset.tests:
        return []
    tested = {route_of_test(ruleset, case) for case in ruleset.tests}
    return [
        Problem("no test in `tests:` reaches this rule", rule.pos, WARNING, rule.name)
        for rule in ruleset.rules
        if rule.name not in tested and not rule.shadow
    ]


def warnings_of(ruleset: RuleSet) -> list[Problem]:
    """Every warning about a loaded rule set: the loader's and the untested rules."""
    return list(ruleset.warnings) + untested_rules(ruleset)
