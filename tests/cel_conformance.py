"""cel-spec's conformance cases (tests/fixtures/cel-spec) as ruleauth rules, and their outcomes.

How a case becomes rules (the encoding test_cel_conformance.py runs):

- Each case gives two rules, on two routes of one rules file (auth: none, cache disabled),
  decided by `Authorizer.authorize` on a REST request event, like any request:
  - expected `true`:  `E` must allow, `!(E)` must deny with `rule_false`;
  - expected `false`: `!(E)` must allow, `E` must deny with `rule_false`;
  - expected value V: `(E) == V` must allow, `!((E) == V)` must deny with `rule_false`, V written
    as a CEL literal (strings with only `\\\\`, `\\"`, `\\u`/`\\U` escapes, bytes with `\\x`, lists,
    maps, `timestamp('…')`/`duration('…')` for google.protobuf.Timestamp/Duration);
    NaN as `(E) != (E)` (and `(E) == (E)` must deny), ±infinity as `(E) > 1.7976931348623157e308`
    (or `<` its negation);
  - expected error: `E` and `!(E)` must both deny with `rule_error` (an error survives `!`).
  Equality checks the value, not its type: `(E) == 1` also holds for `1u` where an engine's
  `==` is heterogeneous (CEL's is), so a case's type is checked only as far as `==` checks it.
- Bindings become `define:` entries (the binding's value as a literal), one rules file per case.
- A rule the loader refuses counts as "refused at load" (the case then gives no answer, which
  is allowed); so does a case one of whose two rules is refused.
- Not expressible, counted apart and not run: cases that only type-check (`check_only`), run in
  a `container` or with macros disabled, expect `unknown`s, expect or bind values ruleauth cannot
  write (messages other than Timestamp/Duration, enums, type values), or bind names a `define:`
  cannot take.

Engines (`ENGINES`): cel-python's compiled closures (the default), the interpreter fallback
(each rule's text gets `&& 0u == 0u`, which closures do not compile, so the whole rule runs on
cel-python's interpreter as any rule with an uncompiled construct does; the run checks it did),
`RULEAUTH_CEL_INTERPRETER=1`, cel-expr-python (`engine: cel-expr-python` in the file), and
the default engine's rule set read back from a rules snapshot (saved as JSON, as a cold start reads
it: closures rebuilt from their stored trees).
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests import textproto
from tests.textproto import Message

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "cel-spec"

CLOSURES, FALLBACK, INTERPRETER, FAST = (
    "closures",
    "interpreter fallback",
    "RULEAUTH_CEL_INTERPRETER=1",
    "cel-expr-python",
)
SNAPSHOT = "closures from a rules snapshot"
ENGINES = (CLOSURES, FALLBACK, INTERPRETER, FAST, SNAPSHOT)
FALLBACK_SUFFIX = " && 0u == 0u"

AGREE, REFUSED, NOT_EXPRESSIBLE, WRONG = "agree", "refused at load", "not expressible", "wrong"
WRONG_ALLOWS = "of the wrong ones, with a wrong allow"

# Names a define cannot take (ruleauth's variables, functions, CEL's reserved words).
RESERVED = {
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
}
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class NotExpressible(Exception):
    pass


@dataclass
class Rule:
    name: str
    text: str
    must: str  # "allow", or a deny reason: "rule_false" / "rule_error"


@dataclass
class Case:
    qualified: str  # file/section/name
    expr: str
    rules: list[Rule] = field(default_factory=list)
    defines: dict[str, str] = field(default_factory=dict)
    expected: str = ""  # for messages
    not_expressible: str = ""


def cases() -> Iterator[Case]:
    """Every test of every file; a name the file repeats gets `#2`, `#3`… (four do)."""
    seen: dict[str, int] = {}
    for path in sorted(FIXTURES.glob("*.textproto")):
        test_file = textproto.parse(path.read_text(encoding="utf-8"))
        for section in test_file.all("section"):
            for test in section.all("test"):
                case = _case(path.stem, section.get("name"), test)
                seen[case.qualified] = seen.get(case.qualified, 0) + 1
                if seen[case.qualified] > 1:
                    case.qualified += f"#{seen[case.qualified]}"
                yield case


def _case(file: str, section: str, test: Message) -> Case:
    case = Case(f"{file}/{section}/{test.get('name')}", test.get("expr", ""))
    try:
        _encode(case, test)
    except NotExpressible as exc:
        case.not_expressible, case.rules = str(exc), []
    return case


def _encode(case: Case, test: Message) -> None:
    if test.get("check_only") == "true":
        raise NotExpressible("type-check only")
    if test.get("container"):
        raise NotExpressible("container")
    if test.get("disable_macros") == "true":
        raise NotExpressible("macros disabled")
    if test.has("unknown") or test.has("any_unknowns"):
        raise NotExpressible("unknowns")
    for binding in test.all("bindings"):
        name, value = binding.get("key"), binding.get("value")
        if not _IDENT.match(name) or name in RESERVED or _reserved_by_ruleauth(name):
            raise NotExpressible(f"binding name {name!r}")
        if value is None or not value.has("value"):
            raise NotExpressible("binding without a value")
        case.defines[name] = literal(value.get("value"))
    expr = case.expr
    if test.has("eval_error") or test.has("any_eval_errors"):
        case.expected = "error"
        case.rules = [Rule("p", expr, "rule_error"), Rule("n", f"!({expr})", "rule_error")]
        return
    if test.has("typed_result"):
        value = test.get("typed_result").get("result")
        if value is None:
            raise NotExpressible("typed result without a value")
    else:
        value = test.get("value")
    if value is None:  # no expectation: the expression is true
        value = Message([("bool_value", textproto.Ident("true"))])
    kind, plain = _only(value)
    if kind == "bool_value":
        truth = plain == "true"
        case.expected = str(truth).lower()
        positive, negative = (expr, f"!({expr})") if truth else (f"!({expr})", expr)
        case.rules = [Rule("p", positive, "allow"), Rule("n", negative, "rule_false")]
        return
    if kind == "double_value" and isinstance(plain, float) and not math.isfinite(plain):
        if math.isnan(plain):
            case.expected = "NaN"
            case.rules = [Rule("p", f"({expr}) != ({expr})", "allow"), Rule("n", f"({expr}) == ({expr})", "rule_false")]
        else:
            case.expected = str(plain)
            test_text = f"({expr}) > 1.7976931348623157e308" if plain > 0 else f"({expr}) < -1.7976931348623157e308"
            case.rules = [Rule("p", test_text, "allow"), Rule("n", f"!({test_text})", "rule_false")]
        return
    written = literal(value)
    case.expected = written
    case.rules = [Rule("p", f"({expr}) == {written}", "allow"), Rule("n", f"!(({expr}) == {written})", "rule_false")]


def _reserved_by_ruleauth(name: str) -> bool:
    from ruleauth.cel import compiler as expressions

    return name in expressions.VARIABLES or name in expressions.FUNCTIONS or name in expressions.MACROS


def _only(value: Message) -> tuple[str, Any]:
    if len(value) != 1:
        raise NotExpressible("a value with several fields")
    return value[0]


def literal(value: Message) -> str:
    """A cel.expr.Value as CEL source text, or NotExpressible."""
    kind, plain = _only(value)
    if kind == "null_value":
        return "null"
    if kind == "bool_value":
        return str(plain).lower()
    if kind == "int64_value":
        return str(int(plain))
    if kind == "uint64_value":
        return f"{int(plain)}u"
    if kind == "double_value":
        number = float(plain)
        if not math.isfinite(number):
            raise NotExpressible("a non-finite double inside a value")
        return repr(number)  # the shortest text that reads back as the same double
    if kind == "string_value":
        return string_literal(plain)
    if kind == "bytes_value":
        return bytes_literal(textproto.bytes_of(plain))
    if kind == "list_value":
        return "[" + ", ".join(literal(item) for item in plain.all("values")) + "]"
    if kind == "map_value":
        entries = [f"{literal(e.get('key'))}: {literal(e.get('value'))}" for e in plain.all("entries")]
        return "{" + ", ".join(entries) + "}"
    if kind == "object_value":
        return _object_literal(plain)
    raise NotExpressible(kind)


def _object_literal(message: Message) -> str:
    ((type_url, body),) = message
    name = type_url.rsplit("/", 1)[-1]
    seconds, nanos = int(body.get("seconds", 0)), int(body.get("nanos", 0))
    if name == "google.protobuf.Timestamp":
        moment = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(seconds=seconds)
        fraction = f".{nanos:09d}" if nanos else ""
        return f"timestamp('{moment.strftime('%Y-%m-%dT%H:%M:%S')}{fraction}Z')"
    if name == "google.protobuf.Duration":
        total = seconds * 10**9 + nanos
        sign, total = ("-", -total) if total < 0 else ("", total)
        whole, fraction = divmod(total, 10**9)
        return f"duration('{sign}{whole}{f'.{fraction:09d}' if fraction else ''}s')"
    raise NotExpressible(f"message {name}")


def _quoted(text: str, byte_escapes: bool) -> str:
    """`text` in double quotes: printable characters as they are, the rest escaped (`\\xHH` for
    code points below 256 where `byte_escapes`, else `\\uHHHH`/`\\UHHHHHHHH`)."""
    out = []
    for char in text:
        code = ord(char)
        if char in '\\"':
            out.append("\\" + char)
        elif 0x20 <= code < 0x7F or (
            code >= 0xA0 and char.isprintable() and not 0xD800 <= code < 0xE000 and code != 0xFEFF
        ):
            out.append(char)
        elif byte_escapes and code <= 0xFF:
            out.append(f"\\x{code:02x}")
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return '"' + "".join(out) + '"'


def string_literal(text: str) -> str:
    """A CEL string literal: only `\\\\`, `\\"`, `\\u` and `\\U` escapes."""
    return _quoted(text, byte_escapes=False)


def bytes_literal(data: bytes) -> str:
    out = []
    for byte in data:
        char = chr(byte)
        if char in '\\"' or not 0x20 <= byte < 0x7F:
            out.append(f"\\x{byte:02x}")
        else:
            out.append(char)
    return 'b"' + "".join(out) + '"'


# ------------------------------------------------------------------ rules files


def yaml_string(text: str) -> str:
    """A YAML double-quoted scalar holding `text` exactly (escapes for what YAML will not read raw)."""
    return _quoted(text, byte_escapes=True)


def rules_file(entries: list[tuple[str, str]], defines: dict[str, str], engine: str | None) -> str:
    """A rules file with one rule per (route name, expression), each on one line."""
    lines = ["version: 1", "cache: {mode: disabled}"]
    if engine:
        lines.append(f"engine: {engine}")
    if defines:
        lines.append("define:")
        lines += [f"  {name}: {yaml_string(text)}" for name, text in defines.items()]
    lines.append("rules:")
    for name, text in entries:
        lines.append(f"  - {{name: {name}, route: GET /{name}, auth: none, allow: {yaml_string(text)}}}")
    return "\n".join(lines) + "\n"
