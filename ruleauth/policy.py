"""The policy builder: a Decision → the response API Gateway gets (IAM policy or simple response)."""

from __future__ import annotations

from typing import Any

from .arn import asked_arn
from .decision import Decision
from .model import HTTP_V2, REST_REQUEST, REST_TOKEN, Outcome
from .ruleset import RESPONSE_SIMPLE, RuleSet

VERSION = "2012-10-17"
ACTION = "execute-api:Invoke"
DENY_ALL = "*"


def statement(effect: str, resources: list[str]) -> dict[str, Any]:
    return {"Action": ACTION, "Effect": effect, "Resource": resources[0] if len(resources) == 1 else resources}


def literal_resource(arn: str) -> str:
    """IAM has no escape for `*` and `?`: a request path holding them (A3) becomes `?`,
    which matches exactly one character, so the resource never widens to other paths."""
    return arn.replace("*", "?") if "*" in arn.split("/", 1)[-1] else arn


def statements(decision: Decision, ruleset: RuleSet) -> list[dict[str, Any]]:
    """Statements for the asked ARN only: a cached copy then denies the caller's other routes
    until the TTL ends, but can never allow a route the rules deny."""
    if decision.request is None:
        return [statement("Deny", [DENY_ALL])]
    arn = decision.request.arn
    resource = asked_arn(arn)
    if arn.method:
        head, _, path = resource.partition(f"/{arn.stage}/")
        resource = f"{head}/{arn.stage}/{literal_resource(path)}" if "*" in path else resource
    effect = "Allow" if decision.outcome == Outcome.ALLOW else "Deny"
    return [statement(effect, [resource])]


def build_response(decision: Decision, ruleset: RuleSet, response_mode: str) -> dict[str, Any]:
    """Never called for `unauthorized`: that outcome is `raise Exception("Unauthorized")`."""
    event_type = decision.request.event_type if decision.request else None
    if response_mode == RESPONSE_SIMPLE and event_type == HTTP_V2:
        return {"isAuthorized": decision.outcome == Outcome.ALLOW, "context": dict(decision.context)}
    response: dict[str, Any] = {
        "principalId": decision.principal,
        "policyDocument": {"Version": VERSION, "Statement": statements(decision, ruleset)},
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
