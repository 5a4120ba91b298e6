"""cel-python's interpreter: its environment, functions and value types at its edges.

Only expressions that run on cel-python's interpreter (see cel/closures.py for
which) need this module, and importing it imports cel-python; everything else
works on plain Python values.
"""

from __future__ import annotations

import datetime
import math
import operator
from collections.abc import Callable, Mapping
from typing import Any, cast

import celpy
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError, Evaluator, base_functions, function_getMilliseconds

from ruleauth.cel import functions as cel_functions
from ruleauth.cel import numeric as cel_numbers
from ruleauth.cel import parser as cel_parser
from ruleauth.cel import timestamps as cel_time

__all__ = [
    "FUNCTIONS",
    "CELEvalError",
    "as_cel",
    "celpy_activation",
    "celtypes",
    "converted",
    "environment",
    "error_class",
]


def environment() -> celpy.Environment:
    """A cel-python Environment that parses with ruleauth's (prebuilt) parser."""
    cel_parser.install()
    return celpy.Environment(runner_class=_Runner)


class _Evaluator(Evaluator):
    """cel-python's evaluator with CEL's `has()`: cel-python answers false whenever `e.f` fails,
    so `!has(e.f)` allowed where `e` itself is an error (claims CEL cannot represent, a
    missing parent field) or not a map. Here an error stays an error, and only a map has fields."""

    def macro_has_eval(self, exprlist: Any) -> Any:
        node = exprlist.children[0] if exprlist.children else None
        while node is not None and getattr(node, "data", None) != "member_dot" and len(node.children) == 1:
            node = node.children[0]
        if node is None or getattr(node, "data", None) != "member_dot":
            return super().macro_has_eval(exprlist)
        target = self.visit(node.children[0])
        if isinstance(target, CELEvalError):
            return target
        if isinstance(target, dict):
            return celtypes.BoolType(node.children[1].value in target)
        return CELEvalError("no such overload", TypeError, ())


class _Runner(celpy.InterpretedRunner):
    def evaluate(self, context: Any) -> Any:
        return _Evaluator(ast=self.ast, activation=self.new_activation()).evaluate(context)


def _string_result(plain: Callable[..., str]) -> Callable[..., celtypes.StringType]:
    return lambda *args: celtypes.StringType(plain(*args))


def _split(value: Any, separator: Any) -> celtypes.ListType:
    return celtypes.ListType([celtypes.StringType(p) for p in cel_functions.split_plain(value, separator)])


# -- CEL's numbers, equality and ordering (cel/numeric.py), in place of cel-python's -------
# cel-python's own operators depart from CEL: `1 == 1.0` and `1 == 'a'` are errors, `true == 1`
# is true (its bool is an int), a double divided by zero is +inf (also 0.0/0.0 and 1.0/-0.0),
# `dyn(9223372036854775808.0) > 9223372036854775807` compares exactly, `2.0 * 3` multiplies,
# int(-9223372036854775808.0) and int('1_0') convert. Overridden here, these answer as the
# compiled closures and cel-expr-python do.

_INT, _UINT, _DOUBLE = celtypes.IntType, celtypes.UintType, celtypes.DoubleType
_NUMBER_TYPES = (_INT, _UINT, _DOUBLE)
_ORDERED_KINDS = ("string", "bool", "bytes", "timestamp", "duration")


def _kind(value: Any) -> str:
    """The CEL type family of a cel-python value (or of a plain value its operators return)."""
    if isinstance(value, (bool, celtypes.BoolType)):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bytes):
        return "bytes"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "map"
    if value is None or isinstance(value, celtypes.NullType):
        return "null"
    if isinstance(value, datetime.datetime):
        return "timestamp"
    if isinstance(value, datetime.timedelta):
        return "duration"
    if isinstance(value, type):
        return "type"
    return type(value).__name__


def _number_class(value: Any) -> type:
    """IntType, UintType or DoubleType (plain int and float as cel-python means them)."""
    if isinstance(value, _NUMBER_TYPES):
        return type(value) if type(value) in _NUMBER_TYPES else next(t for t in _NUMBER_TYPES if isinstance(value, t))
    return _DOUBLE if isinstance(value, float) else _INT


def cel_equal(left: Any, right: Any) -> bool:
    """CEL equality: numbers by value, other values of different types unequal, lists and
    maps item by item (map keys by value: `{1: 'a'} == {1u: 'a'}`)."""
    kind = _kind(left)
    if kind != _kind(right):
        return False
    if kind == "number":
        a, b = cel_numbers.comparable(left, right)
        return bool(a == b)
    if kind == "list":
        return len(left) == len(right) and all(cel_equal(x, y) for x, y in zip(left, right, strict=True))
    if kind == "map":
        if len(left) != len(right):
            return False
        keyed = {_key(k): v for k, v in right.items()}
        for key, value in left.items():
            found = keyed.get(_key(key), _ABSENT)
            if found is _ABSENT or not cel_equal(value, found):
                return False
        return True
    if kind == "null":
        return True
    if kind == "string":
        return str(left) == str(right)
    if kind == "bool":
        return bool(left) == bool(right)
    if kind == "bytes":
        return bytes(left) == bytes(right)
    return bool(left == right)  # timestamps, durations, types: cel-python's own


_ABSENT = object()


def _key(value: Any) -> tuple[str, Any]:
    """A map key by CEL value: int and uint keys (and an integral double) of one value are one key."""
    kind = _kind(value)
    if kind == "number":
        if isinstance(value, float):
            number = float(value)  # DoubleType's own == refuses an int
            if not math.isfinite(number) or number != int(number):
                return ("double", number)
            return ("number", int(number))
        return ("number", int(value))
    if kind == "string":
        return (kind, str(value))
    if kind == "bool":
        return (kind, bool(value))
    return (kind, value)


def _relation(test: Callable[[Any, Any], bool]) -> Callable[[Any, Any], Any]:
    def relation(left: Any, right: Any) -> Any:
        if isinstance(left, CELEvalError):
            return left
        if isinstance(right, CELEvalError):
            return right
        return celtypes.BoolType(test(left, right))

    return relation


def _ordering(compare: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def ordered(left: Any, right: Any) -> bool:
        kind = _kind(left)
        if kind != _kind(right):
            raise TypeError("no such overload")
        if kind == "number":
            return compare(*cel_numbers.comparable(left, right))
        if kind not in _ORDERED_KINDS:
            raise TypeError("no such overload")
        return compare(left, right)

    return ordered


def _contained(item: Any, container: Any) -> bool:
    kind = _kind(container)
    if kind == "list":
        return any(cel_equal(item, value) for value in container)
    if kind == "map":
        key = _key(item)
        return any(_key(k) == key for k in container)
    raise TypeError("no such overload")


def _index(container: Any, key: Any) -> Any:
    """`container[key]` with CEL's numbers: a list takes any whole number (`[7][dyn(0.0)]`),
    never a negative one (cel-python counts from the end); a map finds a numeric key by value
    (`{1u: 'a'}[1.0]`)."""
    kind = _kind(container)
    if kind == "list":
        if _kind(key) != "number":
            raise TypeError("no such overload")
        position = cel_numbers.list_position(float(key) if _number_class(key) is _DOUBLE else int(key))
        if not 0 <= position < len(container):
            raise IndexError("list index out of range")
        return container[position]
    if kind == "map":
        if _kind(key) not in _KEY_KINDS:
            raise TypeError("no such overload")
        wanted = _key(key)
        for candidate, value in container.items():
            if _kind(candidate) not in _KEY_KINDS or isinstance(candidate, float):
                raise TypeError("unsupported map key type")  # CEL's keys: int, uint, bool, string
            if _key(candidate) == wanted:
                return value
        raise KeyError("no such key")
    return operator.getitem(container, key)


_KEY_KINDS = ("number", "string", "bool")


def _arithmetic(name: str, plain: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """CEL's arithmetic on numbers (one numeric type on both sides: cel-python would add an int
    to a double) and none on booleans (`true + true`); cel-python's own operator for the rest
    (strings, bytes, lists, timestamps and durations)."""

    def arithmetic(left: Any, right: Any) -> Any:
        if isinstance(left, CELEvalError):
            return left
        if isinstance(right, CELEvalError):
            return right
        kinds = (_kind(left), _kind(right))
        if "bool" in kinds:
            raise TypeError("no such overload")
        if "number" in kinds:
            number = _number_class(left)
            if kinds != ("number", "number") or number is not _number_class(right):
                raise TypeError("no such overload")
            return _numeric(name, number, number(left), number(right), plain)
        return plain(left, right)

    return arithmetic


def _numeric(name: str, number: type, left: Any, right: Any, plain: Callable[[Any, Any], Any]) -> Any:
    if number is _DOUBLE:
        if name == "_%_":
            raise TypeError("no such overload")
        if name == "_/_":
            return _DOUBLE(cel_numbers.divide_doubles(float(left), float(right)))
        return plain(left, right)
    check = cel_numbers.int64 if number is _INT else cel_numbers.uint64
    if name == "_/_":
        return number(check(cel_numbers.divide_ints(int(left), int(right))))
    if name == "_%_":
        return number(check(cel_numbers.modulo_ints(int(left), int(right))))
    return number(check(plain(int(left), int(right))))


def _conversion(target: type, plain: dict[str, Callable[[Any], Any]]) -> Callable[[Any], Any]:
    """A conversion function from the plain conversions of each source type (cel_numbers')."""
    number_kinds = {_INT: "int", _UINT: "uint", _DOUBLE: "double"}

    def convert(value: Any) -> Any:
        kind = _kind(value)
        source = number_kinds[_number_class(value)] if kind == "number" else kind
        if source not in plain:
            raise TypeError("no such overload")  # int(true): CEL has no such conversion
        return target(plain[source](value))

    return convert


_to_int = _conversion(
    _INT,
    {
        "int": int,
        "uint": lambda v: cel_numbers.uint_to_int(int(v)),
        "double": lambda v: cel_numbers.double_to_int(float(v)),
        "string": cel_numbers.string_to_int,
        "timestamp": lambda v: v,  # cel-python's own: seconds since the epoch
    },
)
_to_uint = _conversion(
    _UINT,
    {
        "uint": int,
        "int": lambda v: cel_numbers.int_to_uint(int(v)),
        "double": lambda v: cel_numbers.double_to_uint(float(v)),
        "string": cel_numbers.string_to_uint,
    },
)
_to_double = _conversion(
    _DOUBLE,
    {
        "double": float,
        "int": float,
        "uint": float,
        "string": cel_numbers.string_to_double,
    },
)


_OPERATORS: dict[str, Callable[..., Any]] = {
    "_==_": _relation(cel_equal),
    "_!=_": _relation(lambda left, right: not cel_equal(left, right)),
    "_<_": _relation(_ordering(operator.lt)),
    "_<=_": _relation(_ordering(operator.le)),
    "_>_": _relation(_ordering(operator.gt)),
    "_>=_": _relation(_ordering(operator.ge)),
    "_in_": _relation(_contained),
    "_[_]": _index,
    **{name: _arithmetic(name, base_functions[name]) for name in ("_+_", "_-_", "_*_", "_/_", "_%_")},
    "int": _to_int,
    "uint": _to_uint,
    "double": _to_double,
}


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
    return cast(celtypes.IntType, function_getMilliseconds(value, *zone))


# The strings-extension functions, returning cel-python's own value types, CEL's operators
# and numeric conversions, and the functions whose cel-python forms answer otherwise than CEL.
FUNCTIONS: dict[str, Callable[..., Any]] = {
    **_OPERATORS,
    "string": _string,
    "getMilliseconds": _get_milliseconds,
    "split": _split,
    "join": lambda values, separator=celtypes.StringType(""): celtypes.StringType(
        cel_functions.join_plain(values, separator)
    ),
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
            result[name] = celtypes.MapType(
                {
                    celtypes.StringType(k): _request_field(v) if isinstance(v, Mapping) else json_to_cel(v)
                    for k, v in value.items()
                }
            )
        elif name == "auth" and isinstance(value, Mapping):
            result[name] = string_map(value)
        elif isinstance(value, datetime.datetime):
            result[name] = value if isinstance(value, celtypes.TimestampType) else celtypes.TimestampType(value)
        else:
            result[name] = json_to_cel(value)
    return result


def _request_field(values: Mapping[str, Any]) -> celtypes.MapType:
    """A map of the request: of strings (headers, query, ...), or request.client_cert's strings,
    integers and lists of strings."""
    if all(type(v) is str for v in values.values()):
        return string_map(values)
    return celtypes.MapType({celtypes.StringType(k): json_to_cel(v) for k, v in values.items()})


def string_map(values: Mapping[str, str]) -> celtypes.MapType:
    return celtypes.MapType({celtypes.StringType(k): celtypes.StringType(v) for k, v in values.items()})


def error_class(exc: Exception) -> str:
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
