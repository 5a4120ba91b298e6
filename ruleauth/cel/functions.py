"""Functions rules can call beyond CEL's core (the strings extension's common ones).

Each works as a function or a method: `split(claims.scope, ' ')` or `claims.scope.split(' ')`.
Arguments of the wrong type raise TypeError, which the evaluator turns into a
`rule_error` deny like any other evaluation error.

One plain-Python implementation serves every engine, so `split('')`, the part cap and
ASCII-only case mapping behave the same on each: cel-cpp's own strings extension splits
on an empty separator and has no cap, which would make one rule mean two things.
`PLAIN_FUNCTIONS` is what compiled closures call and the cel-expr-python engine registers;
celpy_values.FUNCTIONS wraps them for cel-python's interpreter (its own value types back).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

MAX_SPLIT_PARTS = 256


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} expects a string")
    return str(value)


def split_plain(value: Any, separator: Any) -> list[str]:
    text, sep = _text(value, "split"), _text(separator, "split")
    if sep == "":
        raise TypeError("split: empty separator")
    return text.split(sep, MAX_SPLIT_PARTS)[:MAX_SPLIT_PARTS]


def join_plain(values: Any, separator: Any = "") -> str:
    if not isinstance(values, list):
        raise TypeError("join expects a list of strings")
    return _text(separator, "join").join(_text(v, "join") for v in values)


def lower_ascii_plain(value: Any) -> str:
    return _text(value, "lowerAscii").translate(_LOWER)


def upper_ascii_plain(value: Any) -> str:
    return _text(value, "upperAscii").translate(_UPPER)


def trim_plain(value: Any) -> str:
    return _text(value, "trim").strip()


_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")

PLAIN_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "split": split_plain,
    "join": join_plain,
    "lowerAscii": lower_ascii_plain,
    "upperAscii": upper_ascii_plain,
    "trim": trim_plain,
}
