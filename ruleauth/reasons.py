"""The fixed vocabulary of decisions: every `outcome` and `reason` ruleauth produces (SPEC "Decisions").

Members are `str`s, so log lines, `--json` output, responses and metrics hold the plain value
(`json.dumps(Reason.NO_ROUTE) == '"no_route"'`). This module imports nothing of ruleauth, so
every stage can use it without a cycle.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Outcome", "Reason"]


class Outcome(StrEnum):
    """What the authorizer answers: allow, deny (403) or unauthorized (401)."""

    ALLOW = "allow"
    DENY = "deny"
    UNAUTHORIZED = "unauthorized"


class Reason(StrEnum):
    """Why, in the order of the pipeline step that decides it."""

    # Not the authorizer's: API Gateway answers 401 itself, without calling it, when a configured
    # identity source is missing (`ruleauth test`, `dry-run` and `serve` show this answer).
    IDENTITY_SOURCE_MISSING = "identity_source_missing"
    BAD_EVENT = "bad_event"
    NO_ROUTE = "no_route"
    MISSING_CREDENTIAL = "missing_credential"
    BAD_CREDENTIAL = "bad_credential"
    JWT_INVALID = "jwt_invalid"
    JWT_EXPIRED = "jwt_expired"
    JWKS_UNAVAILABLE = "jwks_unavailable"
    # A `certificate_bound` provider's token (RFC 8705): no usable client certificate, no
    # cnf["x5t#S256"] in the token, or a thumbprint of another certificate.
    CLIENT_CERT_MISSING = "client_cert_missing"
    CNF_MISSING = "cnf_missing"
    CNF_MISMATCH = "cnf_mismatch"
    # An opaque token that the introspection endpoint (RFC 7662) says is not active, and one
    # that could not be introspected (the endpoint down, slow, huge, malformed or refusing us).
    TOKEN_INACTIVE = "token_inactive"
    INTROSPECTION_UNAVAILABLE = "introspection_unavailable"
    RULE_TRUE = "rule_true"
    RULE_FALSE = "rule_false"
    RULE_ERROR = "rule_error"
    RULE_NON_BOOL = "rule_non_bool"
    PRINCIPAL_ERROR = "principal_error"
    # The rules allow, but the cached policy cannot say so without over-granting elsewhere
    # (`ruleauth validate` reports such rule sets before deploy).
    POLICY_CONFLICT = "policy_conflict"
    RESPONSE_TOO_LARGE = "response_too_large"
    INTERNAL_ERROR = "internal_error"
