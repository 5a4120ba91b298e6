"""What a CEL syntax error says: where parsing failed, what was expected, and the usual slip.

Imported only when an expression fails to parse (never on a cold start that loads), so
it may take its time: it re-runs the parser on the text before the failure to learn
exactly which tokens could have come next (lark's `accepts`), which is narrower than
the lexer's list in the exception.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import lark

from ruleauth.cel.tree import line_col

# Token kinds that start an operand: after a binary operator, one of these must follow.
_OPERAND_STARTS = frozenset(
    {
        "IDENT",
        "INT_LIT",
        "UINT_LIT",
        "FLOAT_LIT",
        "STRING_LIT",
        "MLSTRING_LIT",
        "BYTES_LIT",
        "BOOL_LIT",
        "NULL_LIT",
        "LPAR",
        "LSQB",
        "LBRACE",
        "BANG",
    }
)
_BINARY = ("==", "!=", "<", "<=", ">", ">=", "&&", "||", "in", "+", "-", "*", "/", "%")
_CLOSERS = {")": "(", "]": "[", "}": "{"}
_OPENERS = {v: k for k, v in _CLOSERS.items()}
_END = "$END"
# What a word-operator from other languages is in CEL.
_WORD_OPERATORS = {"and": "&&", "or": "||", "not": "!"}
# Other languages' operators, by the two characters around where CEL's parser stops.
_MISSPELLED = {
    "==": "CEL writes equality as '==' (there is no '===')",
    "=>": "CEL writes 'greater or equal' as '>='",
    "=<": "CEL writes 'less or equal' as '<='",
    "<>": "CEL writes 'not equal' as '!='",
}
_TRAILING_OPERATOR = re.compile(r"(\|\||&&|==|!=|<=|>=|[<>+\-*/%!?:,.]|\bin)\s*$")


@dataclass(frozen=True)
class Diagnosis:
    message: str  # one line, without the "CEL syntax error" prefix
    where: tuple[int, int]  # 1-based (line, column) in the expression's text


def diagnose(parser: lark.Lark, text: str, exc: lark.exceptions.UnexpectedInput) -> Diagnosis:
    names = _display_names(parser)
    if isinstance(exc, lark.exceptions.UnexpectedToken) and exc.token.type == _END:
        found, offset = None, len(text.rstrip())
        accepts = set(exc.accepts or exc.expected)
    elif isinstance(exc, lark.exceptions.UnexpectedToken):
        found, offset = str(exc.token.value), int(exc.token.start_pos or 0)
        accepts = set(exc.accepts or exc.expected)
    else:
        offset = int(getattr(exc, "pos_in_stream", 0) or 0)
        found = text[offset : offset + 1]
        accepts = _accepts_after(parser, text[:offset]) or set(getattr(exc, "allowed", None) or ())
    where = line_col(text, offset)
    hint = _hint(text, offset, found, accepts, exc)
    shown = "the expression ends" if found is None else f"found {found!r}"
    expected = _expected(accepts, names)
    message = f"at {_place(text, where)} of the expression: {shown}" + (
        f" where {expected} was expected" if expected else ""
    )
    return Diagnosis(message + (f"; {hint}" if hint else ""), where)


def _display_names(parser: lark.Lark) -> dict[str, str]:
    """Terminal name → how it is written ('__ANON_4' → '=='), from the grammar itself."""
    names = {}
    for terminal in parser.terminals:
        if terminal.pattern.type == "str":
            names[terminal.name] = str(terminal.pattern.value)
    return names


def _accepts_after(parser: lark.Lark, prefix: str) -> set[str]:
    """The tokens the parser accepts after `prefix` (empty when that cannot be told)."""
    try:
        interactive = parser.parse_interactive(prefix)
        interactive.exhaust_lexer()
        accepted: set[str] = interactive.accepts()  # type: ignore[no-untyped-call]
        return set(accepted)
    except lark.exceptions.LarkError:
        return set()


def _expected(accepts: set[str], names: dict[str, str]) -> str:
    parts = []
    if "IDENT" in accepts and accepts & (_OPERAND_STARTS - {"IDENT"}):
        parts.append("a value (a name, a literal, '(' or '[')")
        accepts = accepts - _OPERAND_STARTS - {"MINUS", "DOT"}
    operators = [op for op in _BINARY if any(names.get(a, a.lower()) == op for a in accepts)]
    if len(operators) > 3:
        parts.append("an operator (such as ==, &&, || or in)")
        accepts = {a for a in accepts if names.get(a, a.lower()) not in _BINARY and a not in ("QMARK", "LSQB", "LPAR")}
        accepts -= {"DOT", "LBRACE"}
    for name in sorted(accepts - {_END}):
        if name == "IDENT":
            parts.append("a name")
        elif name in names:
            parts.append(repr(names[name]))
    if _END in accepts:
        parts.append("the end of the expression")
    if not parts:
        return ""
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " or " + parts[-1]


def _hint(text: str, offset: int, found: str | None, accepts: set[str], exc: Exception) -> str:
    before = text[:offset]
    for pair in (text[max(offset - 1, 0) : offset + 1], text[offset : offset + 2]):
        if pair in _MISSPELLED and found is not None:
            return _MISSPELLED[pair]
    if found == "=" and text[offset : offset + 2] != "==":
        return "CEL compares with '==', not '='"
    if found in ("&", "|") and text[offset : offset + 2] not in ("&&", "||"):
        return "CEL writes 'and' as '&&' and 'or' as '||'"
    if found is not None and found.lower() in ("and", "or"):
        return f"CEL writes {found!r} as {_WORD_OPERATORS[found.lower()]!r}"
    negated = re.search(r"\bnot\s*$", before, re.I)
    if negated and (found is None or found not in _BINARY):
        return "CEL writes 'not' as '!', e.g. !(x in y)"
    if found in ("'", '"') and isinstance(exc, lark.exceptions.UnexpectedCharacters):
        return f"the string opened by {found!r} at {_place(text, line_col(text, offset))} is never closed"
    unclosed, stray = _brackets(text)
    if stray is not None:
        opener = stray[1]
        if opener is None:
            return f"the {text[stray[0]]!r} at {_place(text, line_col(text, stray[0]))} closes nothing"
        return (
            f"the {text[opener]!r} at {_place(text, line_col(text, opener))} is closed by "
            f"{text[stray[0]]!r} at {_place(text, line_col(text, stray[0]))}"
        )
    if found is None and unclosed is not None:
        closer = _OPENERS[text[unclosed]]
        return f"the {text[unclosed]!r} at {_place(text, line_col(text, unclosed))} is never closed: add {closer!r}"
    if found is None and "IDENT" in accepts:
        trailing = _TRAILING_OPERATOR.search(text)
        if trailing:
            ending = trailing.group(1)
            return f"the expression ends with {ending!r}: " + (
                "finish it" if ending in ".,:" else "finish it or remove the operator"
            )
    return ""


def _brackets(text: str) -> tuple[int | None, tuple[int, int | None] | None]:
    """(the offset of the first bracket never closed, (a closer that does not match, the opener
    it meets or None)), skipping string literals."""
    stack: list[int] = []
    quote = ""
    index = 0
    while index < len(text):
        char = text[index]
        if quote:
            if char == "\\":
                index += 1
            elif text.startswith(quote, index):
                index += len(quote) - 1
                quote = ""
        elif char in "'\"":
            quote = char * 3 if text.startswith(char * 3, index) else char
            index += len(quote) - 1
        elif char in _OPENERS:
            stack.append(index)
        elif char in _CLOSERS:
            if not stack:
                return None, (index, None)
            if text[stack[-1]] != _CLOSERS[char]:
                return None, (index, stack[-1])
            stack.pop()
        index += 1
    return (stack[0] if stack else None), None


def _place(text: str, where: tuple[int, int]) -> str:
    line, column = where
    return f"line {line}, column {column}" if "\n" in text.rstrip() else f"column {column}"
