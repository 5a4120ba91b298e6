"""Running compiled expressions: the activation every rule sees, and strict result handling.

Only an exact CEL `true` allows. Each way an expression runs has its own result form:
- compiled closures (cel/closures.py, most cel-python rules) return plain Python values
  and raise errors; only a Python `bool` True allows;
- cel-python's interpreter returns errors either raised or as `CELEvalError` values
  (which are truthy), and its `BoolType` is an `int` subclass;
- cel-expr-python returns errors as ERROR values whose `.value()` is a truthy message.
So every result is classified here and nowhere else.

Activations are plain Python (`activation_for`). cel-python's interpreter gets them
converted to its own value types, once per activation and only when an expression
needs it (cel/interpreter.py).
"""

from __future__ import annotations

import datetime
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ruleauth.cel import fast_engine
from ruleauth.cel import numeric as cel_numbers
from ruleauth.cel.compiler import CEL_EXPR_PYTHON, CLOSURES, Compiled
from ruleauth.cel.timestamps import Duration, Timestamp

MAX_VALUE_BYTES = 8 * 1024
DEADLINE_SECONDS = 1.0

TRUE, FALSE, NON_BOOL, ERROR = "true", "false", "non_bool", "error"


class DeadlineExceeded(Exception):
    """The request's evaluation budget is spent; remaining expressions deny."""


@dataclass(frozen=True, eq=False)  # compared by identity: DEADLINE is found in a list at C speed
class Result:
    kind: str  # TRUE, FALSE, NON_BOOL, ERROR
    value: Any = None
    error_class: str = ""
    allows: bool = field(init=False, repr=False, compare=False)  # kind == TRUE, read per table cell

    def __post_init__(self) -> None:
        object.__setattr__(self, "allows", self.kind == TRUE)


_TRUE, _FALSE = Result(TRUE, True), Result(FALSE, False)
DEADLINE = Result(ERROR, error_class="DeadlineExceeded")


class Budget:
    """The per-request evaluation deadline (SPEC "Limits": 1 s; later rules deny)."""

    def __init__(self, seconds: float = DEADLINE_SECONDS, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._end = clock() + seconds

    def check(self) -> None:
        if self._clock() > self._end:
            raise DeadlineExceeded()


def evaluate(compiled: Compiled, activation: Mapping[str, Any], budget: Budget | None = None) -> Result:
    # Explanations evaluate bare cel-python sub-programs, which say nothing of how they run.
    runs_on = getattr(compiled, "runs_on", None)
    try:
        if budget is not None:
            budget.check()
        if runs_on == CLOSURES:
            return classify_plain(compiled.closure(activation))  # type: ignore[misc]  # set with CLOSURES
        if runs_on == CEL_EXPR_PYTHON:
            return classify_fast(fast_engine.evaluate(compiled.program, activation))
        value = compiled.evaluate(activation)
    except DeadlineExceeded:
        return DEADLINE
    except RecursionError:
        return Result(ERROR, error_class="RecursionError")
    except Exception as exc:  # closures raise; so does cel-python, from some operators
        return Result(ERROR, error_class=_error_class(exc))
    return classify(value)


def classify_plain(value: Any) -> Result:
    """A compiled closure's result: plain Python, errors raised. Only a Python bool is a boolean."""
    if value is True:
        return _TRUE
    if value is False:
        return _FALSE
    return Result(NON_BOOL, value)


def classify(value: Any) -> Result:
    """A result of cel-python's interpreter (which has loaded celpy by the time it returns one)."""
    from ruleauth.cel.interpreter import CELEvalError, as_cel, celtypes, error_class

    if isinstance(value, CELEvalError):
        return Result(ERROR, error_class=error_class(value))
    if isinstance(value, celtypes.BoolType):
        truth = bool(value)  # BoolType is an int
        return Result(TRUE if truth else FALSE, truth)
    return Result(NON_BOOL, as_cel(value))


def classify_fast(value: Any) -> Result:
    """A cel-expr-python result. Its error values carry a truthy message: test the type first."""
    kind = fast_engine.kind_of(value)
    if kind == fast_engine.ERROR:
        return Result(ERROR, error_class=fast_engine.error_class(value.value()))
    if kind == fast_engine.BOOL:
        return _TRUE if value.value() is True else _FALSE
    return Result(NON_BOOL, fast_engine.plain(value))


def _error_class(exc: Exception) -> str:
    # Tested by name: only cel-python's interpreter raises these, and it is not always imported.
    if type(exc).__name__ == "CELEvalError":
        from ruleauth.cel.interpreter import error_class

        return error_class(exc)
    return type(exc).__name__


class Activation(dict[str, Any]):
    """One request's variables as plain Python, with cel-python's form made on first use.

    Compiled closures read the plain values; an expression on cel-python's interpreter
    needs them converted, which is done once per activation, not once per expression.
    Activations are never changed once made: other table cells get a copy.
    """

    _converted: dict[str, Any] | None = None

    def __init__(self, plain: Mapping[str, Any]):
        super().__init__(plain)
        # The value of each `define:` once computed for this activation (cel/closures.py).
        self.shared_values: dict[str, Any] = {}

    def celpy(self) -> dict[str, Any]:
        if self._converted is None:
            from ruleauth.cel.interpreter import celpy_activation

            self._converted = celpy_activation(self)
        return self._converted


def activation_for(engine: str, plain: Mapping[str, Any]) -> dict[str, Any]:
    """The activation an engine evaluates: `plain` holds str, int, list, dict and a datetime `now`.

    Claims holding an integer outside int64 (a JSON number such as 2^64 or 10^400) have no
    CEL value: they are left out, so that every expression reading `claims` fails, on every
    engine (cel-cpp refuses such a map whole, and cel-python's conversion fails on it), and
    every other expression runs as usual (docs/cel-numbers.md).
    """
    claims = plain.get("claims")
    if claims and not cel_numbers.json_integers_fit(claims):
        plain = {name: value for name, value in plain.items() if name != "claims"}
    if engine == CEL_EXPR_PYTHON:
        return fast_engine.Activation(plain)
    return Activation(plain)


def utc_datetime(now: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(now, tz=datetime.UTC)


def scopes_of(claims: Mapping[str, Any]) -> list[str]:
    """`scope`, else `scp`: a space-separated string, or a list of strings read as the list
    (a verified token with any other form is refused, jwt_verifier.check_claim_formats)."""
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):
            return [s for s in value.split(" ") if s]
        if isinstance(value, list):
            return [s for s in value if isinstance(s, str)]
    return []


def context_value(value: Any) -> str | int | float | bool | None:
    """A CEL result as an API Gateway context value: strings, numbers or booleans only.

    Any engine's values: plain Python (closures, the fast engine) or cel-python's types.
    """
    kind = type(value)
    if value is None or kind in (bool, str, int):
        plain: str | int | bool | None = value
        return plain
    if kind is float:
        return value if math.isfinite(value) else None
    if kind in (list, dict):
        return _json_text(value)
    if kind is Timestamp or kind is Duration:
        return _temporal_text(value)
    if isinstance(value, datetime.datetime) and type(value).__module__ == "datetime":
        return fast_engine.format_timestamp(value)
    if isinstance(value, datetime.timedelta) and type(value).__module__ == "datetime":
        return fast_engine.format_duration(value)
    return _celpy_context_value(value)


def _temporal_text(value: Timestamp | Duration) -> str:
    """A compiled closure's timestamp or duration as the other engines' values are written
    (whole seconds), so a context value reads the same whichever engine computed it."""
    if type(value) is Timestamp:
        return fast_engine.format_timestamp(value.datetime())
    return fast_engine.format_duration(datetime.timedelta(microseconds=value.nanos // 1000))


def _json_text(value: Any) -> str | None:
    try:
        return json.dumps(to_plain(value), separators=(",", ":"), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError):
        return None


def _celpy_context_value(value: Any) -> str | int | float | bool | None:
    from ruleauth.cel.interpreter import CELEvalError, as_cel, celtypes

    if isinstance(value, CELEvalError):
        return None
    if isinstance(value, celtypes.BoolType):
        return bool(value)
    value = as_cel(value)
    if isinstance(value, (celtypes.IntType, celtypes.UintType)):
        return int(value)
    if isinstance(value, celtypes.DoubleType):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, celtypes.StringType):
        return str(value)
    if isinstance(value, (list, dict)):  # cel-python's ListType and MapType
        return _json_text(value)
    if isinstance(value, (celtypes.TimestampType, celtypes.DurationType)):
        return str(value)
    return None


def to_plain(value: Any) -> Any:
    """A CEL value, of any engine, as JSON-ready Python."""
    kind = type(value)
    if value is None or kind in (bool, int, float, str):
        return value
    if kind is list:
        return [to_plain(v) for v in value]
    if kind is dict:
        return {str(k): to_plain(v) for k, v in value.items()}
    if kind is Timestamp or kind is Duration:
        return _temporal_text(value)
    if isinstance(value, datetime.datetime) and type(value).__module__ == "datetime":
        return fast_engine.format_timestamp(value)
    if isinstance(value, datetime.timedelta) and type(value).__module__ == "datetime":
        return fast_engine.format_duration(value)
    if isinstance(value, (bytes, bytearray)) and kind in (bytes, bytearray):
        return bytes(value).decode("utf-8", "replace")
    return _celpy_plain(value)


def _celpy_plain(value: Any) -> Any:
    from ruleauth.cel.interpreter import celtypes

    if isinstance(value, celtypes.BoolType):
        return bool(value)
    if isinstance(value, (celtypes.IntType, celtypes.UintType)):
        return int(value)
    if isinstance(value, celtypes.DoubleType):
        return float(value)
    if isinstance(value, celtypes.StringType):
        return str(value)
    if isinstance(value, (celtypes.BytesType, bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    return str(value)
