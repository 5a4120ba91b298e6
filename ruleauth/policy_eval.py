"""A model of how API Gateway evaluates an authorizer's IAM policy against a method ARN.

IAM resource matching: `*` matches any run of characters, `/` included; `?`
one character; case-sensitive. An explicit Deny anywhere wins over any Allow;
no matching Allow is an implicit deny. API Gateway answers the two denials
with different 403 bodies, so the model keeps them apart.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Iterable, Mapping

ALLOW, EXPLICIT_DENY, IMPLICIT_DENY = "allow", "explicit_deny", "implicit_deny"


@functools.lru_cache(maxsize=4096)
def _pattern(resource: str) -> re.Pattern[str]:
    parts = ("." if c == "?" else ".*" if c == "*" else re.escape(c) for c in resource)
    return re.compile("".join(parts), re.DOTALL)


def resource_matches(resource: str, arn: str) -> bool:
    return _pattern(resource).fullmatch(arn) is not None


def _resources(statement: Mapping[str, Any]) -> Iterable[str]:
    resource = statement.get("Resource", [])
    return [resource] if isinstance(resource, str) else list(resource)


def _actions(statement: Mapping[str, Any]) -> list[str]:
    action = statement.get("Action", [])
    return [action] if isinstance(action, str) else list(action)


def _applies(statement: Mapping[str, Any], arn: str) -> bool:
    if not any(resource_matches(a, "execute-api:Invoke") for a in _actions(statement)):
        return False
    return any(resource_matches(r, arn) for r in _resources(statement))


def evaluate_policy(policy_document: Mapping[str, Any], arn: str) -> str:
    statements = policy_document.get("Statement", [])
    if isinstance(statements, Mapping):
        statements = [statements]
    applying = [s for s in statements if _applies(s, arn)]
    if any(s.get("Effect") == "Deny" for s in applying):
        return EXPLICIT_DENY
    if any(s.get("Effect") == "Allow" for s in applying):
        return ALLOW
    return IMPLICIT_DENY


def evaluate_response(response: Mapping[str, Any], arn: str) -> str:
    """The outcome API Gateway gives `arn` for a cached or fresh authorizer response."""
    if "isAuthorized" in response:
        return ALLOW if response.get("isAuthorized") is True else IMPLICIT_DENY
    return evaluate_policy(response.get("policyDocument", {}), arn)
