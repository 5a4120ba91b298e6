"""cel-python's interpreter: its environment, functions and value types at its edges.

Only expressions that run on cel-python's interpreter (see cel_closures.py for
which) need this module, and importing it imports cel-python; everything else
works on plain Python values.
"""

from __future__ import annotations

import datetime
from typing import Any, Callable, Mapping

import celpy
from celpy import celtypes
from celpy.evaluation import CELEvalError, function_getMilliseconds

from . import cel_functions, cel_parser, cel_time

__all__ = ["CELEvalError", "celtypes", "converted", "celpy_activation", "error_class", "as_cel",
           "environment", "FUNCTIONS"]


def environment() -> celpy.Environment:
    """A cel-python Environment that parses with ruleauth's (prebuilt) parser."""
    cel_parser.install()
    return celpy.Environment()


def _string_result(plain: Callable[..., str]) -> Callable[..., celtypes.StringType]:
    return lambda *args: celtypes.StringType(plain(*args))


def _split(value: Any, separator: Any) -> celtypes.ListType:
    return celtypes.ListType([celtypes.StringType(p) for p in cel_functions.split_plain(value, separator)])


def _duration(value: datetime.timedelta) -> cel_time.Duration:
    return cel_time.Duration((value.days * 86400 + value.seconds) * cel_time.NANOS + value.microseconds * 1000)


def _string(value: Any) -> celtypes.StringType:
    """string() as CEL defines it where cel-python's differs (docs/cel.md): `true`, not `True`;
    a timestamp or duration with its fraction of a second, not cut to whole seconds."""
    if isinstance(value, celtypes.BoolType):
        return celtypes.StringType("true" if value else "false")
    if isinstance(value, celtypes.TimestampType):
        return celtypes.StringType(cel_time.format_timestamp(cel_time.from_datetime(value)))
    if isinstance(value, celtypes.DurationType):
        return celtypes.StringType(cel_time.format_duration(_duration(value)))
    return celtypes.StringType(value)


def _get_milliseconds(value: Any, *zone: Any) -> celtypes.IntType:
    """A duration's milliseconds within its second (cel-python's are wrong: docs/cel.md)."""
    if isinstance(value, celtypes.DurationType) and not zone:
        return celtypes.IntType(cel_time.get_milliseconds(_duration(value)))
    return function_getMilliseconds(value, *zone)


# The strings-extension functions, returning cel-python's own value types, and the
# functions whose cel-python forms answer otherwise than CEL.
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "string": _string,
    "getMilliseconds": _get_milliseconds,
    "split": _split,
    "join": lambda values, separator=celtypes.StringType(""): celtypes.StringType(
        cel_functions.join_plain(values, separator)),
    "lowerAscii": _string_result(cel_functions.lower_ascii_plain),
    "upperAscii": _string_result(cel_functions.upper_ascii_plain),
    "trim": _string_result(cel_functions.trim_plain),
}


def converted(activation: Mapping[str, Any]) -> dict[str, Any]:
    """The interpreter's activation for a plain one, made once per request activation."""
    cached = getattr(activation, "celpy", None)
    return cached() if cached is not None else celpy_activation(activation)


def celpy_activation(plain: Mapping[str, Any]) -> dict[str, Any]:
    """Plain variables as cel-python values (it evaluates plain dicts and strings to errors)."""
    result: dict[str, Any] = {}
    for name, value in plain.items():
        if name == "request" and isinstance(value, Mapping):
            result[name] = celtypes.MapType({
                celtypes.StringType(k): string_map(v) if isinstance(v, Mapping) else celpy.json_to_cel(v)
                for k, v in value.items()})
        elif name == "auth" and isinstance(value, Mapping):
            result[name] = string_map(value)
        elif isinstance(value, datetime.datetime):
            result[name] = value if isinstance(value, celtypes.TimestampType) else celtypes.TimestampType(value)
        else:
            result[name] = celpy.json_to_cel(value)
    return result


def string_map(values: Mapping[str, str]) -> celtypes.MapType:
    return celtypes.MapType({celtypes.StringType(k): celtypes.StringType(v) for k, v in values.items()})


def error_class(exc: CELEvalError) -> str:
    # args are (message, exception class, exception args); the message and args can embed
    # inputs, so only the class name leaves this function.
    if len(exc.args) > 1 and isinstance(exc.args[1], type):
        return exc.args[1].__name__
    return "CELEvalError"


def as_cel(value: Any) -> Any:
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
