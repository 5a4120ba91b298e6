"""The loaded authorizer: rules + verifier, and one request from event to response.

The Lambda handler, `dry-run`, `test` and `serve` all call `Authorizer.authorize`,
so what users try locally is exactly what runs in Lambda.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruleauth.errors import BadEvent, Problem, RulesError
from ruleauth.policy import response_check
from ruleauth.policy.arn import asked_arn
from ruleauth.policy.builder import asked_only, build_response, deny_all
from ruleauth.policy.iam import ALLOW, EXPLICIT_DENY, evaluate_response
from ruleauth.reasons import Outcome
from ruleauth.rules.files import directory_rule_files
from ruleauth.rules.ruleset import RuleSet
from ruleauth.rules.settings import Settings
from ruleauth.runtime.decision import (
    BAD_EVENT,
    INTERNAL_ERROR,
    POLICY_CONFLICT,
    RESPONSE_TOO_LARGE,
    Decider,
    Decision,
)
from ruleauth.runtime.events import parse_event

UNAUTHORIZED_BODY = {"message": "Unauthorized"}
EXPLICIT_DENY_BODY = {"Message": "User is not authorized to access this resource with an explicit deny"}
IMPLICIT_DENY_BODY = {"Message": "User is not authorized to access this resource"}
SERVER_ERROR_BODY = {"message": None}
DENY, UNAUTHORIZED = Outcome.DENY, Outcome.UNAUTHORIZED
FORBIDDEN_BODY = {"message": "Forbidden"}  # HTTP API simple response with isAuthorized false


def gateway_reply(response: Mapping[str, Any] | None, outcome: str) -> tuple[int, dict[str, Any] | None]:
    """(status, body) API Gateway answers the caller, given the authorizer's response and the
    outcome it gives the asked ARN; body None: the request goes on to the integration.
    `dry-run`, `test` and `serve` all answer through this one mapping."""
    if response is None:
        return 401, UNAUTHORIZED_BODY
    if outcome == ALLOW:
        return 200, None
    if "isAuthorized" in response:
        return 403, FORBIDDEN_BODY
    return 403, EXPLICIT_DENY_BODY if outcome == EXPLICIT_DENY else IMPLICIT_DENY_BODY


@dataclass
class Authorization:
    """One request's outcome, as the handler and the tools report it."""

    decision: Decision
    response: dict[str, Any] | None  # None: the handler raises Exception("Unauthorized")
    latency_ms: float = 0.0
    internal_error: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def gateway_outcome(self) -> str:
        """What API Gateway does with the response for the asked ARN: allow, explicit or implicit deny."""
        if self.response is None or self.decision.request is None:
            return UNAUTHORIZED if self.response is None else EXPLICIT_DENY
        return evaluate_response(self.response, asked_arn(self.decision.request.arn))

    @property
    def status(self) -> int:
        return gateway_reply(self.response, self.gateway_outcome)[0]

    @property
    def body(self) -> dict[str, Any] | None:
        return gateway_reply(self.response, self.gateway_outcome)[1]


class Authorizer:
    def __init__(
        self,
        ruleset: RuleSet,
        verifier: Any = None,
        response_mode: str | None = None,
        environ: Mapping[str, str] | None = None,
    ):
        """`environ`: where an introspection provider's client secret is read (os.environ by default)."""
        self.ruleset = ruleset
        self.response_mode = response_mode or ruleset.response
        if verifier is None and ruleset.providers:
            from ruleauth.jwt.verifier import JwtConfigError, JwtVerifier

            try:
                verifier = JwtVerifier(ruleset.providers, environ=environ)
            except JwtConfigError as exc:
                raise RulesError([Problem(str(exc))]) from None
        self.verifier = verifier
        self.decider = Decider(ruleset, verifier)
        # (snapshot | full load | given, why): what the cold-start line reports (lambda_handler.py).
        self.rules_source = (GIVEN, "built by the caller")

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        environ: Mapping[str, str] | None = None,
        snapshot: bool = False,
        settings: Settings | None = None,
    ) -> Authorizer:
        """Load the rules under `path` under `settings` (default: `environ`'s, rules/settings.py);
        with `snapshot`, from a matching rules snapshot if any (and RULEAUTH_SNAPSHOT allows)."""
        if settings is None:
            settings = Settings.from_environ(os.environ if environ is None else environ)
        ruleset, source = load_snapshot(path, settings) if snapshot else (None, (FULL_LOAD, "no snapshot asked for"))
        if ruleset is None:
            from ruleauth.rules import loader as rules_loader  # PyYAML and lark: imported only for a full load

            ruleset = rules_loader.load(path, settings=settings)
        authorizer = cls(ruleset, environ=environ)
        authorizer.rules_source = source
        return authorizer

    def authorize(self, event: Any, now: float | None = None, claims: Mapping[str, Any] | None = None) -> Authorization:
        """Decide one event. Never raises: anything unexpected is a 401 `internal_error`."""
        started = time.perf_counter()
        try:
            result = self._authorize(event, now, claims)
        except Exception as exc:  # the last line of fail-closed: never an Allow, never a 500
            decision = Decision(UNAUTHORIZED, INTERNAL_ERROR, detail="unexpected error")
            result = Authorization(decision, None, internal_error=type(exc).__name__)
        result.latency_ms = (time.perf_counter() - started) * 1000
        return result

    def _authorize(self, event: Any, now: float | None, claims: Mapping[str, Any] | None) -> Authorization:
        try:
            request = parse_event(event)
        except BadEvent as exc:
            decision = Decision(DENY, BAD_EVENT, detail=str(exc))
            return Authorization(decision, deny_all())
        decision = self.decider.decide(request, now=now, claims=claims)
        if decision.outcome == UNAUTHORIZED:
            return Authorization(decision, None)
        table = self.decider.policy_table
        response = build_response(decision, self.ruleset, self.response_mode, table)
        problems = response_check.problems(response)
        if problems == [response_check.SIZE] and table is not None:
            # The whole table does not fit in 8 KB for this caller: answer for this route alone.
            decision.warnings.append("policy_per_request")
            response = build_response(decision, self.ruleset, self.response_mode, table, per_request=True)
            problems = response_check.problems(response)
        if problems == [response_check.SIZE]:
            decision.outcome, decision.reason = DENY, RESPONSE_TOO_LARGE
            decision.context = {}
            response = build_response(decision, self.ruleset, self.response_mode, table, per_request=True)
            problems = response_check.problems(response)
        if problems:
            # Our own bug, caught before API Gateway turns it into a 500 with no log.
            decision.outcome, decision.reason = UNAUTHORIZED, INTERNAL_ERROR
            return Authorization(decision, None, internal_error="InvalidResponse", problems=problems)
        result = Authorization(decision, response)
        self._decide_by_policy(result)
        return result

    def _decide_by_policy(self, result: Authorization) -> None:
        """In the cached modes the decision is API Gateway's evaluation of the emitted policy."""
        decision = result.decision
        granted = result.gateway_outcome == ALLOW
        if granted and not decision.allowed:
            # Cannot happen by construction; if it ever did, deny rather than over-grant.
            decision.warnings.append("policy_over_grant_blocked")
            result.response = build_response(decision, self.ruleset, self.response_mode, None, per_request=True)
        elif decision.allowed and not granted:
            # The rules allow, but no policy over the routes says so exactly (route mode under a
            # coarse API route, where the table has conflicts): allow exactly the asked ARN,
            # which a cached copy reuses for no other request; else deny.
            exact = asked_only(decision)
            response = (
                None if exact is None else build_response(decision, self.ruleset, self.response_mode, exact=exact)
            )
            if response is not None and not response_check.problems(response):
                decision.warnings.append("policy_per_request")
                result.response = response
                return
            decision.outcome, decision.reason = DENY, POLICY_CONFLICT
            decision.detail = "the cached policy cannot allow this route without over-granting another"


SNAPSHOT, FULL_LOAD, GIVEN = "snapshot", "full load", "given"


def load_snapshot(path: str | os.PathLike[str], settings: Settings) -> tuple[RuleSet | None, tuple[str, str]]:
    """The rule set from the rules snapshot beside `path` if one matches (rules/snapshot.py),
    and (snapshot | full load, why) for the cold-start line (lambda_handler.py).

    A stale or damaged one is reported in one line and ignored: the full load that follows
    checks everything, and fails the cold start on a broken rules file as without a snapshot.
    """
    if not settings.snapshot.value:
        return None, (FULL_LOAD, f"snapshots are off: {settings.snapshot}")
    ruleset, status = read_snapshot(path, settings)
    if ruleset is not None:
        return ruleset, (SNAPSHOT, "it matches the rules files, ruleauth and the load settings")
    if status == SNAPSHOT_ABSENT:
        from ruleauth.rules.snapshot import snapshot_path

        return None, (FULL_LOAD, f"no snapshot at {snapshot_path(path)}")
    from ruleauth.runtime.decision_log import notice

    notice(f"ruleauth: rules snapshot not used: {status}; loading the rules in full", logging.WARNING)
    return None, (FULL_LOAD, f"the snapshot was not used: {status}")


SNAPSHOT_USED, SNAPSHOT_ABSENT = "used", "absent"


def read_snapshot(path: str | os.PathLike[str], settings: Settings) -> tuple[RuleSet | None, str]:
    """(the rule set from the rules snapshot beside `path`, "used"); (None, "absent") when
    there is none; (None, why it was not used) when it is stale, damaged or foreign.
    Writes nothing: `load_snapshot` is the cold start's, which reports."""
    from ruleauth.rules import snapshot as rules_snapshot

    try:
        ruleset = rules_snapshot.read(path, settings=settings)
    except rules_snapshot.SnapshotUnusable as exc:
        return None, str(exc)
    return ruleset, SNAPSHOT_USED if ruleset is not None else SNAPSHOT_ABSENT


def locate_rules(environ: Mapping[str, str] | None = None, in_lambda: bool | None = None) -> Path:
    """SPEC "Deploying": RULEAUTH_RULES, then $LAMBDA_TASK_ROOT/rules, then $LAMBDA_TASK_ROOT itself
    if it holds rules files, then /opt/rules; ./rules outside Lambda."""
    environ = os.environ if environ is None else environ
    task_root = environ.get("LAMBDA_TASK_ROOT")
    in_lambda = bool(task_root) if in_lambda is None else in_lambda
    tried: list[Path] = []
    configured = environ.get("RULEAUTH_RULES")
    if configured:
        path = Path(configured)
        if not path.is_absolute() and task_root:
            path = Path(task_root) / path
        if path.exists():
            return path
        tried.append(path)
    root = Path(task_root) if task_root else None
    # The root itself: a function whose code is only its rules (CodeUri: rules/), with ruleauth
    # from a layer. It counts only with rules files in it, as any function root exists.
    candidates = [root / "rules", root] if root else []
    candidates.append(Path("/opt/rules") if in_lambda else Path("rules"))
    for path in candidates:
        if (path.is_dir() and bool(directory_rule_files(path))) if path is root else path.exists():
            return path
        tried.append(path)
    raise RulesError(
        [
            Problem(
                "no rules found; tried "
                + ", ".join(str(p) for p in tried)
                + ". Set RULEAUTH_RULES to a rules file or directory"
            )
        ]
    )
