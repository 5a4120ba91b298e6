"""The Lambda entry point: `ruleauth.handler.handler`.

Rules are loaded, checked and compiled here, at import (the cold start). A
broken rules file fails the import with one message naming file, line and rule,
so the function never serves a request with half its rules.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from ruleauth.runtime.authorizer import Authorizer, locate_rules
from ruleauth.runtime.decision_log import DecisionLog
from ruleauth.errors import RulesError
from ruleauth.runtime.metrics import Metrics
from ruleauth.rules.settings import Settings


def _load() -> tuple[Authorizer, DecisionLog, Metrics]:
    try:
        # Every RULEAUTH_* setting read and checked once, and the rules checked under them all.
        settings = Settings.from_environ(os.environ)
        return (Authorizer.load(locate_rules(), settings=settings, snapshot=True),
                DecisionLog(settings.log_sample_allow.value), Metrics(settings.metrics.value))
    except RulesError as exc:
        # Printed once per cold start; the import then fails, so no request is ever served
        # (API Gateway answers 500 and this line says why).
        sys.stdout.write(str(exc) + "\nFix the rules (run `ruleauth validate`) and redeploy.\n")
        sys.stdout.flush()
        raise


AUTHORIZER, DECISION_LOG, METRICS = _load()


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    result = AUTHORIZER.authorize(event)
    DECISION_LOG.write(result.decision, result.latency_ms, result.internal_error)
    if METRICS.enabled:
        METRICS.decision(result.decision, result.latency_ms)
        if AUTHORIZER.verifier is not None:
            METRICS.key_fetches(AUTHORIZER.verifier.fetch_stats())
    if result.response is None:
        raise Exception("Unauthorized")  # API Gateway's convention: exactly this text gives a 401
    return result.response
