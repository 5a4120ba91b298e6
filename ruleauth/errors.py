"""Typed errors. Load-time problems carry a position; run-time ones a reason code."""

from __future__ import annotations

from dataclasses import dataclass

from ruleauth.model import SourcePos

ERROR = "error"
WARNING = "warning"


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
