"""Reading CEL parse trees: the helpers the compiler, the closure builder and explain share.

One copy each, because they decide things that must agree: which reads a rule makes (so
the cache-safety check), and which reads dry-run hides. Lark trees and rules-snapshot
PlainTrees alike: only `.data` and `.children` are used.
"""

from __future__ import annotations

import re
from typing import Any

# Single-child precedence levels: the grammar nests every expression in them, and they add
# nothing to its meaning.
_WRAPPERS = frozenset(
    {"expr", "conditionalor", "conditionaland", "relation", "addition", "multiplication", "unary", "member", "primary"}
)
_WRAPPERS_AND_PARENS = _WRAPPERS | {"paren_expr"}

# A string literal whose text is its value: quoted, no escape, one line. Anything else
# (escapes, raw, bytes, triple quotes) is None, "a key not known here", which is the
# fail-closed answer for both users: a read of the whole map, and a hidden value.
_SIMPLE_STRING = re.compile(r"""^(?:'([^'\\\n]*)'|"([^"\\\n]*)")$""")


def is_tree(node: Any) -> bool:
    """A parse-tree node: lark's, or a PlainTree from a rules snapshot. Tokens are strings."""
    return hasattr(node, "data")


def unwrap(node: Any, parens: bool = True) -> Any:
    """The one meaningful node under a chain of single-child precedence levels and, with
    `parens`, parentheses: CEL's syntax tree has no parenthesis node, they only group, so
    `has((a.b))` is `has(a.b)` (docs/cel.md). Without `parens`, a `define:` use (a
    parenthesis that shares its value per request) is kept."""
    wrappers = _WRAPPERS_AND_PARENS if parens else _WRAPPERS
    while is_tree(node) and len(node.children) == 1 and node.data in wrappers:
        node = node.children[0]
    return node


def string_literal(expr: Any) -> str | None:
    """The value of a simple string literal (see _SIMPLE_STRING) under `expr`'s wrappers, else None."""
    node = expr
    while is_tree(node) and len(node.children) == 1 and node.data != "literal":
        node = node.children[0]
    if is_tree(node) and node.data == "literal":
        token = node.children[0]
        if getattr(token, "type", None) == "STRING_LIT":
            found = _SIMPLE_STRING.match(str(token))
            if found:
                return found.group(1) if found.group(1) is not None else found.group(2)
    return None


def access_chain(node: Any) -> tuple[list[str | None], list[Any]] | None:
    """`request.headers['x'].y` → (['request', 'headers', 'x', 'y'], []), root first; a computed
    key is None in the names and its expression is in the list (outermost first). None when
    the chain is not rooted at a name (a call, a literal, a parenthesis)."""
    names: list[str | None] = []
    dynamic: list[Any] = []
    current: Any = node
    while is_tree(current):
        kind = current.data
        if kind == "member" and len(current.children) == 1:
            current = current.children[0]
        elif kind == "member_dot":
            names.append(str(current.children[1]))
            current = current.children[0]
        elif kind == "member_index":
            literal = string_literal(current.children[1])
            if literal is None:
                dynamic.append(current.children[1])
            names.append(literal)
            current = current.children[0]
        elif (
            kind == "primary"
            and len(current.children) == 1
            and is_tree(current.children[0])
            and current.children[0].data == "ident"
        ):
            names.append(str(current.children[0].children[0]))
            names.reverse()
            return names, dynamic
        else:
            return None
    return None


def line_col(text: str, offset: int) -> tuple[int, int]:
    """The 1-based (line, column) of a character offset in an expression's text: where the
    compiler and the syntax hints point."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1
