"""YAML reading that refuses YAML's silent surprises.

PyYAML's safe loader still accepts duplicate keys (last wins), anchors and
aliases (alias bombs), merge keys, several documents and explicit tags, and it
reads `on`, `no`, `0777` and `1:30` as booleans and numbers. A rules file is a
security policy, so each of these is a load error with its position; callers
then read the composed node tree, which keeps every value's line and column.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import cast

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

from ruleauth.errors import ERROR, WARNING, Problem
from ruleauth.model import SourcePos

MAX_FILE_BYTES = 1024 * 1024

STR = "tag:yaml.org,2002:str"
BOOL = "tag:yaml.org,2002:bool"
INT = "tag:yaml.org,2002:int"
NULL = "tag:yaml.org,2002:null"
MERGE = "tag:yaml.org,2002:merge"


class _Refused(Exception):
    def __init__(self, message: str, mark: yaml.Mark | None):
        super().__init__(message)
        self.mark = mark


class _Refusals:
    """The composer's checks: anchors, aliases and tags are refused as they are met."""

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        event = self.peek_event()  # type: ignore[attr-defined]
        if isinstance(event, yaml.AliasEvent):
            raise _Refused(
                f"aliases (*{event.anchor}) are not allowed: write the value out in full",
                cast("yaml.Mark | None", event.start_mark),  # the pure-Python parser's marks
            )
        if getattr(event, "anchor", None):
            raise _Refused(
                f"anchors (&{event.anchor}) are not allowed: write each value out in full",
                event.start_mark,
            )
        tag = getattr(event, "tag", None)
        if tag is not None and tag != "!":
            raise _Refused(f"YAML tags ({tag}) are not allowed in a rules file", event.start_mark)
        return Composer.compose_node(self, parent, index)  # type: ignore[arg-type]

    def compose_scalar_node(self, anchor):  # type: ignore[no-untyped-def]
        node = Composer.compose_scalar_node(self, anchor)  # type: ignore[arg-type]
        if node.style == "":  # libyaml's spelling of "plain"; PyYAML's is None
            node.style = None
        return node


class _StrictLoader(_Refusals, yaml.SafeLoader):
    """Pure-Python scanning and parsing (PyYAML without libyaml)."""


if yaml.__with_libyaml__:
    from yaml._yaml import CParser

    class _FastStrictLoader(_Refusals, Composer, CParser, SafeConstructor, Resolver):
        """libyaml scans and parses (about ten times faster: this runs at every cold start);
        the Python composer, with the same checks, builds the nodes."""

        def __init__(self, stream: str):
            CParser.__init__(self, stream)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)

    _Loader: type = _FastStrictLoader
else:
    _Loader = _StrictLoader


@dataclass
class Source:
    """One rules file: its name, its lines and the problems found in it so far."""

    file: str
    text: str
    problems: list[Problem] = field(default_factory=list)

    def pos(self, node: Node) -> SourcePos:
        return SourcePos(self.file, node.start_mark.line + 1, node.start_mark.column + 1)

    def error(self, node: Node | None, message: str, rule: str | None = None) -> None:
        pos = self.pos(node) if node is not None else SourcePos(self.file, 1, 1)
        self.problems.append(Problem(message, pos, ERROR, rule))

    def warning(self, node: Node | None, message: str, rule: str | None = None) -> None:
        pos = self.pos(node) if node is not None else SourcePos(self.file, 1, 1)
        self.problems.append(Problem(message, pos, WARNING, rule))

    def line(self, number: int) -> str:
        lines = self.text.splitlines()
        return lines[number - 1] if 0 < number <= len(lines) else ""


def parse(source: Source) -> Node | None:
    """Compose one YAML document into nodes; problems go to `source.problems`."""
    if len(source.text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        source.error(None, f"file is larger than {MAX_FILE_BYTES // 1024} KiB")
        return None
    loader = _Loader(source.text)
    try:
        root: Node | None = loader.get_single_node()
    except _Refused as exc:
        source.problems.append(Problem(str(exc), _mark_pos(source, exc.mark)))
        return None
    except yaml.composer.ComposerError as exc:
        if "single document" in str(exc):
            mark = exc.problem_mark or exc.context_mark
            source.problems.append(
                Problem(
                    "several YAML documents (---) in one file: use one document per file",
                    _mark_pos(source, mark),
                )
            )
        else:
            source.problems.append(_yaml_problem(source, exc))
        return None
    except yaml.YAMLError as exc:
        source.problems.append(_yaml_problem(source, exc))
        return None
    finally:
        loader.dispose()
    if root is None:
        source.error(None, "the file is empty: a rules file starts with `version: 1`")
        return None
    _check_tree(source, root)
    return root


def _mark_pos(source: Source, mark: yaml.Mark | None) -> SourcePos:
    if mark is None:
        return SourcePos(source.file, 1, 1)
    return SourcePos(source.file, mark.line + 1, mark.column + 1)


def _yaml_problem(source: Source, exc: yaml.YAMLError) -> Problem:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    what = getattr(exc, "problem", None) or str(exc)
    if "\t" in source.line(mark.line + 1 if mark else 0) or "tab" in str(what):
        what = f"{what} (tabs cannot indent YAML: use spaces)"
    else:
        hint = _yaml_hint(source, str(what), str(getattr(exc, "context", None) or ""), mark, exc)
        what = f"{what}: {hint}" if hint else what
    return Problem(f"YAML syntax error: {what}", _mark_pos(source, mark))


# `key: value` on one line (a list item's dash allowed), the value's first character kept.
_KEY_VALUE = re.compile(r"^(?P<indent>\s*(?:-\s+)?)(?P<key>[^\s:#'\"\[{][^:#]*?):\s+(?P<value>\S.*?)\s*$")


def _yaml_hint(source: Source, problem: str, context: str, mark: yaml.Mark | None, exc: yaml.YAMLError) -> str:
    """The usual cause of a scanner or parser error, and its fix. PyYAML's pure-Python and
    libyaml parsers word the same error differently; both wordings are recognised."""
    if mark is None:
        return ""
    line = source.line(mark.line + 1)
    entry = _KEY_VALUE.match(line)
    key, value = (entry.group("key"), entry.group("value")) if entry else ("", "")
    if "block mapping" in context and ("expected key" in problem or "<block end>" in problem):
        if entry and value[0] in "'\"[{":
            return (
                f"the value of {key} starts with {value[0]} and goes on after the closing "
                f"{_CLOSING.get(value[0], value[0])}, but YAML takes only the quoted part as the value. "
                f"Quote the whole value: {key}: {_quoted(value)}"
            )
        return "a key is not lined up with the keys above it, or a value goes on after a closing quote"
    if "mapping values are not allowed" in problem:
        if entry and mark.column > len(entry.group("indent")) + len(key):
            return (
                "an unquoted value cannot contain ': ' (as in a ? b : c), which YAML reads as a key. "
                f"Quote the whole value: {key}: {_quoted(value)}"
            )
        return "this key is indented more than the keys above it: line it up with them"
    if "flow sequence" in context and ("','" in problem or "']'" in problem):
        items = _flow_items(source, getattr(exc, "context_mark", None))
        first = items[0] if items else "GET /projects/{id}"
        quoted = "[" + ", ".join("'" + item.replace("'", "''") + "'" for item in items or [first]) + "]"
        return (
            "a value in [ ] is a YAML flow list, whose items cannot hold an unquoted {, }, [, ] or ': '. "
            f"Quote each item: {quoted}, or write a block list, one item per line: - '{first}'"
        )
    if "flow mapping" in context and ("','" in problem or "'}'" in problem):
        return "a value that starts with { is a YAML flow mapping: quote the whole value"
    if "cannot start any token" in problem:
        char = line[mark.column : mark.column + 1]
        return f"a plain value cannot start with {char!r}: quote the value"
    if "unknown escape" in problem:
        return (
            "inside double quotes a backslash starts a YAML escape: use single quotes, "
            "a block scalar (|), or write \\\\ for one backslash"
        )
    if "end of stream" in problem and "quoted scalar" in context:
        start = getattr(exc, "context_mark", None)
        at = f" at line {start.line + 1}, column {start.column + 1}" if start is not None else ""
        return f"the quote opened{at} is never closed"
    return ""


_CLOSING = {"[": "]", "{": "}"}


def _flow_items(source: Source, start: yaml.Mark | None) -> list[str]:
    """The items a one-line flow list meant: the text from its `[` to its `]` (or the line's
    end), split at commas."""
    if start is None:
        return []
    text = source.line(start.line + 1)[start.column :]
    if not text.startswith("["):
        return []
    inner = text[1:].split("#", 1)[0].rstrip()
    inner = inner[:-1] if inner.endswith("]") else inner
    return [item.strip() for item in inner.split(",") if item.strip()]


def _quoted(value: str) -> str:
    """`value` as one YAML scalar holding exactly that text."""
    if '"' not in value and "\\" not in value:
        return f'"{value}"'
    return "'" + value.replace("'", "''") + "'"


def _check_tree(source: Source, root: Node) -> None:
    """Duplicate keys and merge keys, anywhere in the document (iteratively: depth is unbounded)."""
    stack: list[Node] = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, MappingNode):
            seen: dict[object, Node] = {}
            for key, value in node.value:
                if key.tag == MERGE:
                    source.error(key, "merge keys (<<) are not allowed: write each key out")
                    continue
                ident = (key.tag, key.value) if isinstance(key, ScalarNode) else id(key)
                if ident in seen:
                    first = seen[ident]
                    source.error(
                        key,
                        f"duplicate key {key.value!r} (first at line {first.start_mark.line + 1}): "
                        "YAML would silently keep only the last one",
                    )
                else:
                    seen[ident] = key
                stack.append(value)
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)


# --- typed reading of nodes -------------------------------------------------


def describe(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    kind = node.tag.rsplit(":", 1)[-1]
    return {
        "str": "a string",
        "int": "a number",
        "float": "a number",
        "bool": "a boolean",
        "null": "empty (null)",
        "timestamp": "a date",
    }.get(kind, kind)


def surprise_hint(node: ScalarNode) -> str:
    """Explain why YAML did not read a plain scalar as the string it looks like."""
    if node.tag == STR:
        return ""
    return f"YAML 1.1 reads {node.value!r} as {describe(node)}, not a string: quote it ('{node.value}')"


_YAML_TRUE = ("yes", "true", "on")


def cel_surprise_hint(node: ScalarNode) -> str:
    """Like `surprise_hint`, for a value that is CEL: quoting `no` gives the CEL name `no`,
    so the text needs CEL's own quotes inside YAML's."""
    if node.tag == STR:
        return ""
    text = f"for the text {node.value} write \"'{node.value}'\" (a CEL string inside YAML quotes)"
    if node.tag == BOOL:
        literal = "true" if node.value.lower() in _YAML_TRUE else "false"
        meant = f"for the boolean write '{literal}' (the CEL literal {literal})"
        return f"YAML 1.1 reads {node.value!r} as a boolean, and this value is a CEL expression: {text}; {meant}"
    if node.tag in (INT, "tag:yaml.org,2002:float"):
        return (
            f"YAML 1.1 reads {node.value!r} as a number, and this value is a CEL expression: {text}; "
            f"for a CEL number write it quoted ('{node.value}')"
        )
    return f"YAML 1.1 reads {node.value!r} as {describe(node)}, and this value is a CEL expression: {text}"


def as_string(source: Source, node: Node, what: str, rule: str | None = None, cel: bool = False) -> str | None:
    """A string value; `cel` marks a value that is a CEL expression, for the advice on YAML 1.1 values."""
    if isinstance(node, ScalarNode) and node.tag == STR:
        return str(node.value)
    if isinstance(node, ScalarNode) and node.style is None and node.tag != NULL:
        hint = cel_surprise_hint(node) if cel else surprise_hint(node)
        source.error(node, f"{what} must be a string; {hint}", rule)
    else:
        source.error(node, f"{what} must be a string, not {describe(node)}", rule)
    return None


def as_mapping(
    source: Source, node: Node, what: str, rule: str | None = None
) -> list[tuple[str, ScalarNode, Node]] | None:
    """A mapping's entries as (key, key node, value node); keys must be plain strings."""
    if not isinstance(node, MappingNode):
        source.error(node, f"{what} must be a mapping, not {describe(node)}", rule)
        return None
    entries = []
    for key, value in node.value:
        if not isinstance(key, ScalarNode):
            source.error(key, f"keys in {what} must be strings", rule)
            continue
        if key.tag != STR:
            source.error(key, f"key in {what}: {surprise_hint(key)}", rule)
            continue
        entries.append((key.value, key, value))
    return entries


def as_list(source: Source, node: Node, what: str, rule: str | None = None) -> list[Node] | None:
    if isinstance(node, SequenceNode):
        return list(node.value)
    source.error(node, f"{what} must be a list, not {describe(node)}", rule)
    return None


def string_list(source: Source, node: Node, what: str, rule: str | None = None) -> list[str]:
    """A string or a list of strings."""
    if isinstance(node, ScalarNode):
        one = as_string(source, node, what, rule)
        return [one] if one is not None else []
    items = as_list(source, node, what, rule) or []
    values = [as_string(source, item, f"each item of {what}", rule) for item in items]
    return [v for v in values if v is not None]


def check_keys(
    source: Source,
    entries: Iterable[tuple[str, ScalarNode, Node]],
    allowed: Iterable[str],
    where: str,
    rule: str | None = None,
) -> None:
    allowed = list(allowed)
    for key, key_node, _ in entries:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(allowed)}"
            source.error(key_node, f"unknown key {key!r} in {where}{hint}", rule)


def trailing_comment(source: Source, node: ScalarNode) -> bool:
    """True when a plain scalar is followed by `#` on its last line: YAML cut the text there."""
    if node.style is not None:
        return False
    rest = source.line(node.end_mark.line + 1)[node.end_mark.column :]
    return rest.lstrip().startswith("#")


__all__ = [
    "BOOL",
    "INT",
    "NULL",
    "STR",
    "WARNING",
    "Source",
    "as_list",
    "as_mapping",
    "as_string",
    "cel_surprise_hint",
    "check_keys",
    "describe",
    "parse",
    "string_list",
    "surprise_hint",
    "trailing_comment",
]
