"""The Lambda handler function around an `Authorizer`, with its decision log and metrics.

`make_handler` lives here, not in ruleauth/handler.py, because importing that module
builds the default handler from the deployed rules: an embedder importing the factory
must not load rules it does not use.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ruleauth.errors import Problem, RulesError
from ruleauth.rules.settings import Settings
from ruleauth.runtime.authorizer import Authorizer, locate_rules
from ruleauth.runtime.decision_log import LEVELS, DecisionLog, notice, service_name
from ruleauth.runtime.metrics import Metrics

Handler = Callable[..., dict[str, Any]]


def make_handler(
    rules: str | os.PathLike[str] | Authorizer | None = None, *, environ: Mapping[str, str] = os.environ
) -> Handler:
    """A Lambda handler deciding by `rules`: a rules file or directory, or an `Authorizer`.

    With no `rules`, they are found as SPEC "Deploying" says (RULEAUTH_RULES, then the
    Lambda task root). Every RULEAUTH_* setting is read from `environ`, once, here.
    Raises RulesError (file:line) for broken rules or settings. The handler returns the
    authorizer's response, or raises `Exception("Unauthorized")` for a 401, as API Gateway
    requires; it never raises anything else.
    """
    started = time.perf_counter()
    try:
        # Every RULEAUTH_* setting read and checked once, and the rules checked under them all.
        settings = Settings.from_environ(environ)
        if isinstance(rules, Authorizer):
            authorizer = rules
        else:
            path = Path(rules) if rules is not None else locate_rules(environ)
            authorizer = Authorizer.load(path, environ, settings=settings, snapshot=True)
        # An introspection provider's client secret is read when its verifier is built; the build
        # and the CLI run without it, a serving function must not (docs/spec.md "Introspection providers").
        missing: list[Problem] = getattr(authorizer.verifier, "missing_secrets", list)()
        if missing:
            raise RulesError(missing)
        decision_log = DecisionLog(
            settings.log_sample_allow.value,
            level=LEVELS.get(str(settings.log_level.value), LEVELS["INFO"]),
            service=service_name(environ),
        )
        metrics = Metrics(settings.metrics.value)
    except RulesError as exc:
        # Printed once per cold start; the import then fails, so no request is ever served
        # (API Gateway answers 500 and this line says why).
        notice(str(exc) + "\nFix the rules (run `ruleauth validate`) and redeploy.", logging.ERROR, environ)
        raise
    load_ms = (time.perf_counter() - started) * 1000
    decision_log.cold_start(cold_start_fields(authorizer, load_ms))
    metrics.cold_start(load_ms)
    # Looked up once: a verifier given by the caller may have no introspection provider support.
    introspection_stats: Callable[[], Mapping[str, tuple[int, int, int, int]]] = getattr(
        authorizer.verifier, "introspection_stats", dict
    )

    def handler(event: Any, context: Any = None) -> dict[str, Any]:
        result = authorizer.authorize(event)
        decision_log.write(result.decision, result.latency_ms, result.internal_error, context)
        if metrics.enabled:
            metrics.decision(result.decision, result.latency_ms)
            if authorizer.verifier is not None:
                metrics.key_fetches(authorizer.verifier.fetch_stats())
                metrics.introspections(introspection_stats())
        if result.response is None:
            raise Exception("Unauthorized")  # API Gateway's convention: exactly this text gives a 401
        return result.response

    return handler


def cold_start_fields(authorizer: Authorizer, load_ms: float) -> dict[str, Any]:
    """What the cold start did, from the effective settings and the loaded rule set only:
    names and counts, never a value a request or a credential brought."""
    ruleset = authorizer.ruleset
    source, why = authorizer.rules_source
    return {
        "rules_source": source,
        "rules_source_reason": why,
        "rules_files": len(ruleset.files),
        "rules_count": len(ruleset.rules),
        "engine": ruleset.engine,
        "cache_mode": ruleset.cache.mode,
        "response_type": authorizer.response_mode,
        "providers": [provider.name for provider in ruleset.providers],
        "load_ms": round(load_ms, 1),
    }
