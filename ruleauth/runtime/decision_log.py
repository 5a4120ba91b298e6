"""One JSON line per decision: what was decided, by which rule, why, and how fast.

Never a credential, cookie or identity-source value: the line is built from a
fixed set of fields, and every string that came from a caller (principal,
provider names picked by a token's issuer, kid) is escaped and cut.

The lines are `logging` records of the `ruleauth` logger, with the field names
Powertools for AWS Lambda's Logger writes (docs/logging.md). Under Lambda's JSON log
format the runtime's own formatter writes them, with ruleauth's fields as top-level
keys; otherwise ruleauth's formatter writes one JSON object per line to stdout.
"""

from __future__ import annotations

import json
import logging
import os
import random
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from ruleauth.errors import safe_text as _safe_text
from ruleauth.reasons import Reason
from ruleauth.runtime.decision import Decision

# Lambda's advanced logging levels include TRACE and FATAL (docs/logging.md).
LEVELS = {"TRACE": 10, "DEBUG": 10, "INFO": 20, "WARNING": 30, "WARN": 30, "ERROR": 40, "FATAL": 50, "CRITICAL": 50}
MAX_TEXT = 128
PRINCIPAL_ERROR, RULE_ERROR = Reason.PRINCIPAL_ERROR, Reason.RULE_ERROR
LOGGER = "ruleauth"
DECISION_MESSAGE, COLD_START_MESSAGE = "ruleauth decision", "ruleauth cold start"
SERVICE_VARIABLES = ("POWERTOOLS_SERVICE_NAME", "RULEAUTH_SERVICE")
TRACE_VARIABLE = "_X_AMZN_TRACE_ID"  # set by the runtime before each invocation
# The attributes every LogRecord has: anything else on a record is one of our fields.
_RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


def safe_text(value: Any) -> str:
    """Token-derived strings as log fields: escaped and cut (errors.safe_text), never forging a line."""
    return _safe_text(value, MAX_TEXT, quoted=False)


def log_level(environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    name = environ.get("RULEAUTH_LOG_LEVEL") or environ.get("AWS_LAMBDA_LOG_LEVEL") or "INFO"
    return LEVELS.get(name.upper(), logging.INFO)


def service_name(environ: Mapping[str, str]) -> str:
    """Powertools' POWERTOOLS_SERVICE_NAME, else RULEAUTH_SERVICE, else `ruleauth`."""
    for variable in SERVICE_VARIABLES:
        value = environ.get(variable, "").strip()
        if value:
            return value
    return LOGGER


def xray_trace_id(header: str | None) -> str | None:
    """The `Root=` part of _X_AMZN_TRACE_ID (`Root=1-…;Parent=…;Sampled=1`), as Powertools logs it."""
    if not header:
        return None
    for part in header.split(";"):
        if part.startswith("Root="):
            return part[5:] or None
    return None


def lambda_fields(context: Any) -> dict[str, Any]:
    """Powertools' names for the Lambda context object's fields (docs/logging.md)."""
    if context is None:
        return {}
    memory = getattr(context, "memory_limit_in_mb", None)
    return {
        "function_name": getattr(context, "function_name", None),
        # The runtime gives it as the text of AWS_LAMBDA_FUNCTION_MEMORY_SIZE; Powertools logs a number.
        "function_memory_size": int(memory) if isinstance(memory, str) and memory.isdigit() else memory,
        "function_arn": getattr(context, "invoked_function_arn", None),
        "function_request_id": getattr(context, "aws_request_id", None),
    }


def record(decision: Decision, latency_ms: float, internal_error: str | None = None) -> dict[str, Any]:
    line: dict[str, Any] = {
        "level": "INFO",
        "message": DECISION_MESSAGE,
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


_encode = json.JSONEncoder(separators=(",", ":"), default=str).encode  # built once: a line costs ~10 us


class JsonLineFormatter(logging.Formatter):
    """One JSON object per line, Powertools' key order: level, message, timestamp, then the fields."""

    _second: tuple[int, str] = (-1, "")  # the last whole second formatted: most lines share it

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "level": record.levelname,
            "message": record.msg,
            "timestamp": self.formatTime(record),
        }
        line.update((k, v) for k, v in record.__dict__.items() if k not in _RECORD_ATTRIBUTES)
        return str(_encode(line))

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        # ISO 8601 in UTC with milliseconds, as Powertools' Logger(utc=True) with its RFC 3339 format.
        second = int(record.created)
        if second != self._second[0]:
            self._second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        return f"{self._second[1]}.{int(record.msecs):03d}Z"


class StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to the stream given, else to whatever sys.stdout is at the time (the Lambda
    runtime replaces it with an unbuffered one after ruleauth may have been imported)."""

    def __init__(self, stream: TextIO | None = None):
        super().__init__(stream)
        self.fixed = stream
        self.setFormatter(JsonLineFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        # StreamHandler.emit, less its second lock for the flush: handle() holds the lock.
        try:
            stream = self.fixed or sys.stdout
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)


def lambda_json_format(environ: Mapping[str, str] | None = None) -> bool:
    """Lambda's JSON log format is on and its runtime has put its handler on the root logger."""
    environ = os.environ if environ is None else environ
    return environ.get("AWS_LAMBDA_LOG_FORMAT", "").upper() == "JSON" and bool(logging.getLogger().handlers)


def notice(text: str, level: int, environ: Mapping[str, str] | None = None) -> None:
    """A cold start's message outside the decision lines (a broken rules file, an unused
    snapshot): one JSON record among the runtime's under Lambda's JSON log format (its
    newlines escaped), else plain text on stdout, as Lambda's text format shows it."""
    if lambda_json_format(environ):
        logging.getLogger(LOGGER).log(level, text)
    else:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


def make_record(level: int, message: str, fields: Mapping[str, Any]) -> logging.LogRecord:
    """A record of the ruleauth logger whose fields are attributes: any formatter that writes a
    record's extra attributes (Lambda's JSON one does) writes them as top-level keys."""
    entry = logging.LogRecord(LOGGER, level, "", 0, message, None, None)
    entry.__dict__.update(fields)
    return entry


def emit(line: dict[str, Any], stream: TextIO | None = None) -> None:
    """Write one `record()` line, if its level passes RULEAUTH_LOG_LEVEL / AWS_LAMBDA_LOG_LEVEL."""
    level = LEVELS.get(line.get("level", "INFO"), logging.INFO)
    if level < log_level():
        return
    fields = {k: v for k, v in line.items() if k not in ("level", "message")}
    StdoutHandler(stream).handle(make_record(level, line.get("message", DECISION_MESSAGE), fields))


@dataclass
class DecisionLog:
    """Writes the decision lines of one Lambda container, and its cold-start line."""

    sample_allow: float = 1.0
    stream: TextIO | None = None
    draw: Callable[[], float] = random.random
    level: int = field(default_factory=log_level)
    service: str = field(default_factory=lambda: service_name(os.environ))
    # Under Lambda's JSON log format (and no stream given) the records go to the `ruleauth`
    # logger, whose records reach the runtime's handler on the root logger.
    lambda_json: bool | None = None
    cold: bool = True  # the next invocation is this container's first: Powertools' cold_start
    _trace: tuple[str | None, str | None] = (None, None)  # the last _X_AMZN_TRACE_ID, parsed

    def __post_init__(self) -> None:
        if self.lambda_json is None:
            self.lambda_json = self.stream is None and lambda_json_format()
        self.sink: logging.Logger | logging.Handler
        if self.lambda_json:
            self.sink = logging.getLogger(LOGGER)
            self.sink.setLevel(self.level)
        else:
            self.sink = StdoutHandler(self.stream)

    def write(
        self, decision: Decision, latency_ms: float, internal_error: str | None = None, context: Any = None
    ) -> None:
        cold, self.cold = self.cold, False
        sampled = decision.allowed and self.sample_allow < 1.0
        if sampled and not decision.shadows and self.draw() >= self.sample_allow:
            return
        line = record(decision, latency_ms, internal_error)
        level = LEVELS[line.pop("level")]
        if level < self.level:
            return
        del line["message"]
        fields = {"service": self.service, "cold_start": cold, **lambda_fields(context), **line}
        if sampled:
            fields["sampling_rate"] = self.sample_allow
        header = os.environ.get(TRACE_VARIABLE)
        if header:
            if header != self._trace[0]:
                self._trace = (header, xray_trace_id(header))
            fields["xray_trace_id"] = self._trace[1]
        self.sink.handle(make_record(level, DECISION_MESSAGE, fields))

    def cold_start(self, fields: Mapping[str, Any]) -> None:
        """The one line a cold start writes once the rules are loaded (lambda_handler.py)."""
        if self.level <= logging.INFO:
            self.sink.handle(make_record(logging.INFO, COLD_START_MESSAGE, {"service": self.service, **fields}))
