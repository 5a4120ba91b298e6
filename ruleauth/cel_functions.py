"""Functions rules can call beyond cel-python's core (the strings extension's common ones).

Each works as a function or a method: `split(claims.scope, ' ')` or `claims.scope.split(' ')`.
Arguments of the wrong type raise TypeError, which the evaluator turns into a
`rule_error` deny like any other evaluation error.
"""

from __future__ import annotations

from typing import Any, Callable

from celpy import celtypes

MAX_SPLIT_PARTS = 256


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} expects a string")
    return str(value)


def split(value: Any, separator: Any) -> celtypes.ListType:
    text, sep = _text(value, "split"), _text(separator, "split")
    if sep == "":
        raise TypeError("split: empty separator")
    parts = text.split(sep, MAX_SPLIT_PARTS)
    return celtypes.ListType([celtypes.StringType(p) for p in parts[:MAX_SPLIT_PARTS]])


def join(values: Any, separator: Any = celtypes.StringType("")) -> celtypes.StringType:
    if not isinstance(values, list):
        raise TypeError("join expects a list of strings")
    return celtypes.StringType(_text(separator, "join").join(_text(v, "join") for v in values))


def lower_ascii(value: Any) -> celtypes.StringType:
    text = _text(value, "lowerAscii")
    return celtypes.StringType(text.translate(_LOWER))


def upper_ascii(value: Any) -> celtypes.StringType:
    text = _text(value, "upperAscii")
    return celtypes.StringType(text.translate(_UPPER))


def trim(value: Any) -> celtypes.StringType:
    return celtypes.StringType(_text(value, "trim").strip())


_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")

FUNCTIONS: dict[str, Callable[..., Any]] = {
    "split": split,
    "join": join,
    "lowerAscii": lower_ascii,
    "upperAscii": upper_ascii,
    "trim": trim,
}
