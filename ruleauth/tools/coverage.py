"""Which rule each `tests:` case reaches: the "no test reaches this rule" warnings, and
`ruleauth test --coverage`.

The tools compute these warnings (`ruleauth validate`, and the warning count the other
commands note), not the loader: a case's rule is found by building its event and routing
it, which is the request pipeline, and a cold start never shows the answer.

Coverage counts items, each covered or not by the cases as `ruleauth test` ran them:
every route of every enforced rule (a case's request matched it, and API Gateway did not
refuse it itself for a missing identity source: then no rule ran); each outcome a rule can
give, allow and deny (its `allow:` was true, false; errors are shown, not counted: most
rules cannot fail); and each operand of each `&&` and `||` in it, `define:`s inlined: the
operand decided when it was the first false one of its `&&` or the first true one of its
`||`. The percentage is covered items / all items. Operands are evaluated again, after the
decision, against the activation the decision used: the normal path pays nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ruleauth.cel import evaluation as ev
from ruleauth.errors import WARNING, BadEvent, Problem
from ruleauth.model import SourcePos
from ruleauth.reasons import Outcome
from ruleauth.rules.routes import RouteMatch
from ruleauth.rules.ruleset import Rule, RuleSet
from ruleauth.runtime.events import parse_event
from ruleauth.tools.synthetic_events import event_for_test


def match_of_test(ruleset: RuleSet, case: Any) -> RouteMatch[Rule] | None:
    """The rule route a `tests:` case's request matches, or None (none, or no event can be built)."""
    try:
        request = parse_event(event_for_test(ruleset, case))
    except (BadEvent, OSError, ValueError):
        return None
    return ruleset.router.find(request.method, request.path)


def route_of_test(ruleset: RuleSet, case: Any) -> str | None:
    """The rule a `tests:` case reaches, or None (no rule, or no event can be built)."""
    match = match_of_test(ruleset, case)
    return match.target.name if match else None


def untested_rules(ruleset: RuleSet) -> list[Problem]:
    """A warning at every enforced rule no case reaches (none when there are no tests)."""
    if not ruleset.tests:
        return []
    tested: set[str | None] = set()
    refused: dict[str, list[str]] = {}  # rule → the cases asking it that API Gateway refuses itself
    for case in ruleset.tests:
        rule = route_of_test(ruleset, case)
        refusal = _refusal(ruleset, case) if rule is not None else None
        if refusal is None:
            tested.add(rule)
        elif rule is not None:
            refused.setdefault(rule, []).append(f"test {case.name!r} ({case.pos}): {refusal}")
    return [
        Problem(
            "no test in `tests:` reaches this rule"
            + (f"; refused by API Gateway: {'; '.join(refused[rule.name])}" if rule.name in refused else ""),
            rule.pos,
            WARNING,
            rule.name,
        )
        for rule in ruleset.rules
        if rule.name not in tested and not rule.shadow
    ]


def _refusal(ruleset: RuleSet, case: Any) -> str | None:
    """Why API Gateway answers the case's request itself (no rule runs), as `ruleauth test` asks it."""
    from ruleauth.tools.local_gateway import event_refusal
    from ruleauth.tools.rule_tests import CaseInputError, case_event

    try:
        return event_refusal(ruleset, case_event(ruleset, case))
    except CaseInputError:
        return None


def warnings_of(ruleset: RuleSet) -> list[Problem]:
    """Every warning about a loaded rule set: the loader's and the untested rules."""
    return list(ruleset.warnings) + untested_rules(ruleset)


# -- ruleauth test --coverage -------------------------------------------------------------

# What a rule's allow: gave in a case: the decision's words, and CEL's error (cel/evaluation.py).
ALLOWED, DENIED, FAILED = Outcome.ALLOW, Outcome.DENY, ev.ERROR
AND, OR = "and", "or"


@dataclass
class Operand:
    """One operand of an `&&` or `||` chain of a rule, and whether a case made it decide."""

    chain: str  # AND or OR
    text: str
    of: str  # the chain's text
    group: int  # which chain of the rule
    node: Any = field(repr=False, default=None)
    decided: int = 0


@dataclass
class RuleCoverage:
    rule: Rule
    routes: dict[str, set[str]]  # route → the methods cases asked it with
    outcomes: dict[str, int]  # ALLOWED, DENIED, FAILED → how many cases
    possible: tuple[str, ...]  # the outcomes counted as items
    operands: list[Operand]
    # route → the cases asking it that API Gateway refused itself (no rule ran), and why
    refused: dict[str, list[str]] = field(default_factory=dict)

    def items(self) -> Iterator[tuple[bool, str, str]]:
        """(covered, kind, what) for each item of this rule."""
        for route, methods in self.routes.items():
            yield bool(methods), "route", route
        for outcome in self.possible:
            yield self.outcomes[outcome] > 0, "outcome", outcome
        for operand in self.operands:
            operator = "&&" if operand.chain == AND else "||"
            yield operand.decided > 0, "operand", f"`{operand.text}` (of the {operator} in `{operand.of}`)"


@dataclass
class Coverage:
    rules: list[RuleCoverage]

    def counts(self) -> dict[str, tuple[int, int]]:
        """kind → (covered, total)."""
        counts = {"route": [0, 0], "outcome": [0, 0], "operand": [0, 0]}
        for rule in self.rules:
            for covered, kind, _what in rule.items():
                counts[kind][0] += covered
                counts[kind][1] += 1
        return {k: (v[0], v[1]) for k, v in counts.items()}

    @property
    def percent(self) -> float:
        covered = sum(c for c, _t in self.counts().values())
        total = sum(t for _c, t in self.counts().values())
        return 100.0 if total == 0 else 100.0 * covered / total


def operands_of(compiled: Any) -> list[Operand]:
    """Every operand of every `&&`/`||` chain in the expression, outermost first. Only chains
    reached through `&&`, `||`, `!` and parentheses: one inside a call or a comprehension
    does not decide the rule on its own."""
    from ruleauth.tools.explain import SubExpressions, split

    tree = compiled.tree
    if tree is None:
        return []
    texts = SubExpressions(compiled, {})
    found: list[Operand] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        kind, parts = split(node)
        if kind in (AND, OR):
            of = texts.text(node)
            group = len({o.group for o in found})
            found.extend(Operand(kind, texts.text(part), of, group, part) for part in parts)
        stack.extend(reversed(parts))
    return found


def _possible(rule: Rule) -> tuple[str, ...]:
    """The outcomes a rule can give: both, unless its `allow:` reads nothing (a constant)."""
    if rule.allow.reads:
        return (ALLOWED, DENIED)
    result = ev.evaluate(rule.allow, ev.activation_for(rule.allow.engine, {}))
    return (ALLOWED,) if result.allows else (DENIED,)


def coverage(authorizer: Any, results: Sequence[Any]) -> Coverage:
    """What the cases' results (rule_tests.CaseResult, as `ruleauth test` ran them) cover."""
    from ruleauth.tools.explain import SubExpressions, activation_for

    ruleset = authorizer.ruleset
    rules = {
        rule.name: RuleCoverage(
            rule,
            {str(route): set() for route in rule.routes},
            dict.fromkeys((ALLOWED, DENIED, FAILED), 0),
            _possible(rule),
            operands_of(rule.allow),
        )
        for rule in ruleset.rules
        if not rule.shadow
    }
    for result in results:
        match = match_of_test(ruleset, result.case)
        if match is None or match.target.name not in rules:
            continue
        covered = rules[match.target.name]
        request = match.route
        if result.refusal is not None:
            # API Gateway answered without calling the authorizer: the case never reaches the route.
            case = result.case
            covered.refused.setdefault(str(request), []).append(f"test {case.name!r} ({case.pos}): {result.refusal}")
            continue
        covered.routes[str(request)].add(_method_of(result) or request.method)
        authorization = result.authorization
        decision = authorization.decision if authorization is not None else None
        if decision is None or decision.result is None or decision.rule != match.target.name:
            continue  # refused before the rule ran (no credential, a bad token)
        kind = decision.result.kind
        covered.outcomes[ALLOWED if kind == ev.TRUE else DENIED if kind == ev.FALSE else FAILED] += 1
        if covered.operands and decision.request is not None:
            subs = SubExpressions(covered.rule.allow, activation_for(authorizer, decision))
            _decided(covered.operands, subs)
    return Coverage(list(rules.values()))


def _method_of(result: Any) -> str | None:
    decision = result.authorization.decision if result.authorization is not None else None
    request = decision.request if decision is not None else None
    return request.method if request is not None else None


def _decided(operands: list[Operand], subs: Any) -> None:
    """Mark the operand of each chain that decided it: the first false of an `&&`, the first
    true of an `||` (CEL's `&&` is false when any operand is, whatever the others do)."""
    chains: dict[int, list[Operand]] = {}
    for operand in operands:
        chains.setdefault(operand.group, []).append(operand)
    for chain in chains.values():
        wanted = ev.FALSE if chain[0].chain == AND else ev.TRUE
        for operand in chain:
            if subs.result(operand.node).kind == wanted:
                operand.decided += 1
                break


def coverage_lines(report: Coverage) -> tuple[list[str], list[str]]:
    """(the summary and each rule's line, what no case reaches)."""
    counts = report.counts()
    covered = sum(c for c, _t in counts.values())
    total = sum(t for _c, t in counts.values())
    parts = ", ".join(f"{name}s {c}/{t}" for name, (c, t) in counts.items())
    lines = [f"coverage: {covered} of {total} items, {report.percent:.1f}% ({parts})"]
    missing: list[str] = []
    for rule in report.rules:
        reached = [f"{route} ({', '.join(sorted(m)) or '-'})" for route, m in rule.routes.items()]
        seen = ", ".join(f"{k} {n}" for k, n in rule.outcomes.items())
        decided = sum(1 for o in rule.operands if o.decided)
        lines.append(
            f"  rule {rule.rule.name!r}: {seen}; operands decided {decided}/{len(rule.operands)}; "
            f"routes {'; '.join(reached)}"
        )
        for is_covered, kind, what in rule.items():
            if is_covered:
                continue
            refused = rule.refused.get(what) if kind == "route" else None
            text = {
                "route": f"no test reaches route {what}; refused by API Gateway: {'; '.join(refused)}"
                if refused
                else f"no test asks route {what}",
                "outcome": f"no test makes it {what}",
                "operand": f"no test makes operand {what} decide",
            }[kind]
            missing.append(f"{_where(rule.rule.pos)}rule {rule.rule.name!r}: {text}")
    return lines, missing


def _where(pos: SourcePos | None) -> str:
    return f"{pos}: " if pos is not None else ""
