"""The Lambda entry point: `ruleauth.handler.handler`.

Rules are loaded, checked and compiled here, at import (the cold start). A
broken rules file fails the import with one message naming file, line and rule,
so the function never serves a request with half its rules.
"""

from __future__ import annotations

import sys
from typing import Any

from . import decision_log
from .authorizer import Authorizer, locate_rules
from .errors import RulesError


def _load() -> Authorizer:
    try:
        return Authorizer.load(locate_rules())
    except RulesError as exc:
        # Printed once per cold start; the import then fails, so no request is ever served.
        sys.stdout.write(str(exc) + "\nFix the rules (run `ruleauth validate`) and redeploy.\n")
        sys.stdout.flush()
        raise


AUTHORIZER = _load()


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    result = AUTHORIZER.authorize(event)
    decision_log.emit(decision_log.record(result.decision, result.latency_ms, result.internal_error))
    if result.response is None:
        raise Exception("Unauthorized")  # API Gateway's convention: exactly this text gives a 401
    return result.response
