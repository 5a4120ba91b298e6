"""Typed errors. Load-time problems carry a position; run-time ones a reason code."""

from __future__ import annotations

from dataclasses import dataclass

from ruleauth.model import SourcePos

ERROR = "error"
WARNING = "warning"


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


class RulesError(Exception):
    """The rules could not be loaded. Raised at cold start: the function must not serve."""

    def __init__(self, problems: list[Problem]):
        self.problems = [p for p in problems if p.severity == ERROR] or list(problems)
        count = len(self.problems)
        head = "ruleauth: the rules failed to load" + (f" ({count} problems)" if count > 1 else "")
        super().__init__(head + ":\n" + "\n".join(p.format() for p in self.problems))


class BadEvent(ValueError):
    """The event is not an API Gateway authorizer event we understand (reason bad_event)."""


class CredentialError(Exception):
    """No usable credential (reason missing_credential or bad_credential)."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
