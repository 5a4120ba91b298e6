"""Running compiled expressions: the activation every rule sees, and strict result handling.

Only an exact CEL `true` allows. cel-python returns errors either raised or as
`CELEvalError` values (which are truthy), and `BoolType` is an `int` subclass;
cel-expr-python returns errors as ERROR values whose `.value()` is a truthy message.
So every result, of either engine, is classified here and nowhere else.

Activations start as plain Python (`activation_for`): the fast engine takes them as
they are, cel-python gets them converted to its own value types.
"""

from __future__ import annotations

import datetime
import json
import math
import time
from dataclasses import dataclass
from typing import Any, Mapping

import celpy
from celpy import celtypes
from celpy.evaluation import CELEvalError

from . import fast_engine
from .expressions import CEL_EXPR_PYTHON, Compiled

MAX_CLAIM_DEPTH = 32
MAX_LIST_ITEMS = 256
MAX_VALUE_BYTES = 8 * 1024
DEADLINE_SECONDS = 1.0

TRUE, FALSE, NON_BOOL, ERROR = "true", "false", "non_bool", "error"


class DeadlineExceeded(Exception):
    """The request's evaluation budget is spent; remaining expressions deny."""


@dataclass(frozen=True)
class Result:
    kind: str  # TRUE, FALSE, NON_BOOL, ERROR
    value: Any = None
    error_class: str = ""

    @property
    def allows(self) -> bool:
        return self.kind == TRUE


class Budget:
    """The per-request evaluation deadline (SPEC "Limits": 1 s; later rules deny)."""

    def __init__(self, seconds: float = DEADLINE_SECONDS, clock=time.monotonic):
        self._clock = clock
        self._end = clock() + seconds

    def check(self) -> None:
        if self._clock() > self._end:
            raise DeadlineExceeded()


def evaluate(compiled: Compiled, activation: Mapping[str, Any], budget: Budget | None = None) -> Result:
    try:
        if budget is not None:
            budget.check()
        value = compiled.evaluate(activation)
        # Explanations evaluate bare cel-python sub-programs, which name no engine.
        if getattr(compiled, "engine", None) == CEL_EXPR_PYTHON:
            return classify_fast(value)
    except DeadlineExceeded:
        return Result(ERROR, error_class="DeadlineExceeded")
    except RecursionError:
        return Result(ERROR, error_class="RecursionError")
    except CELEvalError as exc:
        return Result(ERROR, error_class=_error_class(exc))
    except Exception as exc:  # cel-python raises plain Python errors from some operators
        return Result(ERROR, error_class=type(exc).__name__)
    return classify(value)


def classify(value: Any) -> Result:
    if isinstance(value, CELEvalError):
        return Result(ERROR, error_class=_error_class(value))
    if isinstance(value, celtypes.BoolType):
        return Result(TRUE if value == True else FALSE, bool(value))  # noqa: E712 - BoolType is an int
    return Result(NON_BOOL, _as_cel(value))


def classify_fast(value: Any) -> Result:
    """A cel-expr-python result. Its error values carry a truthy message: test the type first."""
    if fast_engine.is_error(value):
        return Result(ERROR, error_class=fast_engine.error_class(value.value()))
    if fast_engine.is_bool(value):
        exact = value.value() is True
        return Result(TRUE if exact else FALSE, exact)
    return Result(NON_BOOL, fast_engine.plain(value))


def _as_cel(value: Any) -> Any:
    """cel-python returns some results as plain Python values (`'a' + b` is a `str`, `x * 2.0`
    a `float`); the principal, context and usageIdentifierKey checks look for CEL types, so a
    concatenated principal was refused. A Python bool is left alone: only BoolType allows."""
    if type(value) is str:
        return celtypes.StringType(value)
    if type(value) is float:
        return celtypes.DoubleType(value)
    if type(value) is int:
        return celtypes.IntType(value)
    return value


def _error_class(exc: CELEvalError) -> str:
    # args are (message, exception class, exception args); the message and args can embed
    # inputs, so only the class name leaves this function.
    if len(exc.args) > 1 and isinstance(exc.args[1], type):
        return exc.args[1].__name__
    return "CELEvalError"


def within_bounds(value: Any) -> bool:
    """Claims (and test data) must be at most 32 deep with lists of at most 256 items."""
    stack = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if level > MAX_CLAIM_DEPTH:
            return False
        if isinstance(item, Mapping):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, (list, tuple)):
            if len(item) > MAX_LIST_ITEMS:
                return False
            stack.extend((v, level + 1) for v in item)
    return True


def to_cel(value: Any) -> Any:
    return celpy.json_to_cel(value)


def activation_for(engine: str, plain: Mapping[str, Any]) -> dict[str, Any]:
    """The activation an engine evaluates: `plain` holds str, int, list, dict and a datetime `now`."""
    if engine == CEL_EXPR_PYTHON:
        return fast_engine.Activation(plain)
    return celpy_activation(plain)


def celpy_activation(plain: Mapping[str, Any]) -> dict[str, Any]:
    """Plain variables as cel-python values (it evaluates plain dicts and strings to errors)."""
    converted: dict[str, Any] = {}
    for name, value in plain.items():
        if name == "request" and isinstance(value, Mapping):
            converted[name] = celtypes.MapType({
                celtypes.StringType(k): string_map(v) if isinstance(v, Mapping) else to_cel(v)
                for k, v in value.items()})
        elif name == "auth" and isinstance(value, Mapping):
            converted[name] = string_map(value)
        elif isinstance(value, datetime.datetime):
            converted[name] = value if isinstance(value, celtypes.TimestampType) else celtypes.TimestampType(value)
        else:
            converted[name] = to_cel(value)
    return converted


def string_map(values: Mapping[str, str]) -> celtypes.MapType:
    return celtypes.MapType({celtypes.StringType(k): celtypes.StringType(v) for k, v in values.items()})


def timestamp(now: float) -> celtypes.TimestampType:
    return celtypes.TimestampType(utc_datetime(now))


def utc_datetime(now: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(now, tz=datetime.timezone.utc)


def scopes_of(claims: Mapping[str, Any]) -> list[str]:
    scope = claims.get("scope")
    if isinstance(scope, str):
        return [s for s in scope.split(" ") if s]
    scp = claims.get("scp")
    if isinstance(scp, str):
        return [s for s in scp.split(" ") if s]
    if isinstance(scp, list):
        return [s for s in scp if isinstance(s, str)]
    return []


def context_value(value: Any) -> str | int | float | bool | None:
    """A CEL result as an API Gateway context value: strings, numbers or booleans only.

    Either engine's values: cel-python's types, or the fast engine's plain Python ones.
    """
    if value is None or isinstance(value, CELEvalError):
        return None
    if isinstance(value, (celtypes.BoolType, bool)):  # Result keeps true/false as a Python bool
        return bool(value)
    value = _as_cel(value)
    if isinstance(value, (celtypes.IntType, celtypes.UintType)):
        return int(value)
    if isinstance(value, celtypes.DoubleType):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, celtypes.StringType):
        return str(value)
    if isinstance(value, (list, dict)):  # cel-python's ListType and MapType included
        try:
            return json.dumps(to_plain(value), separators=(",", ":"), sort_keys=True, allow_nan=False)
        except (TypeError, ValueError):
            return None
    if isinstance(value, (celtypes.TimestampType, celtypes.DurationType)):
        return str(value)
    if isinstance(value, datetime.datetime):
        return fast_engine.format_timestamp(value)
    if isinstance(value, datetime.timedelta):
        return fast_engine.format_duration(value)
    return None


def to_plain(value: Any) -> Any:
    """A CEL value as JSON-ready Python."""
    if isinstance(value, celtypes.BoolType):
        return bool(value)
    if isinstance(value, (celtypes.IntType, celtypes.UintType)):
        return int(value)
    if isinstance(value, celtypes.DoubleType):
        return float(value)
    if isinstance(value, celtypes.StringType):
        return str(value)
    if isinstance(value, (bool, int, float, str)):  # the fast engine's plain results
        return value
    if isinstance(value, (celtypes.BytesType, bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if value is None:
        return None
    if isinstance(value, datetime.datetime) and not isinstance(value, celtypes.TimestampType):
        return fast_engine.format_timestamp(value)
    if isinstance(value, datetime.timedelta) and not isinstance(value, celtypes.DurationType):
        return fast_engine.format_duration(value)
    return str(value)
