"""Typed errors, under one root `RuleauthError`. Load-time problems carry a position; run-time ones a reason code.

    RuleauthError
    ├── LoadError: the rules, a template or a provider's configuration cannot be used
    │   (RulesError, ExpressionError, RouteSyntaxError, CELSyntaxError, TemplateError, JwtConfigError)
    ├── RequestError: one request is refused, with its `reason` (BadEvent, CredentialError, JwtError)
    ├── KeysError: a provider's keys (JwksError: JwksFormatError, FetchError, KeysUnavailable, KeyNotFound)
    └── EngineError: the cel-expr-python engine (EngineUnavailable, CompileError)

Classes that were ValueError or RuntimeError keep that second base, so existing handlers still catch them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ruleauth.model import SourcePos
from ruleauth.reasons import Reason

ERROR = "error"
WARNING = "warning"


class RuleauthError(Exception):
    """The root of every error ruleauth raises to its callers."""


class LoadError(RuleauthError):
    """Raised while loading: the rules, a template or a configuration cannot be used."""


class RequestError(RuleauthError):
    """One request is refused; `reason` is its decision's reason. Never escapes the handler."""

    reason: Reason


class KeysError(RuleauthError):
    """A provider's signing keys could not be fetched, parsed or found."""


class EngineError(RuleauthError):
    """The optional cel-expr-python engine is missing or refuses an expression."""


def safe_text(value: object, limit: int = 128, quoted: bool = True) -> str:
    """ASCII-only, one line, at most `limit` characters (plus the quotes), a cut marked `...`: for caller- or
    token-derived text that goes into a message or a log line, so it cannot forge lines.

    Non-strings show only their type: repr() or str() of hostile data can be huge or raise
    (str() of a 5000-digit int does). The work is bounded by `limit`, not by the value.
    `quoted` wraps the text in '...' (with ' escaped), for a value inside a sentence.
    """
    if not isinstance(value, str):
        return f"<{type(value).__name__}>"
    escaped = value[: limit * 2].encode("unicode_escape").decode("ascii")
    if quoted:
        escaped = escaped.replace("'", "\\'")
    if len(escaped) > limit:  # always so when the slice above cut: each character escapes to one or more
        escaped = escaped[: limit - 3] + "..."
    return f"'{escaped}'" if quoted else escaped


@dataclass(frozen=True)
class Problem:
    """One finding about a rules file, shown as `file:line:col: error: message`."""

    message: str
    pos: SourcePos | None = None
    severity: str = ERROR
    rule: str | None = None

    def format(self) -> str:
        where = f"{self.pos}: " if self.pos else ""
        named = f"rule {self.rule!r}: " if self.rule else ""
        return f"{where}{self.severity}: {named}{self.message}"


class RulesError(LoadError):
    """The rules could not be loaded. Raised at cold start: the function must not serve."""

    def __init__(self, problems: list[Problem]):
        self.problems = [p for p in problems if p.severity == ERROR] or list(problems)
        count = len(self.problems)
        head = "ruleauth: the rules failed to load" + (f" ({count} problems)" if count > 1 else "")
        super().__init__(head + ":\n" + "\n".join(p.format() for p in self.problems))


class BadEvent(RequestError, ValueError):
    """The event is not an API Gateway authorizer event we understand (reason bad_event)."""

    reason = Reason.BAD_EVENT


class CredentialError(RequestError):
    """No usable credential (reason missing_credential or bad_credential)."""

    def __init__(self, reason: Reason, detail: str):
        super().__init__(detail)
        self.reason = reason
