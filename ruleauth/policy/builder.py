"""The policy builder: a Decision → the response API Gateway gets (IAM policy or simple response)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from ruleauth.model import HTTP_V2, REST_REQUEST, REST_TOKEN, Request
from ruleauth.policy.arn import asked_arn
from ruleauth.policy.synthesis import EMPTY_SEGMENT_DENIES, RouteTable, route_pattern
from ruleauth.reasons import Outcome
from ruleauth.rules.routes import Route
from ruleauth.rules.ruleset import CACHE_DISABLED, CACHE_ROUTE, RESPONSE_SIMPLE, RuleSet

VERSION = "2012-10-17"
ACTION = "execute-api:Invoke"
DENY_ALL = "*"
ALLOW = Outcome.ALLOW


class Decision(Protocol):
    """What the builder reads of a decision (runtime/decision.Decision implements it): policy
    depends on this, never on the runtime, so data flows one way."""

    @property
    def outcome(self) -> str: ...
    @property
    def request(self) -> Request | None: ...
    @property
    def rule(self) -> str | None: ...
    @property
    def matched(self) -> Any: ...  # the winning Route
    @property
    def principal(self) -> str: ...
    @property
    def context(self) -> Mapping[str, Any]: ...
    @property
    def usage_identifier_key(self) -> str | None: ...
    @property
    def table_allowed(self) -> list[bool] | None: ...
    @property
    def table_scope(self) -> frozenset[int] | None: ...


def statement(effect: str, resources: list[str]) -> dict[str, Any]:
    return {"Action": ACTION, "Effect": effect, "Resource": resources[0] if len(resources) == 1 else resources}


def literal_resource(arn: str) -> str:
    """IAM has no escape for `*` and `?`: a request path holding them (A3) becomes `?`, which
    matches one character (`/` included). Only for answers never reused for another request
    (cache.mode disabled) and for Denies (a cached Deny that covers more only narrows)."""
    return arn.replace("*", "?") if "*" in arn.split("/", 1)[-1] else arn


def statements(
    decision: Decision, ruleset: RuleSet, table: RouteTable | None = None, per_request: bool = False
) -> list[dict[str, Any]]:
    """Statements by cache mode: the whole route table for this caller (identity), the matched
    route's pattern (route; the table's entries under the API's route when that route is
    coarser than the rule's), or the asked ARN (disabled).

    `per_request` (the caller's table does not fit in a response): the asked route's own
    pattern with the Denies it needs, so a cached copy answers exactly wherever it allows and
    denies other routes; never a resource built from the request path."""
    request = decision.request
    if request is None:
        return [statement("Deny", [DENY_ALL])]
    arn = request.arn
    effect = "Allow" if decision.outcome == ALLOW else "Deny"
    route = _matched_route(decision, ruleset)
    if table is not None and decision.table_allowed is not None:
        asked = table.entry_for(arn.method, route) if route is not None else None
        scope = reach = decision.table_scope
        if per_request:
            scope = frozenset() if asked is None else frozenset([asked.index])
        allows, denies = table.synthesise(decision.table_allowed, asked, scope, reach)
        built = []
        prefix = arn.prefix + "/"
        if allows:
            built.append(statement("Allow", [prefix + p for p in allows]))
        if denies:
            built.append(statement("Deny", [prefix + p for p in denies]))
        if built:
            return built
        # Nothing allowed and no Deny: any Deny is right for the caller's other routes.
        return [statement("Deny", [_asked_literal(decision)])]
    if ruleset.cache.mode == CACHE_ROUTE and route is not None:
        # The cache key holds the method and the API's route, which is this rule route's (or
        # finer): the route's pattern is reused only for other values of its own parameters,
        # and for paths with an empty segment, which its `*` also matches and no route does.
        pattern = route_pattern(arn.method, route)
        built = [statement(effect, [f"{arn.prefix}/{pattern}"])]
        if effect == "Allow" and "*" in pattern:
            built.append(statement("Deny", [f"{arn.prefix}/{p}" for p in EMPTY_SEGMENT_DENIES]))
        return built
    if ruleset.cache.mode != CACHE_DISABLED and effect == "Allow":
        # A cached mode without the table's answers: an Allow from the request path could be
        # reused for other paths (`?` matches any character), so deny instead.
        return [statement("Deny", [_asked_literal(decision)])]
    return [statement(effect, [_asked_literal(decision)])]


def _matched_route(decision: Decision, ruleset: RuleSet) -> Route | None:
    return decision.matched if decision.rule is not None else None


def _asked_literal(decision: Decision) -> str:
    assert decision.request is not None
    arn = decision.request.arn
    resource = asked_arn(arn)
    if not arn.method:
        return resource
    head, _, path = resource.partition(f"/{arn.stage}/")
    return f"{head}/{arn.stage}/{literal_resource(path)}"


def asked_only(decision: Decision) -> list[dict[str, Any]] | None:
    """An Allow for exactly the asked ARN, which a cached copy can never reuse for another
    request (no wildcard in it), or None when the request path holds `*` or `?`."""
    assert decision.request is not None
    resource = asked_arn(decision.request.arn)
    if "*" in resource or "?" in resource:
        return None
    return [statement("Allow", [resource])]


def build_response(
    decision: Decision,
    ruleset: RuleSet,
    response_mode: str,
    table: RouteTable | None = None,
    per_request: bool = False,
    exact: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Never called for `unauthorized`: that outcome is `raise Exception("Unauthorized")`.
    `exact`: these statements instead of the mode's (asked_only)."""
    event_type = decision.request.event_type if decision.request else None
    if response_mode == RESPONSE_SIMPLE and event_type == HTTP_V2:
        return {"isAuthorized": decision.outcome == ALLOW, "context": dict(decision.context)}
    response: dict[str, Any] = {
        "principalId": decision.principal,
        "policyDocument": {"Version": VERSION, "Statement": exact or statements(decision, ruleset, table, per_request)},
    }
    if decision.context:
        response["context"] = dict(decision.context)
    # API Gateway needs the key on every request to an API-key-required method the response
    # allows, and a cached response allows the caller's other routes too, whatever the asked
    # route's decision (docs/apigw-facts.md).
    if (
        decision.usage_identifier_key
        and event_type in (REST_TOKEN, REST_REQUEST)
        and any(s["Effect"] == "Allow" for s in response["policyDocument"]["Statement"])
    ):
        response["usageIdentifierKey"] = decision.usage_identifier_key
    return response


def deny_all(principal: str = "anonymous") -> dict[str, Any]:
    return {
        "principalId": principal,
        "policyDocument": {"Version": VERSION, "Statement": [statement("Deny", [DENY_ALL])]},
    }
