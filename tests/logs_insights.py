"""A small CloudWatch Logs Insights: JSON field discovery and the commands README's queries use.

Field discovery follows docs/logging.md "CloudWatch Logs Insights": a log event that is one
JSON object gets its fields, nested objects flattened with `.` (array elements by index), at
most the first 200; every event has `@message` (the raw text) and `@timestamp`. A field an
event does not have is null: a comparison with it is false, and `stats … by` groups it as null.

Commands: `filter` (`=`, `!=`, `<`, `<=`, `>`, `>=`, `in [...]`, `not in [...]`, `and`, `or`,
`not`, parentheses), `stats count(*) [as name] by f, …, bin(Nm)`, `sort f [asc|desc]`, `limit N`,
`fields f, …`; `#` starts a comment. Anything else raises, so a README query this does not
understand fails its test rather than passing vacuously.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

MAX_FIELDS = 200


def discover(message: str, timestamp: float = 0.0) -> dict[str, Any]:
    """The fields Logs Insights finds in one log event."""
    fields: dict[str, Any] = {"@message": message, "@timestamp": timestamp}
    try:
        parsed = json.loads(message)
    except ValueError:
        return fields
    if not isinstance(parsed, dict):
        return fields
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else key, item)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(f"{prefix}.{index}", item)
        elif len(flat) < MAX_FIELDS:
            flat[prefix] = value

    walk("", parsed)
    fields.update(flat)
    return fields


TOKEN = re.compile(
    r"""\s*(?:(?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(?P<number>-?\d+(?:\.\d+)?)|"""
    r"""(?P<op>!=|<=|>=|=|<|>|\(|\)|\[|\]|,)|(?P<word>[@A-Za-z_][\w.@]*))"""
)


def tokens(text: str) -> list[tuple[str, Any]]:
    found, position = [], 0
    text = text.strip()
    while position < len(text):
        match = TOKEN.match(text, position)
        if not match or match.end() == position:
            raise ValueError(f"cannot read {text[position:]!r}")
        position = match.end()
        kind = match.lastgroup
        value = match.group(kind)
        if kind == "string":
            value = json.loads('"' + value[1:-1].replace('"', '\\"') + '"') if value[0] == "'" else json.loads(value)
        elif kind == "number":
            value = float(value)
        found.append((kind, value))
    return found


class Filter:
    """A filter expression, parsed by recursive descent."""

    def __init__(self, text: str):
        self.items = tokens(text)
        self.at = 0
        self.tree = self.disjunction()
        if self.at != len(self.items):
            raise ValueError(f"unexpected {self.items[self.at]!r} in filter {text!r}")

    def peek(self) -> tuple[str, Any] | None:
        return self.items[self.at] if self.at < len(self.items) else None

    def take(self) -> tuple[str, Any]:
        item = self.items[self.at]
        self.at += 1
        return item

    def word(self, *words: str) -> bool:
        item = self.peek()
        if item and item[0] == "word" and item[1].lower() in words:
            self.at += 1
            return True
        return False

    def disjunction(self) -> Any:
        node = self.conjunction()
        while self.word("or"):
            node = ("or", node, self.conjunction())
        return node

    def conjunction(self) -> Any:
        node = self.negation()
        while self.word("and"):
            node = ("and", node, self.negation())
        return node

    def negation(self) -> Any:
        if self.word("not"):
            return ("not", self.negation())
        return self.comparison()

    def comparison(self) -> Any:
        if self.peek() == ("op", "("):
            self.take()
            node = self.disjunction()
            assert self.take() == ("op", ")")
            return node
        left = self.operand()
        if self.word("not"):
            assert self.word("in")
            return ("not", ("in", left, self.array()))
        if self.word("in"):
            return ("in", left, self.array())
        kind, op = self.take()
        if kind != "op" or op not in ("=", "!=", "<", "<=", ">", ">="):
            raise ValueError(f"expected a comparison, got {op!r}")
        return (op, left, self.operand())

    def array(self) -> Any:
        assert self.take() == ("op", "[")
        values = [self.operand()]
        while self.peek() == ("op", ","):
            self.take()
            values.append(self.operand())
        assert self.take() == ("op", "]")
        return ("array", values)

    def operand(self) -> Any:
        kind, value = self.take()
        if kind == "word":
            return ("field", value)
        if kind in ("string", "number"):
            return ("literal", value)
        raise ValueError(f"unexpected {value!r}")

    def __call__(self, event: dict[str, Any]) -> bool:
        return bool(self.evaluate(self.tree, event))

    def evaluate(self, node: Any, event: dict[str, Any]) -> Any:
        kind = node[0]
        if kind == "field":
            return event.get(node[1])
        if kind == "literal":
            return node[1]
        if kind == "array":
            return [self.evaluate(n, event) for n in node[1]]
        if kind == "and":
            return self.evaluate(node[1], event) and self.evaluate(node[2], event)
        if kind == "or":
            return self.evaluate(node[1], event) or self.evaluate(node[2], event)
        if kind == "not":
            return not self.evaluate(node[1], event)
        left, right = self.evaluate(node[1], event), self.evaluate(node[2], event)
        if left is None:
            return False
        if kind == "in":
            return left in right
        if kind == "=":
            return left == right
        if kind == "!=":
            return left != right
        if isinstance(left, str) != isinstance(right, str):
            return False
        return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[kind]


def names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def run(query: str, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows `query` gives over `events` (each a `discover` result)."""
    lines = [line for line in query.splitlines() if not line.lstrip().startswith("#")]
    commands = [part.strip() for part in " ".join(lines).split("|") if part.strip()]
    rows = list(events)
    for command in commands:
        verb, _, rest = command.partition(" ")
        if verb == "filter":
            keep = Filter(rest)
            rows = [row for row in rows if keep(row)]
        elif verb == "fields":
            rows = [{name: row.get(name) for name in names(rest)} for row in rows]
        elif verb == "sort":
            field, *order = rest.split()
            descending = bool(order) and order[0] == "desc"
            rows.sort(key=lambda row: (row.get(field) is None, row.get(field)), reverse=descending)
        elif verb == "limit":
            rows = rows[: int(rest)]
        elif verb == "stats":
            match = re.fullmatch(r"count\(\*\)(?:\s+as\s+(\w+))?\s+by\s+(.+)", rest)
            if not match:
                raise ValueError(f"unsupported stats {rest!r}")
            label = match.group(1) or "count(*)"
            keys = names(match.group(2))
            counts: Counter[tuple[Any, ...]] = Counter()
            for row in rows:
                counts[tuple(bin_of(key, row) for key in keys)] += 1
            rows = [{**dict(zip(keys, group, strict=True)), label: n} for group, n in counts.items()]
        else:
            raise ValueError(f"unsupported command {command!r}")
    return rows


def bin_of(key: str, row: dict[str, Any]) -> Any:
    match = re.fullmatch(r"bin\((\d+)m\)", key)
    if match:
        width = int(match.group(1)) * 60
        return row["@timestamp"] // width * width
    return row.get(key)
