"""CEL's numbers on Python values: ranges, cross-type comparison, division and conversions.

One definition for both ways cel-python rules run: compiled closures (cel/closures.py,
plain int and float) and cel-python's interpreter (cel/interpreter.py, whose IntType,
UintType and DoubleType are int and float subclasses), so that they answer alike and
as cel-expr-python (Google's cel-cpp) does. The rules, with their sources, are in
docs/cel-numbers.md:

- int is 64-bit signed, uint 64-bit unsigned; a result or conversion outside the range
  is an error (ValueError), as is an integer division or modulus by zero
  (ZeroDivisionError).
- int, uint and double compare with each other by value. A comparison with a double is
  made in doubles (the other number rounded to the nearest double), as the conformance
  suite requires: `dyn(9223372036854775807) < 9223372036854775808.0` is false.
  NaN is equal to nothing, itself included, and neither less nor greater than anything.
- double arithmetic is IEEE 754: `1.0 / 0.0` is +inf, `0.0 / 0.0` NaN.
"""

from __future__ import annotations

import math
import re
from typing import Any

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
UINT64_MAX = 2**64 - 1
# The doubles just outside each range: a double converts only when strictly inside them
# (2^63 - 1 and 2^64 - 1 are not doubles; the nearest double is the bound itself).
_INT_BOUND, _UINT_BOUND = 2.0**63, 2.0**64

_DOUBLE_TEXT = re.compile(
    r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
    r"|[+-]?(?:nan|inf|infinity)",
    re.IGNORECASE,
)
_HEX_DOUBLE_TEXT = re.compile(r"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?[0-9]+)?")
_ASCII_SPACE = " \t\n\v\f\r"


def int64(value: int) -> int:
    if value < INT64_MIN or value > INT64_MAX:
        raise ValueError("int overflow")
    return value


def uint64(value: int) -> int:
    if value < 0 or value > UINT64_MAX:
        raise ValueError("uint overflow")
    return value


def comparable(left: Any, right: Any) -> tuple[Any, Any]:
    """Two CEL numbers (int, uint or double, of any Python numeric class but bool) as plain
    Python values whose own `==`, `<`, ... give CEL's answer: both floats when either is a
    double, else both ints (compared exactly: int64 and uint64 values are all ints)."""
    if isinstance(left, float) or isinstance(right, float):
        return float(left), float(right)
    return int(left), int(right)


def divide_doubles(left: float, right: float) -> float:
    if right == 0.0:  # -0.0 too: its sign counts, as IEEE 754 says
        if left == 0.0 or left != left:
            return math.nan
        return math.copysign(math.inf, left) * math.copysign(1.0, right)
    return left / right


def divide_ints(left: int, right: int) -> int:
    """int or uint division, truncated toward zero; the caller checks the result's range."""
    if right == 0:
        raise ZeroDivisionError("divide by zero")
    quotient = abs(left) // abs(right)
    return quotient if (left < 0) == (right < 0) else -quotient


def modulo_ints(left: int, right: int) -> int:
    """The remainder has the sign of the dividend (as in C and Go). INT64_MIN % -1 is an
    overflow, as INT64_MIN / -1 is: cel-cpp and cel-go both report it."""
    if right == 0:
        raise ZeroDivisionError("modulus by zero")
    if right == -1 and left == INT64_MIN:
        raise ValueError("int overflow")
    remainder = abs(left) % abs(right)
    return -remainder if left < 0 else remainder


def list_position(value: int | float) -> int:
    """A number used as a list index: an int or uint as it is, a double only when it holds a
    whole number (cel-spec lists/index/zero_based_double: `[7, 8, 9][dyn(0.0)]` is 7)."""
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("a list index must be a whole number")
        return int(value)
    return int(value)


def double_to_int(value: float) -> int:
    """Truncated toward zero; NaN, ±inf and anything outside (-2^63, 2^63) is a range error
    (cel-spec conversions/double_int_min_range: -9223372036854775808.0 is out of range)."""
    if not -_INT_BOUND < value < _INT_BOUND:  # false for NaN too
        raise ValueError("double out of int range")
    return int(value)


def double_to_uint(value: float) -> int:
    if not 0.0 <= value < _UINT_BOUND:  # -0.5 too: cel-cpp and cel-go refuse any negative
        raise ValueError("double out of uint range")
    return int(value)


def int_to_uint(value: int) -> int:
    if value < 0:
        raise ValueError("int out of uint range")
    return int(value)


def uint_to_int(value: int) -> int:
    if value > INT64_MAX:
        raise ValueError("uint out of int range")
    return int(value)


def string_to_int(text: str) -> int:
    """Decimal digits with an optional sign, within int64. ASCII white space around the
    number is allowed, as cel-cpp allows it; Python's extras (`1_000`, non-ASCII digits)
    are not."""
    text = str(text)
    if text.isascii():  # then isdigit() means 0-9 only
        text = text.strip(_ASCII_SPACE)
        digits = text[1:] if text[:1] in ("+", "-") else text
        if digits.isdigit():
            return int64(int(text))
    raise ValueError("invalid int")


def string_to_uint(text: str) -> int:
    text = str(text)
    if text.isascii():
        text = text.strip(_ASCII_SPACE)
        digits = text[1:] if text[:1] == "+" else text
        if digits.isdigit():
            return uint64(int(text))
    raise ValueError("invalid uint")


def string_to_double(text: str) -> float:
    """A decimal or hexadecimal floating-point number, `nan`, `inf` or `infinity` (any case,
    optional sign), as cel-cpp reads them; out of range becomes ±inf or 0, as in IEEE."""
    text = str(text).strip(_ASCII_SPACE)
    if _DOUBLE_TEXT.fullmatch(text):
        return float(text)
    if _HEX_DOUBLE_TEXT.fullmatch(text):
        return float.fromhex(text)
    raise ValueError("invalid double")


def json_integers_fit(value: Any) -> bool:
    """Whether every integer in a JSON value (claims) is an int64: CEL has no other JSON
    integer. Floats, strings and booleans always fit. The value is already bounded in depth
    and list length (jwt/verifier.py claims_problem)."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is int:
            if item < INT64_MIN or item > INT64_MAX:
                return False
        elif kind is dict:
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
        elif isinstance(item, int) and not isinstance(item, bool):
            if item < INT64_MIN or item > INT64_MAX:
                return False
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return True
