"""A model of how API Gateway evaluates an authorizer's IAM policy against a method ARN.

IAM resource matching: `*` matches any run of characters, `/` included; `?`
one character; case-sensitive. An explicit Deny anywhere wins over any Allow;
no matching Allow is an implicit deny. API Gateway answers the two denials
with different 403 bodies, so the model keeps them apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

ALLOW, EXPLICIT_DENY, IMPLICIT_DENY = "allow", "explicit_deny", "implicit_deny"


def resource_matches(resource: str, arn: str) -> bool:
    """IAM glob match in linear time (no backtracking regex: a regex of many `.*` against a
    long ARN took minutes; bench/run.py measures the worst case). The pattern is cut at each `*`: the first piece must
    start the ARN, the last must end it, and each middle piece is taken at its leftmost
    match, which is enough because a later `*` can absorb whatever an earlier choice left."""
    if "*" not in resource:
        return len(resource) == len(arn) and _piece_at(resource, arn, 0)
    pieces = resource.split("*")
    first, last = pieces[0], pieces[-1]
    if (
        len(first) + len(last) > len(arn)
        or not _piece_at(first, arn, 0)
        or not _piece_at(last, arn, len(arn) - len(last))
    ):
        return False
    position, end = len(first), len(arn) - len(last)
    for piece in pieces[1:-1]:
        found = _find(piece, arn, position, end)
        if found < 0:
            return False
        position = found + len(piece)
    return True


def _piece_at(piece: str, text: str, start: int) -> bool:
    """Does `piece` (literal characters and `?`) match `text` at `start`?"""
    if "?" not in piece:
        return text.startswith(piece, start)
    if start + len(piece) > len(text):
        return False
    return all(c == "?" or c == text[start + i] for i, c in enumerate(piece))


def _find(piece: str, text: str, start: int, end: int) -> int:
    """The leftmost match of `piece` in text[start:end], or -1."""
    if "?" not in piece:
        return text.find(piece, start, end) if start + len(piece) <= end else -1
    # Anchor on the piece's longest literal run, so `?` costs only the positions it allows.
    runs = [r for r in piece.split("?") if r]
    if not runs:
        return start if end - start >= len(piece) else -1
    anchor = max(runs, key=len)
    offset = piece.index(anchor)
    search, bound = start + offset, end - (len(piece) - offset - len(anchor))
    while True:
        hit = text.find(anchor, search, bound) if search + len(anchor) <= bound else -1
        if hit < 0:
            return -1
        if _piece_at(piece, text, hit - offset):
            return hit - offset
        search = hit + 1


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
