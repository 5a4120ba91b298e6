"""The "why" of a decision: which part of a rule was false or failed, with the values it saw.

A rule's compiled tree (cel-python's lark tree, `define:` names already inlined)
is split along its top-level `&&`, `||` and `!` structure; each part is compiled
on its own with the same functions and evaluated against the very activation the
decision used. For a part that is a comparison, both sides are shown; for one
that failed, the innermost sub-expression that raised is named.

Credentials never appear: any value computed from `token`, from cookies, or from
the credential and identity-source headers and query parameters is replaced by
a placeholder. Booleans (the outcome of a part) are shown; claims are shown.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import celpy
import lark

from ruleauth.cel import closures as cel_closures
from ruleauth.cel import evaluation as ev
from ruleauth.cel import functions as cel_functions
from ruleauth.cel import interpreter as celpy_values
from ruleauth.cel.compiler import CEL_PYTHON, CLOSURES, MACROS, VARIABLES, Compiled, canonical_literals
from ruleauth.cel.tree import access_chain, unwrap
from ruleauth.reasons import Outcome, Reason
from ruleauth.runtime.credentials import without_credential

HIDDEN = "<hidden: computed from the credential>"
MAX_SHOWN = 160
MAX_VALUES = 8

_ENV: celpy.Environment | None = None

# Node kinds that cel-python can evaluate on their own.
_EVALUABLE = {
    "expr",
    "conditionalor",
    "conditionaland",
    "relation",
    "addition",
    "multiplication",
    "unary",
    "member",
    "primary",
}
_RELATION_OPS = {
    "relation_lt": "<",
    "relation_le": "<=",
    "relation_gt": ">",
    "relation_ge": ">=",
    "relation_eq": "==",
    "relation_ne": "!=",
    "relation_in": "in",
}
_ADD_OPS = {"addition_add": "+", "addition_sub": "-"}
_MUL_OPS = {"multiplication_mul": "*", "multiplication_div": "/", "multiplication_mod": "%"}


@dataclass
class Step:
    """One line of an explanation: a sub-expression, what it gave, and the values beside it."""

    expr: str
    result: str
    depth: int = 0
    values: list[tuple[str, str]] = field(default_factory=list)
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"expr": self.expr, "result": self.result, "depth": self.depth}
        if self.values:
            out["values"] = dict(self.values)
        if self.note:
            out["note"] = self.note
        return out


@dataclass
class Explanation:
    summary: str
    steps: list[Step] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"summary": self.summary, "steps": [s.as_dict() for s in self.steps]}

    def lines(self) -> list[str]:
        """Human text, one sub-expression per line, indented by depth."""
        out = [self.summary]
        for step in self.steps:
            pad = "  " * (step.depth + 1)
            out.append(f"{pad}{step.expr}  → {step.result}" + (f"  ({step.note})" if step.note else ""))
            for name, value in step.values:
                out.append(f"{pad}    {name} = {value}")
        return out


# -- entry points -------------------------------------------------------------


def explain(authorizer: Any, authorization: Any) -> Explanation:
    """Explain an `Authorization` produced by `authorizer.authorize`."""
    decision = authorization.decision
    reason = decision.reason
    if authorization.internal_error:
        detail = f"{authorization.internal_error}" + (
            f": {'; '.join(authorization.problems)}" if authorization.problems else ""
        )
        return Explanation(f"the authorizer failed ({detail}); the Lambda answers Unauthorized (401)")
    if reason in (Reason.RULE_FALSE, Reason.RULE_ERROR, Reason.RULE_NON_BOOL) and decision.request is not None:
        rule = next((r for r in authorizer.ruleset.rules if r.name == decision.rule and not r.shadow), None)
        if rule is not None:
            activation = activation_for(authorizer, decision)
            return explain_expression(
                rule.allow,
                activation,
                sensitive_inputs(authorizer.ruleset),
                f"rule {rule.name!r}: allow",
                decided=decision.result,
            )
    if reason == Reason.RULE_TRUE:
        return Explanation(f"rule {decision.rule!r}: allow evaluated to true")
    if reason == Reason.NO_ROUTE:
        routes = sorted({str(route) for route, _ in authorizer.ruleset.router.entries})
        shown = ", ".join(routes[:10]) + (", ..." if len(routes) > 10 else "")
        return Explanation(
            f"{decision.detail or 'no rule matches the request'}; the rules cover: "
            f"{shown or 'nothing (no rules)'}. Add a rule for this route to allow it"
        )
    if decision.outcome == Outcome.UNAUTHORIZED:
        token = authorizer.ruleset.token
        rule = next((r for r in authorizer.ruleset.rules if r.name == decision.rule), None)
        needs = f"rule {rule.name!r} (auth: {rule.auth}) needs one" if rule else "the rule needs one"
        scheme = f" as '{token.scheme} <credential>'" if token.scheme else ""
        return Explanation(
            f"{decision.detail or reason} ({reason}); {needs}, sent in {token.where}{scheme}, "
            "so the Lambda raises Unauthorized"
        )
    return Explanation(decision.detail or reason)


def activation_for(authorizer: Any, decision: Any) -> dict[str, Any]:
    """The activation the decision's rule was evaluated with (credential removed from the request)."""
    request = decision.request
    ruleset = authorizer.ruleset
    match = ruleset.router.find(request.method, request.path)
    visible = without_credential(ruleset.token, request)
    plain = authorizer.decider.plain_activation(visible, match, decision.identity, decision.now)
    return ev.activation_for(CEL_PYTHON, plain)


def sensitive_inputs(ruleset: Any) -> tuple[frozenset[str], frozenset[str]]:
    """Header names (lower case) and query names whose values are never shown."""
    headers = {"authorization", "proxy-authorization", "cookie", "x-api-key"}
    headers |= {h.lower() for h in ruleset.cache.headers}
    query = set(ruleset.cache.query)
    if ruleset.token.header:
        headers.add(ruleset.token.header.lower())
    if ruleset.token.query:
        query.add(ruleset.token.query)
    return frozenset(headers), frozenset(query)


def explain_expression(
    compiled: Compiled,
    activation: Mapping[str, Any],
    sensitive: tuple[frozenset[str], frozenset[str]] = (frozenset(), frozenset()),
    label: str = "allow",
    decided: ev.Result | None = None,
) -> Explanation:
    """`activation` holds plain values (evaluation.activation_for); `decided` is the deciding
    engine's own result, which the summary reports when another engine than cel-python decided.

    Sub-expressions run the way the rule ran: compiled to closures when it was, else on
    cel-python's interpreter, so each step agrees with the decision."""
    walker = _Walker(compiled, activation, sensitive)
    tree = compiled.tree if compiled.tree is not None else compiled.program.ast
    stepwise = walker.evaluate(tree)
    fast = compiled.engine != CEL_PYTHON
    result = decided if fast and decided is not None else stepwise
    summary = {
        ev.TRUE: f"{label} was true",
        ev.FALSE: f"{label} was false",
        ev.ERROR: f"{label} failed ({result.error_class}), which denies",
        ev.NON_BOOL: f"{label} gave {walker.kind_of(result.value)}, not a boolean: only an exact true allows",
    }[result.kind]
    if fast:
        # The same source, re-run step by step with cel-python: say so, since the engines
        # can differ at the edges (e.g. `1 == 1.0` is true on cel-cpp, an error on cel-python).
        summary += f" (decided by {compiled.engine}; the steps below are re-run with cel-python"
        summary += ")" if stepwise.kind == result.kind else f", which gives {stepwise.kind} here)"
    walker.visit(tree, 0, stepwise)
    return Explanation(summary, walker.steps)


class SubExpressions:
    """The sub-expressions of one expression evaluated against one activation, each as the
    explanation evaluates it (so as the decision did), and their text: for `test --coverage`."""

    def __init__(self, compiled: Compiled, activation: Mapping[str, Any]):
        self._walker = _Walker(compiled, activation, (frozenset(), frozenset()))

    def result(self, node: lark.Tree) -> ev.Result:
        return self._walker.evaluate(node)

    def text(self, node: lark.Tree) -> str:
        return self._walker.text(node)


# -- the walk -------------------------------------------------------------------


class _Walker:
    def __init__(
        self, compiled: Compiled, activation: Mapping[str, Any], sensitive: tuple[frozenset[str], frozenset[str]]
    ):
        self.source = compiled.source
        self.activation = activation
        self.closures = compiled.runs_on == CLOSURES
        self.sensitive_headers, self.sensitive_query = sensitive
        self.steps: list[Step] = []
        tree = compiled.tree if compiled.tree is not None else compiled.program.ast
        # Inlined `define:` trees carry positions in their own text, not the rule's.
        self.foreign: set[int] = set()
        for node in tree.iter_subtrees():
            if node.data == "paren_expr" and node.meta.empty:
                self.foreign.update(id(n) for n in node.iter_subtrees())
        self._cache: dict[int, ev.Result] = {}

    # evaluation ------------------------------------------------------------------

    def evaluate(self, node: lark.Tree) -> ev.Result:
        key = id(node)
        if key not in self._cache:
            self._cache[key] = ev.evaluate(self._program(node), self.activation)
        return self._cache[key]

    def _program(self, node: lark.Tree) -> Any:
        if self.closures:
            try:
                return _ClosureProgram(cel_closures.compile_tree(node, cel_functions.PLAIN_FUNCTIONS))
            except cel_closures.Unsupported:
                pass
        return _Program(node)

    def shown(self, node: lark.Tree, result: ev.Result) -> str:
        if result.kind == ev.ERROR:
            return f"error ({result.error_class})"
        if result.kind in (ev.TRUE, ev.FALSE):
            return result.kind
        if self.sensitive(node):
            return HIDDEN
        return show_value(result.value)

    @staticmethod
    def kind_of(value: Any) -> str:
        plain = ev.to_plain(value)
        return {
            str: "a string",
            int: "a number",
            float: "a number",
            list: "a list",
            dict: "a map",
            type(None): "null",
        }.get(type(plain), "a value")

    # structure -------------------------------------------------------------------

    def visit(self, node: lark.Tree, depth: int, result: ev.Result | None = None) -> None:
        result = result or self.evaluate(node)
        kind, parts = split(node)
        if kind is None:
            self.steps.append(Step(self.text(node), self.shown(node, result), depth, self.leaf_values(node, result)))
            return
        note = {"and": "all of these must be true", "or": "one of these must be true", "not": "negation"}[kind]
        self.steps.append(Step(self.text(node), self.shown(node, result), depth, note=note))
        for part in parts:
            part_result = self.evaluate(part)
            interesting = part_result.kind != ev.TRUE or kind == "not"
            if interesting:
                self.visit(part, depth + 1, part_result)
            else:
                self.steps.append(Step(self.text(part), self.shown(part, part_result), depth + 1))

    def leaf_values(self, node: lark.Tree, result: ev.Result) -> list[tuple[str, str]]:
        values: list[tuple[str, str]] = []
        seen = {self.text(node)}

        def add(sub: lark.Tree) -> None:
            text = self.text(sub)
            if text in seen or len(values) >= MAX_VALUES or _is_literal(sub):
                return
            seen.add(text)
            values.append((text, self.shown(sub, self.evaluate(sub))))

        if result.kind == ev.ERROR:
            origin = self.error_origin(node)
            if origin is not node:
                values.append((f"fails at {self.text(origin)}", f"error ({self.evaluate(origin).error_class})"))
                seen.add(self.text(origin))
            for child in _evaluable_children(origin):
                add(child)
        for operand in comparison_operands(node):
            add(operand)
        for chain in self.chains(node):
            add(chain)
        return values

    def error_origin(self, node: lark.Tree) -> lark.Tree:
        for child in _evaluable_children(node):
            if self.evaluate(child).kind == ev.ERROR:
                return self.error_origin(child)
        return node

    def chains(self, node: lark.Tree) -> list[lark.Tree]:
        """Member chains rooted at a rule variable (claims.groups, request.headers['x']), outermost only."""
        found: list[lark.Tree] = []
        stack: list[Any] = [node]  # trees and their tokens
        while stack:
            current = stack.pop()
            if not isinstance(current, lark.Tree):
                continue
            if current.data == "member":
                names = chain_names(current)
                if names is not None:
                    if names[0] in VARIABLES and len(names) > 1:
                        found.append(current)
                    continue
            if current.data == "member_dot_arg" and _token(current.children[1]) in MACROS:
                stack.append(current.children[0])  # the body refers to the macro's own variable
                continue
            stack.extend(reversed(current.children))
        return found

    # redaction ---------------------------------------------------------------------

    def sensitive(self, node: lark.Tree) -> bool:
        subtrees = list(node.iter_subtrees())
        # The `request.headers` inside `request.headers['x']` is not a read of the whole map.
        inner = {id(_children(s)[0]) for s in subtrees if s.data in ("member_dot", "member_index")}
        for sub in subtrees:
            if sub.data == "ident" and _token(sub.children[0]) == "token":
                return True
            if sub.data != "member" or id(sub) in inner:
                continue
            names = chain_names(sub, keep_dynamic=True)
            if not names or names[0] != "request" or len(names) < 2:
                continue
            fieldname = names[1]
            key = names[2] if len(names) > 2 else None
            if fieldname == "cookies":
                return True
            if fieldname == "headers" and (len(names) == 2 or key is None or key.lower() in self.sensitive_headers):
                return True
            if fieldname == "query" and (len(names) == 2 or key is None or key in self.sensitive_query):
                return True
        return False

    # text ------------------------------------------------------------------------

    def text(self, node: lark.Tree) -> str:
        meta = node.meta
        if (
            id(node) not in self.foreign
            and not meta.empty
            and getattr(meta, "start_pos", None) is not None
            and getattr(meta, "end_pos", None) is not None
        ):
            return " ".join(self.source[meta.start_pos : meta.end_pos].split())
        return unparse(node)


class _Program:
    """A lark subtree as its own program on cel-python's interpreter, with the rules' extra functions."""

    def __init__(self, node: lark.Tree):
        # Its own copy, literals respelled as the interpreter reads them right (cel/compiler.py).
        self.node = copy.deepcopy(node)
        canonical_literals(self.node)

    def evaluate(self, activation: Mapping[str, Any]) -> Any:
        program = _environment().program(self.node, functions=celpy_values.FUNCTIONS)
        return program.evaluate(celpy_values.converted(activation))


class _ClosureProgram:
    """A lark subtree compiled to closures, as evaluation.evaluate runs them."""

    runs_on = CLOSURES

    def __init__(self, program: cel_closures.Program):
        self.closure = program.evaluate


def _environment() -> celpy.Environment:
    global _ENV
    if _ENV is None:
        _ENV = celpy_values.environment()
    return _ENV


# -- tree helpers ------------------------------------------------------------------


def _token(value: Any) -> str:
    return str(value) if isinstance(value, lark.Token) else ""


def _children(node: lark.Tree) -> list[Any]:
    return [c for c in node.children if c is not None]


def split(node: lark.Tree) -> tuple[str | None, list[lark.Tree]]:
    """('and'|'or'|'not', parts) for a boolean combination; (None, []) for anything else."""
    inner = unwrap(node)
    kids = _children(inner)
    if inner.data == "conditionalor" and len(kids) == 2:
        return "or", _flatten(inner, "conditionalor")
    if inner.data == "conditionaland" and len(kids) == 2:
        return "and", _flatten(inner, "conditionaland")
    if inner.data == "unary" and len(kids) == 2 and isinstance(kids[0], lark.Tree) and kids[0].data == "unary_not":
        return "not", [kids[1]]
    return None, []


def _flatten(node: lark.Tree, kind: str) -> list[lark.Tree]:
    parts: list[lark.Tree] = []
    current = node
    while True:
        kids = _children(current)
        if current.data == kind and len(kids) == 2:
            parts.append(kids[1])
            current = kids[0]
            continue
        parts.append(current)
        break
    parts.reverse()
    # A part written in parentheses with the same operator is flattened as well.
    flat: list[lark.Tree] = []
    for part in parts:
        inner = unwrap(part)
        if inner.data == kind and len(_children(inner)) == 2 and inner is not part:
            flat.extend(_flatten(inner, kind))
        else:
            flat.append(part)
    return flat


def comparison_operands(node: lark.Tree) -> list[lark.Tree]:
    inner = unwrap(node)
    kids = _children(inner)
    if inner.data == "relation" and len(kids) == 2 and kids[0].data in _RELATION_OPS:
        return [_children(kids[0])[0], kids[1]]
    return []


def _evaluable_children(node: lark.Tree) -> list[lark.Tree]:
    """The nearest evaluable sub-expressions under `node` (not the same span again)."""
    out: list[lark.Tree] = []
    inner = node
    # Descend through single-child wrappers first: they evaluate to the same thing.
    while True:
        kids = [c for c in _children(inner) if isinstance(c, lark.Tree)]
        if len(kids) == 1 and kids[0].data in _EVALUABLE and len(_children(inner)) == 1:
            inner = kids[0]
            continue
        break
    if inner.data == "expr" and len(_children(inner)) == 3:
        return [_children(inner)[0]]  # a ternary: only its condition is always evaluated
    stack = list(reversed(_children(inner)))
    while stack:
        child = stack.pop()
        if not isinstance(child, lark.Tree):
            continue
        if child.data in _EVALUABLE:
            out.append(child)
        elif child.data == "member_dot_arg" and _token(child.children[1]) in MACROS:
            out.append(child.children[0])
        else:
            stack.extend(reversed(_children(child)))
    return out


def chain_names(member: lark.Tree, keep_dynamic: bool = False) -> list[str | None] | None:
    """`request.headers['x']` → ['request', 'headers', 'x']; None when not rooted at a name.

    A computed key is None with `keep_dynamic`; without it the whole chain is None. The rule
    for which keys are known is the compiler's (cel/tree.py), so what dry-run hides is what
    the cache-safety check records."""
    found = access_chain(member)
    if found is None or (not keep_dynamic and None in found[0]):
        return None
    return found[0]


def _is_literal(node: lark.Tree) -> bool:
    inner = unwrap(node)
    return inner.data == "literal" or bool(
        inner.data == "primary"
        and _children(inner)
        and isinstance(_children(inner)[0], lark.Tree)
        and _children(inner)[0].data == "literal"
    )


def unparse(node: Any) -> str:
    """CEL text for a lark subtree (used inside inlined `define:` trees, whose positions are elsewhere)."""
    if isinstance(node, lark.Token):
        return str(node)
    if not isinstance(node, lark.Tree):
        return ""
    kids = _children(node)
    data = node.data
    if data == "expr":
        if len(kids) == 3:
            return f"{unparse(kids[0])} ? {unparse(kids[1])} : {unparse(kids[2])}"
        return unparse(kids[0])
    if data in ("conditionalor", "conditionaland") and len(kids) == 2:
        op = "||" if data == "conditionalor" else "&&"
        return f"{unparse(kids[0])} {op} {unparse(kids[1])}"
    ops = {**_RELATION_OPS, **_ADD_OPS, **_MUL_OPS}
    if data in ("relation", "addition", "multiplication") and len(kids) == 2:
        op_node = kids[0]
        return f"{unparse(_children(op_node)[0])} {ops.get(op_node.data, '?')} {unparse(kids[1])}"
    if data == "unary" and len(kids) == 2:
        return ("!" if kids[0].data == "unary_not" else "-") + unparse(kids[1])
    if data == "member_dot":
        return f"{unparse(kids[0])}.{kids[1]}"
    if data == "member_dot_arg":
        args = unparse(kids[2]) if len(kids) > 2 else ""
        return f"{unparse(kids[0])}.{kids[1]}({args})"
    if data == "member_index":
        return f"{unparse(kids[0])}[{unparse(kids[1])}]"
    if data == "member_object":
        return f"{unparse(kids[0])}{{{unparse(kids[1]) if len(kids) > 1 else ''}}}"
    if data == "ident_arg":
        return f"{kids[0]}({unparse(kids[1]) if len(kids) > 1 else ''})"
    if data == "dot_ident_arg":
        return f".{kids[0]}({unparse(kids[1]) if len(kids) > 1 else ''})"
    if data == "dot_ident":
        return f".{kids[0]}"
    if data == "paren_expr":
        return f"({unparse(kids[0])})"
    if data == "list_lit":
        return f"[{unparse(kids[0]) if kids else ''}]"
    if data == "map_lit":
        return f"{{{unparse(kids[0]) if kids else ''}}}"
    if data == "exprlist":
        return ", ".join(unparse(k) for k in kids)
    if data == "mapinits":
        return ", ".join(f"{unparse(kids[i])}: {unparse(kids[i + 1])}" for i in range(0, len(kids) - 1, 2))
    if data == "fieldinits":
        return ", ".join(f"{kids[i]}: {unparse(kids[i + 1])}" for i in range(0, len(kids) - 1, 2))
    return "".join(unparse(k) for k in kids)


def show_value(value: Any) -> str:
    try:
        text = json.dumps(ev.to_plain(value), ensure_ascii=False, sort_keys=True, default=str)
    except (TypeError, ValueError):
        text = str(value)
    text = text.encode("unicode_escape", "backslashreplace").decode("ascii") if not text.isprintable() else text
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + "…"
