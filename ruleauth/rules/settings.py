"""The effective configuration: every setting resolved once, with where it came from.

A setting can be given in the rules file (`response:`, `engine:`, `cache.mode`), by a
RULEAUTH_* environment variable, or by a CLI flag (`validate --response simple`), in
rising precedence. The cold start, `validate`, `dry-run`, `test`, `serve` and
`snapshot` resolve them into one `Settings` and run every load check on it, so an
override can never skip a check the file's own key would meet (a RULEAUTH_RESPONSE=simple
resolved after the checks once bypassed the simple/cache-mode check). Each value
carries its origin, so a refusal names it: "RULEAUTH_RESPONSE=simple (environment)".

Resolution is in two steps because the file is read after the environment:
`from_environ` takes the environment and flags (and checks their values), then the
loader calls `with_file` for each file key; an override keeps precedence.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ruleauth.errors import Problem, RulesError
from ruleauth.model import SourcePos

FILE, ENVIRONMENT, FLAG, DEFAULT = "file", "environment", "flag", "default"

RESPONSES = ("iam", "simple")
ENGINES = ("cel-python", "cel-expr-python")  # expressions.ENGINES; not imported: cold start stays lean
CACHE_MODES = ("identity", "route", "disabled")  # ruleset.CACHE_MODES
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "WARN", "ERROR")  # decision_log.LEVELS also has Lambda's TRACE, FATAL
_FALSE = ("0", "false", "off", "no")


@dataclass(frozen=True)
class Setting:
    """One setting's value and where it was given: a file position, a variable or a flag."""

    key: str  # as the rules file spells it: `response`, `cache.mode`; or the variable's name
    value: Any
    origin: str = DEFAULT
    variable: str | None = None  # the RULEAUTH_* variable, or the flag, that gave it
    pos: SourcePos | None = None  # where the file gave it

    def __str__(self) -> str:
        shown = self.value if not isinstance(self.value, bool) else ("on" if self.value else "off")
        if self.origin == ENVIRONMENT:
            return f"{self.variable}={shown} (environment)"
        if self.origin == FLAG:
            return f"{self.variable} {shown} (flag)"
        if self.origin == FILE:
            where = f"{self.pos.file}:{self.pos.line}" if self.pos else "the rules file"
            return f"{self.key}: {shown} ({where})"
        return f"{self.key} {shown} (the default)"

    @property
    def overridden(self) -> bool:
        """Given outside the rules file: the file's bytes alone do not say it."""
        return self.origin in (ENVIRONMENT, FLAG)


# name: (rules file key, environment variable, CLI flag, default). Keep docs/spec.md's table in step.
SOURCES: dict[str, tuple[str | None, str, str | None, Any]] = {
    "response": ("response", "RULEAUTH_RESPONSE", "--response", "iam"),
    "engine": ("engine", "RULEAUTH_ENGINE", "--engine", "cel-python"),
    "cache_mode": ("cache.mode", "RULEAUTH_CACHE_MODE", "--cache-mode", "identity"),
    "interpreter_only": (None, "RULEAUTH_CEL_INTERPRETER", None, False),
    "metrics": (None, "RULEAUTH_METRICS", None, "off"),
    "log_level": (None, "RULEAUTH_LOG_LEVEL", None, "INFO"),
    "log_sample_allow": (None, "RULEAUTH_LOG_SAMPLE_ALLOW", None, 1.0),
    "snapshot": (None, "RULEAUTH_SNAPSHOT", None, True),
}
# The settings a load's result depends on besides the files: a rules snapshot is keyed on them.
LOAD_SETTINGS = ("response", "engine", "cache_mode", "interpreter_only")
_CHOICES = {"response": RESPONSES, "engine": ENGINES, "cache_mode": CACHE_MODES}


@dataclass(frozen=True)
class Settings:
    response: Setting
    engine: Setting
    cache_mode: Setting
    interpreter_only: Setting
    metrics: Setting
    log_level: Setting
    log_sample_allow: Setting
    snapshot: Setting

    @classmethod
    def from_environ(
        cls, environ: Mapping[str, str] | None = None, flags: Mapping[str, str | None] | None = None
    ) -> Settings:
        """The environment's and the flags' settings, checked; file keys still to come.

        Raises RulesError naming every bad value at once."""
        environ = os.environ if environ is None else environ
        problems: list[str] = []
        values: dict[str, Setting] = {}
        for name, (key, variable, flag, default) in SOURCES.items():
            given = (flags or {}).get(name) if flag else None
            if given:
                origin, text, label = FLAG, given, flag
            else:
                text = environ.get(variable, "").strip()
                origin, label = (ENVIRONMENT, variable) if text else (DEFAULT, None)
            setting = Setting(key or variable, default, DEFAULT)
            if origin != DEFAULT:
                value, problem = _parse(name, text, label or variable)
                if problem:
                    problems.append(problem)
                else:
                    setting = Setting(key or variable, value, origin, label)
            elif name == "log_level" and environ.get("AWS_LAMBDA_LOG_LEVEL"):
                # Lambda's own advanced logging level (it also has TRACE and FATAL): never refused.
                setting = Setting(
                    "AWS_LAMBDA_LOG_LEVEL", environ["AWS_LAMBDA_LOG_LEVEL"].upper(), ENVIRONMENT, "AWS_LAMBDA_LOG_LEVEL"
                )
            values[name] = setting
        if problems:
            raise RulesError([Problem(p) for p in problems])
        return cls(**values)

    def with_file(self, name: str, value: Any, pos: SourcePos | None) -> Settings:
        """The rules file's `key: value`; an environment variable or a flag still wins."""
        current: Setting = getattr(self, name)
        if current.overridden:
            return self
        return dataclasses.replace(self, **{name: Setting(current.key, value, FILE, None, pos)})

    def load_key(self) -> dict[str, str]:
        """What a load depends on besides the rules files, by variable: the overrides' values."""
        found = {}
        for name in LOAD_SETTINGS:
            setting: Setting = getattr(self, name)
            found[SOURCES[name][1]] = str(setting.value) if setting.overridden else ""
        return found

    def overrides(self, names: tuple[str, ...] = LOAD_SETTINGS) -> list[Setting]:
        """The settings among `names` given by the environment or a flag."""
        return [s for s in (getattr(self, n) for n in names) if s.overridden]


# The parsers of the metrics and log-sampling settings, and the metrics modes runtime/metrics.py
# tests: here, so that checking a setting never imports the runtime.
METRICS_OFF, METRICS_ON, METRICS_PER_RULE = "off", "on", "rule"


def metrics_mode_from(environ: Mapping[str, str]) -> str:
    value = environ.get("RULEAUTH_METRICS", "").strip()
    if value == "":
        return METRICS_OFF
    if value.lower() in ("1", "true"):
        return METRICS_ON
    if value.lower() == "rule":
        return METRICS_PER_RULE
    raise RulesError([Problem(f"RULEAUTH_METRICS must be 1, true or rule (or unset), not {value!r}")])


def sample_rate_from(environ: Mapping[str, str]) -> float:
    """RULEAUTH_LOG_SAMPLE_ALLOW: the share of allow lines written (0 to 1; default 1).
    Denials, 401s and errors are always written."""
    text = environ.get("RULEAUTH_LOG_SAMPLE_ALLOW", "").strip()
    if not text:
        return 1.0
    try:
        rate = float(text)
    except ValueError:
        rate = -1.0
    if not 0.0 <= rate <= 1.0:
        raise RulesError([Problem(f"RULEAUTH_LOG_SAMPLE_ALLOW must be a number from 0 to 1, not {text!r}")])
    return rate


def _parse(name: str, text: str, label: str) -> tuple[Any, str | None]:
    """(value, None), or (None, what is wrong with it)."""
    if name in _CHOICES:
        if text not in _CHOICES[name]:
            choices = " or ".join(_CHOICES[name]) if name == "response" else "one of " + ", ".join(_CHOICES[name])
            return None, f"{label} must be {choices}, not {text!r}"
        return text, None
    if name == "interpreter_only":
        return text.lower() not in ("", *_FALSE), None
    if name == "snapshot":
        return text.lower() not in _FALSE, None
    if name == "log_level":
        if text.upper() not in LOG_LEVELS:
            return None, f"{label} must be one of DEBUG, INFO, WARNING, ERROR, not {text!r}"
        return text.upper(), None
    if name == "metrics":
        try:
            return metrics_mode_from({label: text}), None
        except RulesError as exc:
            return None, exc.problems[0].message
    if name == "log_sample_allow":
        try:
            return sample_rate_from({label: text}), None
        except RulesError as exc:
            return None, exc.problems[0].message
    raise AssertionError(name)
