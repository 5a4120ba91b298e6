"""One JSON line per decision: what was decided, by which rule, why, and how fast.

Never a credential, cookie or identity-source value: the line is built from a
fixed set of fields, and every string that came from a caller (principal,
provider names picked by a token's issuer, kid) is escaped and cut.
"""

from __future__ import annotations

import json
import logging
import os
import random
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

from ruleauth.errors import safe_text as _safe_text
from ruleauth.reasons import Reason
from ruleauth.rules.settings import sample_rate_from
from ruleauth.runtime.decision import Decision

LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "WARN": 30, "ERROR": 40}
MAX_TEXT = 128
PRINCIPAL_ERROR, RULE_ERROR = Reason.PRINCIPAL_ERROR, Reason.RULE_ERROR


def safe_text(value: Any) -> str:
    """Token-derived strings as log fields: escaped and cut (errors.safe_text), never forging a line."""
    return _safe_text(value, MAX_TEXT, quoted=False)


def log_level() -> int:
    name = os.environ.get("RULEAUTH_LOG_LEVEL") or os.environ.get("AWS_LAMBDA_LOG_LEVEL") or "INFO"
    return LEVELS.get(name.upper(), logging.INFO)


def record(decision: Decision, latency_ms: float, internal_error: str | None = None) -> dict[str, Any]:
    line: dict[str, Any] = {
        "level": "INFO",
        "message": "ruleauth decision",
        "decision": decision.outcome,
        "reason": decision.reason,
        "rule": decision.rule,
        "route": decision.route,
        "principal": safe_text(decision.principal),
        "provider": safe_text(decision.provider) if decision.provider else None,
        "latency_ms": round(latency_ms, 3),
        "request_id": safe_text(decision.request.request_id) if decision.request else None,
    }
    if decision.request is not None:
        line["event_type"] = decision.request.event_type
        line["method"] = decision.request.method
    if decision.result is not None and decision.result.error_class:
        line["error_class"] = decision.result.error_class
    if decision.reason == RULE_ERROR:
        line["level"] = "WARNING"
    if decision.reason == PRINCIPAL_ERROR:
        line["detail"] = decision.detail  # a fixed text: which principal could not be named, never the value
    if decision.warnings:
        line["warnings"] = list(decision.warnings)
    if decision.omitted_context:
        line["context_omitted"] = [f"{k}:{why}" for k, why in decision.omitted_context]
    if decision.shadows:
        line["shadow"] = [{"rule": s.rule, "decision": s.decision, "reason": s.reason} for s in decision.shadows]
    if internal_error:
        line["level"] = "ERROR"
        line["error_class"] = internal_error
    return line


def emit(line: dict[str, Any], stream: TextIO | None = None) -> None:
    if LEVELS.get(line.get("level", "INFO"), 20) < log_level():
        return
    out = stream or sys.stdout
    out.write(json.dumps(line, separators=(",", ":"), default=str) + "\n")
    out.flush()


@dataclass
class DecisionLog:
    """Writes the decision lines of one Lambda container."""

    sample_allow: float = 1.0
    stream: TextIO | None = None
    draw: Callable[[], float] = random.random

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> DecisionLog:
        return cls(sample_rate_from(environ))

    def write(self, decision: Decision, latency_ms: float, internal_error: str | None = None) -> None:
        if decision.allowed and not decision.shadows and self.sample_allow < 1.0 and self.draw() >= self.sample_allow:
            return
        line = record(decision, latency_ms, internal_error)
        if decision.allowed and self.sample_allow < 1.0:
            line["sample_rate"] = self.sample_allow
        emit(line, self.stream)
