"""A reader for the subset of protobuf text format that cel-spec's conformance files use.

No schema and no protobuf dependency: a message is read as a `Message`, an ordered list of
(field name, value) pairs; a value is a `Message`, a `str` (string fields, after escapes; bytes
fields read as text too, see `bytes_of`), an `int`, a `float`, or an identifier (`Ident`: enum
names, `true`, `inf`). What the files use, and nothing more:

- `name: value`, `name { ... }`, `name: { ... }`, `name < ... >`, `name: [v, v]` (repeated);
  fields separated by whitespace, `,` or `;`; `#` comments.
- Extension and Any fields, `[type.googleapis.com/google.protobuf.Duration] { ... }`: the
  name is the bracketed text.
- Strings in single or double quotes, adjacent strings concatenated, with C escapes
  (`\\n \\t \\" \\' \\\\ \\xHH`, octal `\\NNN`, `\\uHHHH`, `\\UHHHHHHHH`), as protobuf's
  text format defines them. Octal and `\\x` escapes stand for bytes: a string is decoded
  from the bytes as UTF-8 (`surrogateescape` keeps invalid bytes for bytes fields).
- Numbers: decimal, hex `0x`, floats with exponent, `-`, `inf`, `nan`.

Anything else raises `SyntaxError` with the line: the tests then fail instead of misreading.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any


class Ident(str):
    """A bare identifier value (an enum name, `true`, `inf`)."""


class Message(list):
    """Ordered (name, value) pairs of one message."""

    def get(self, name: str, default: Any = None) -> Any:
        for key, value in self:
            if key == name:
                return value
        return default

    def all(self, name: str) -> list[Any]:
        return [value for key, value in self if key == name]

    def has(self, name: str) -> bool:
        return any(key == name for key, _ in self)


_TOKEN = re.compile(
    r"""
    (?P<space>[ \t\r\n,;]+|\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<number>-?(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)[fFuU]?(?![\w.]))
  | (?P<ident>-?[A-Za-z_][\w]*)
  | (?P<bracketed>\[[\w./-]+\])
  | (?P<punct>[{}<>:\[\]])
""",
    re.VERBOSE,
)

_SIMPLE_ESCAPES = {
    "n": b"\n",
    "t": b"\t",
    "r": b"\r",
    "a": b"\a",
    "b": b"\b",
    "f": b"\f",
    "v": b"\v",
    "\\": b"\\",
    "'": b"'",
    '"': b'"',
    "?": b"?",
}


def _tokens(text: str) -> Iterator[tuple[str, str, int]]:
    position, line = 0, 1
    while position < len(text):
        found = _TOKEN.match(text, position)
        if found is None:
            raise SyntaxError(f"textproto line {line}: cannot read {text[position : position + 20]!r}")
        kind = found.lastgroup
        if kind != "space":
            yield kind, found.group(), line
        line += found.group().count("\n")
        position = found.end()


def unquote(literal: str, line: int = 0) -> bytes:
    """The bytes a quoted text-format string stands for."""
    body, out, i = literal[1:-1], bytearray(), 0
    while i < len(body):
        char = body[i]
        if char != "\\":
            out += char.encode("utf-8")
            i += 1
            continue
        code = body[i + 1]
        if code in _SIMPLE_ESCAPES:
            out += _SIMPLE_ESCAPES[code]
            i += 2
        elif code in "01234567":
            digits = re.match(r"[0-7]{1,3}", body[i + 1 :]).group()
            out.append(int(digits, 8))
            i += 1 + len(digits)
        elif code in "xX":
            digits = re.match(r"[0-9a-fA-F]{1,2}", body[i + 2 :]).group()
            out.append(int(digits, 16))
            i += 2 + len(digits)
        elif code in "uU":
            width = 4 if code == "u" else 8
            digits = body[i + 2 : i + 2 + width]
            if not re.fullmatch(r"[0-9a-fA-F]{%d}" % width, digits):
                raise SyntaxError(f"textproto line {line}: bad \\{code} escape")
            out += chr(int(digits, 16)).encode("utf-8", "surrogatepass")
            i += 2 + width
        else:
            raise SyntaxError(f"textproto line {line}: unknown escape \\{code}")
    return bytes(out)


class _Reader:
    def __init__(self, text: str):
        self.tokens = list(_tokens(text))
        self.at = 0

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self) -> tuple[str, str, int]:
        token = self.peek()
        if token is None:
            raise SyntaxError("textproto: unexpected end")
        self.at += 1
        return token

    def expect(self, text: str) -> None:
        kind, value, line = self.take()
        if value != text:
            raise SyntaxError(f"textproto line {line}: expected {text!r}, found {value!r}")

    def message(self, close: str | None) -> Message:
        fields = Message()
        while True:
            token = self.peek()
            if token is None:
                if close is not None:
                    raise SyntaxError("textproto: unclosed message")
                return fields
            kind, value, line = token
            if close is not None and value == close:
                self.take()
                return fields
            if kind not in ("ident", "bracketed"):
                raise SyntaxError(f"textproto line {line}: expected a field name, found {value!r}")
            self.take()
            name = value[1:-1] if kind == "bracketed" else value
            colon = self.peek() is not None and self.peek()[1] == ":"
            if colon:
                self.take()
            following = self.peek()
            if following is not None and following[1] == "[" and colon:
                self.take()
                while self.peek()[1] != "]":
                    fields.append((name, self.value()))
                self.take()
            else:
                if not colon and (following is None or following[1] not in "{<"):
                    raise SyntaxError(f"textproto line {line}: field {name} needs ':' before a scalar")
                fields.append((name, self.value()))

    def value(self) -> Any:
        kind, value, line = self.take()
        if value in "{<" and kind == "punct":
            return self.message("}" if value == "{" else ">")
        if kind == "string":
            data = unquote(value, line)
            while self.peek() is not None and self.peek()[0] == "string":  # adjacent: concatenated
                data += unquote(self.take()[1], line)
            return data.decode("utf-8", "surrogateescape")
        if kind == "number":
            text = value.rstrip("fFuU")
            if re.fullmatch(r"-?0[xX][0-9a-fA-F]+", text):
                return int(text, 16)
            if re.fullmatch(r"-?\d+", text) and value[-1] not in "fF":
                return int(text)
            return float(text)
        if kind == "ident":
            lowered = value.lower().lstrip("-")
            if lowered in ("inf", "infinity", "nan"):
                return float(value)
            return Ident(value)
        raise SyntaxError(f"textproto line {line}: unexpected {value!r}")


def parse(text: str) -> Message:
    return _Reader(text).message(None)


def bytes_of(text: str) -> bytes:
    """A bytes field's value: the reader keeps it as text decoded with `surrogateescape`."""
    return text.encode("utf-8", "surrogateescape")
