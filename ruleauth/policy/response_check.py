"""The handler checks its own response against API Gateway's rules before returning it.

A malformed response is a 500 `{"message": null}` for the caller and nothing
in the logs (the article's bug), so the check runs on every response.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

MAX_RESPONSE_BYTES = (
    8 * 1024
)  # WebSocket quota table: "Lambda authorizer result size: 8 KB"; the design budget everywhere
MAX_RESOURCE_CHARS = 512  # authorizer output docs: a policy Resource ARN is at most 512 characters
MAX_PRINCIPAL_CHARS = 256
_CONTEXT_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_RESERVED = ("principalId", "integrationLatency", "claims")
SIZE = "size"


def response_size(response: Mapping[str, Any]) -> int:
    return len(json.dumps(response, separators=(",", ":")).encode("utf-8"))


def problems(response: Any) -> list[str]:
    """Everything API Gateway would reject in `response`; empty when it is well-formed."""
    if not isinstance(response, Mapping):
        return ["the response is not an object"]
    found: list[str] = []
    if "isAuthorized" in response:
        if not isinstance(response["isAuthorized"], bool):
            found.append("isAuthorized is not a boolean")
        if set(response) - {"isAuthorized", "context"}:
            found.append("unexpected keys in a simple response")
    else:
        found.extend(_policy_problems(response))
    found.extend(_context_problems(response.get("context", {})))
    if not found and response_size(response) > MAX_RESPONSE_BYTES:
        found.append(SIZE)
    return found


def _policy_problems(response: Mapping[str, Any]) -> list[str]:
    found = []
    principal = response.get("principalId")
    if not isinstance(principal, str) or not principal or len(principal) > MAX_PRINCIPAL_CHARS:
        found.append("principalId must be a non-empty string of at most 256 characters")
    document = response.get("policyDocument")
    if not isinstance(document, Mapping) or document.get("Version") != "2012-10-17":
        return [*found, "policyDocument must have Version 2012-10-17"]
    statements = document.get("Statement")
    if not isinstance(statements, list) or not statements:
        return [*found, "policyDocument needs at least one statement"]
    for statement in statements:
        if not isinstance(statement, Mapping):
            found.append("a statement is not an object")
            continue
        if statement.get("Action") != "execute-api:Invoke" or statement.get("Effect") not in ("Allow", "Deny"):
            found.append("a statement needs Action execute-api:Invoke and Effect Allow or Deny")
        resources = statement.get("Resource")
        resources = [resources] if isinstance(resources, str) else resources
        if not isinstance(resources, list) or not resources:
            found.append("a statement has no Resource")
            continue
        for resource in resources:
            if not isinstance(resource, str) or not (resource == "*" or resource.startswith("arn:")):
                found.append("a Resource is not an ARN")
            elif len(resource) > MAX_RESOURCE_CHARS:
                found.append(f"a Resource is longer than {MAX_RESOURCE_CHARS} characters")
    key = response.get("usageIdentifierKey")
    if key is not None and not isinstance(key, str):
        found.append("usageIdentifierKey must be a string")
    if set(response) - {"principalId", "policyDocument", "context", "usageIdentifierKey"}:
        found.append("unexpected keys in the response")
    return found


def _context_problems(context: Any) -> list[str]:
    if not isinstance(context, Mapping):
        return ["context must be an object"]
    found = []
    for key, value in context.items():
        if not isinstance(key, str) or not _CONTEXT_KEY.match(key) or key in _RESERVED:
            found.append("a context key is not allowed")
        if isinstance(value, (bool, str, int)):
            continue
        if isinstance(value, float) and math.isfinite(value):
            continue
        found.append("a context value is not a string, number or boolean")
    return found
