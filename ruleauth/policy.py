"""The policy builder: a Decision → the response API Gateway gets (IAM policy or simple response)."""

from __future__ import annotations

from typing import Any

from .arn import asked_arn
from .decision import Decision
from .model import HTTP_V2, REST_REQUEST, REST_TOKEN, Outcome
from .policy_synthesis import RouteTable, route_pattern
from .routes import Route
from .ruleset import CACHE_ROUTE, RESPONSE_SIMPLE, RuleSet

VERSION = "2012-10-17"
ACTION = "execute-api:Invoke"
DENY_ALL = "*"


def statement(effect: str, resources: list[str]) -> dict[str, Any]:
    return {"Action": ACTION, "Effect": effect, "Resource": resources[0] if len(resources) == 1 else resources}


def literal_resource(arn: str) -> str:
    """IAM has no escape for `*` and `?`: a request path holding them (A3) becomes `?`,
    which matches exactly one character, so the resource never widens to other paths."""
    return arn.replace("*", "?") if "*" in arn.split("/", 1)[-1] else arn


def statements(decision: Decision, ruleset: RuleSet, table: RouteTable | None = None,
               per_request: bool = False) -> list[dict[str, Any]]:
    """Statements by cache mode: the whole route table for this caller (identity), the matched
    route's pattern (route), or the asked ARN (disabled, and the identity-mode fallback when the
    table does not fit: a cached copy then denies other routes but never over-grants)."""
    request = decision.request
    if request is None:
        return [statement("Deny", [DENY_ALL])]
    arn = request.arn
    effect = "Allow" if decision.outcome == Outcome.ALLOW else "Deny"
    if not per_request and table is not None and decision.table_allowed is not None:
        route = _matched_route(decision, ruleset)
        asked = table.entry_for(arn.method, route) if route is not None else None
        allows, denies = table.synthesise(decision.table_allowed, asked)
        built = []
        if allows:
            built.append(statement("Allow", [f"{arn.prefix}/{p}" for p in allows]))
        if denies:
            built.append(statement("Deny", [f"{arn.prefix}/{p}" for p in denies]))
        if built:
            return built
        return [statement("Deny", [_asked_literal(decision)])]
    if not per_request and ruleset.cache.mode == CACHE_ROUTE:
        # The cache key holds the method and route template, so the route's pattern is reused
        # only for other values of its own parameters.
        route = _matched_route(decision, ruleset)
        if route is not None:
            return [statement(effect, [f"{arn.prefix}/{route_pattern(arn.method, route)}"])]
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


def build_response(decision: Decision, ruleset: RuleSet, response_mode: str,
                   table: RouteTable | None = None, per_request: bool = False) -> dict[str, Any]:
    """Never called for `unauthorized`: that outcome is `raise Exception("Unauthorized")`."""
    event_type = decision.request.event_type if decision.request else None
    if response_mode == RESPONSE_SIMPLE and event_type == HTTP_V2:
        return {"isAuthorized": decision.outcome == Outcome.ALLOW, "context": dict(decision.context)}
    response: dict[str, Any] = {
        "principalId": decision.principal,
        "policyDocument": {"Version": VERSION, "Statement": statements(decision, ruleset, table, per_request)},
    }
    if decision.context:
        response["context"] = dict(decision.context)
    if decision.usage_identifier_key and decision.allowed and event_type in (REST_TOKEN, REST_REQUEST):
        response["usageIdentifierKey"] = decision.usage_identifier_key
    return response


def deny_all(principal: str = "anonymous") -> dict[str, Any]:
    return {
        "principalId": principal,
        "policyDocument": {"Version": VERSION, "Statement": [statement("Deny", [DENY_ALL])]},
    }
