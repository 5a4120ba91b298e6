"""`ruleauth test`: run the `tests:` cases of a rules file through the Lambda's own code path.

Each case becomes an API Gateway event (`synthetic_events.event_for_test`), is
decided as API Gateway and the Lambda decide it (`local_gateway.decide_event`: API
Gateway's own 401 for a missing identity source, else `Authorizer.authorize`), and is
checked against its `expect:`. Every case is also checked for agreement between the rule's
decision and API Gateway's evaluation of the emitted policy for the asked ARN.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ruleauth.errors import LoadError
from ruleauth.policy.iam import ALLOW, EXPLICIT_DENY, IMPLICIT_DENY
from ruleauth.reasons import Outcome
from ruleauth.rules.ruleset import RuleSet, TestCase
from ruleauth.tools.local_gateway import GatewayDecision, decide_event
from ruleauth.tools.synthetic_events import event_for_test

if TYPE_CHECKING:
    from ruleauth.tools.explain import Explanation

# The credential sent when a case (or `dry-run --claims`) gives claims but no token:
# the claims stand in for a verified JWT, but routes still need a credential to be present.
PLACEHOLDER_TOKEN = "unverified-claims"

_GATEWAY_FOR: dict[str, tuple[str, ...]] = {
    Outcome.ALLOW: (ALLOW,),
    Outcome.DENY: (EXPLICIT_DENY, IMPLICIT_DENY),
    Outcome.UNAUTHORIZED: (Outcome.UNAUTHORIZED,),
}


def parse_time(text: str) -> float:
    """RFC 3339 (`2026-01-01T00:00:00Z`) → epoch seconds. Raises ValueError."""
    value = datetime.datetime.fromisoformat(text.strip().replace("z", "Z").replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone: add Z or an offset like +00:00")
    return value.timestamp()


def has_credential(
    ruleset: RuleSet,
    headers: Mapping[str, str] | None,
    query: Mapping[str, str] | None,
    cookies: Mapping[str, str] | None,
    token: str | None,
) -> bool:
    """Whether a request built from these parts carries the rules' credential."""
    if token:
        return True
    config = ruleset.token
    if config.header:
        return any(k.lower() == config.header.lower() for k in (headers or {}))
    if config.query:
        return config.query in (query or {})
    return bool(config.cookie and config.cookie in (cookies or {}))


@dataclass
class CaseResult:
    case: TestCase
    failures: list[str] = field(default_factory=list)
    authorization: Any = None  # None when the authorizer was not called
    explanation: Explanation | None = None
    refusal: str | None = None  # why API Gateway answered 401 without calling the authorizer

    @property
    def passed(self) -> bool:
        return not self.failures


def case_with_credential(ruleset: RuleSet, case: TestCase) -> TestCase:
    """A case that gives claims but no credential gets the placeholder credential."""
    if case.claims is None or case.event or not ruleset.providers:
        return case
    request = case.request
    if has_credential(
        ruleset, request.get("headers"), request.get("query"), request.get("cookies"), request.get("token")
    ):
        return case
    return dataclasses.replace(case, request={**request, "token": PLACEHOLDER_TOKEN})


class CaseInputError(LoadError, ValueError):
    """A case that cannot be run: its event file is unreadable or its `now` is bad."""


def case_event(ruleset: RuleSet, case: TestCase) -> dict[str, Any]:
    """The event a case's request is (its event file, or one built from its request).
    Raises CaseInputError."""
    try:
        return event_for_test(ruleset, case_with_credential(ruleset, case))
    except (OSError, ValueError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise CaseInputError(f"cannot read event file {case.event}: {detail}") from None


def decide_case(authorizer: Any, case: TestCase) -> GatewayDecision:
    """What a case's request gets from API Gateway in front of the Lambda's code path
    (`local_gateway.decide_event`): the one way `ruleauth test`, its `--coverage` and
    `ruleauth diff`'s caller classes are decided. Raises CaseInputError."""
    event = case_event(authorizer.ruleset, case)
    now = None
    if case.now:
        try:
            now = parse_time(case.now)
        except ValueError as exc:
            raise CaseInputError(f"now: {exc}") from None
    return decide_event(authorizer, event, now=now, claims=case.claims)


def run_case(authorizer: Any, case: TestCase) -> CaseResult:
    result = CaseResult(case)
    try:
        decided = decide_case(authorizer, case)
    except CaseInputError as exc:
        result.failures.append(str(exc))
        return result
    result.refusal = decided.refusal
    why = f"; {decided.refusal}" if decided.refusal is not None else ""
    _check(
        result,
        decided.outcome,
        decided.reason,
        decided.rule,
        decided.status,
        decided.principal,
        decided.context,
        why,
    )
    authorization = decided.authorization
    if authorization is None:
        return result  # API Gateway answered without calling the authorizer: nothing of the rules ran
    result.authorization = authorization
    decision = authorization.decision
    gateway = authorization.gateway_outcome
    if gateway not in _GATEWAY_FOR.get(decision.outcome, ()):
        result.failures.append(
            f"the rules decided {decision.outcome}, but API Gateway evaluating the emitted response for "
            f"this request gives {gateway}: the policy does not say what the rule decided"
        )
    if result.failures:
        # explain.py imports cel-python: a build's `ruleauth snapshot` (whose warnings ask which
        # cases API Gateway refuses) runs on the bundle's pure-Python packages without it.
        from ruleauth.tools.explain import explain

        result.explanation = explain(authorizer, authorization)
    return result


def _check(
    result: CaseResult,
    outcome: str,
    reason: str,
    rule: str | None,
    status: int,
    principal: str | None,
    context: Mapping[str, Any],
    why: str = "",
) -> None:
    """Each of the case's expectations against what the client would get."""
    expect = result.case.expect
    got = f"{outcome} (reason {reason}" + (f", rule {rule!r}" if rule else "") + f", status {status}){why}"
    if outcome != expect.decision:
        result.failures.append(f"expected {expect.decision}, got {got}")
    if expect.rule is not None and rule != expect.rule:
        result.failures.append(f"expected rule {expect.rule!r}, got {rule!r}")
    if expect.reason is not None and reason != expect.reason:
        result.failures.append(f"expected reason {expect.reason}, got {reason}")
    if expect.status is not None and status != expect.status:
        result.failures.append(f"expected status {expect.status}, got {status}")
    if expect.principal is not None and principal != expect.principal:
        result.failures.append(f"expected principal {expect.principal!r}, got {principal!r}")
    if expect.context is not None:
        for key, value in expect.context.items():
            if key not in context:
                result.failures.append(f"expected context.{key} = {_json(value)}, but the key is absent")
            elif not _same(context[key], value):
                result.failures.append(f"expected context.{key} = {_json(value)}, got {_json(context[key])}")


def _same(actual: Any, expected: Any) -> bool:
    if isinstance(actual, bool) or isinstance(expected, bool):
        return actual is expected
    return bool(actual == expected)


def _json(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)
