"""The rule compiler: CEL text → checked, compiled program, once at cold start.

cel-python does not type-check: an unknown variable or function, or a typo in a
field name, compiles and only fails when a request arrives. Here the parse tree
is walked once to make those load errors, to bound size and depth (cel-python's
evaluator recurses, so a deep expression would otherwise be a RecursionError
at run time), to inline `define:` names, and to record which inputs each
expression reads, so the loader can refuse rules whose result API Gateway's
authorizer cache would replay for the wrong caller.

Those checks are the same for both engines. With `engine: cel-expr-python` the
expression, with its defines inlined as text, is then compiled by cel-cpp, whose
type checker adds load errors of its own (`1 + 'a'`); see cel/fast_engine.py.
"""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from ruleauth.cel import closures as cel_closures
from ruleauth.cel import fast_engine
from ruleauth.cel import functions as cel_functions
from ruleauth.cel import tree as cel_tree
from ruleauth.cel.tree import is_tree
from ruleauth.errors import LoadError

if TYPE_CHECKING:
    import lark

# lark and the parser (cel_parser) are imported when an expression is compiled, not before:
# a cold start that loads a rules snapshot (rules/snapshot.py) never parses, and skips them.

CEL_PYTHON = "cel-python"
CEL_EXPR_PYTHON = fast_engine.NAME
ENGINES = (CEL_PYTHON, CEL_EXPR_PYTHON)
# A testing and operations knob: forces the engine whatever the rules file says, so one
# rule test suite runs on both engines, or an operator can switch without editing rules.
ENGINE_ENV = "RULEAUTH_ENGINE"
# How a cel-python expression runs: compiled to closures, else on cel-python's interpreter.
CLOSURES, INTERPRETER = "closures", "interpreter"
# RULEAUTH_CEL_INTERPRETER=1 runs every cel-python expression on the interpreter: the rule
# test suite runs that way too, and it is the way back should a compiled rule ever misbehave.
INTERPRETER_ENV = "RULEAUTH_CEL_INTERPRETER"

MAX_SOURCE_CHARS = 2000
MAX_DEPTH = 50

VARIABLES = ("token", "claims", "scopes", "auth", "request", "now", "now_unix")
REQUEST_FIELDS = (
    "method",
    "path",
    "route",
    "resource",
    "params",
    "headers",
    "query",
    "cookies",
    "stage_variables",
    "source_ip",
    "stage",
    "api_id",
    "account_id",
    "region",
    "client_cert",
)
# request.client_cert: present only where the request has a client certificate (mTLS).
CLIENT_CERT_FIELDS = (
    "subject_dn",
    "issuer_dn",
    "serial_number",
    "not_before",
    "not_after",
    "fingerprint_sha256",
    "san_dns",
    "san_uri",
    "san_email",
)
REQUEST_MAPS = ("params", "headers", "query", "cookies", "stage_variables")
AUTH_FIELDS = ("provider",)
MACROS = ("exists", "all", "exists_one", "map", "filter")

# cel-python's own functions (celpy.evaluation.base_functions without the operators; a test
# keeps the two equal), named here so that checking a rule does not import cel-python.
CEL_PYTHON_FUNCTIONS = (
    "bool",
    "bytes",
    "contains",
    "double",
    "duration",
    "endsWith",
    "getDate",
    "getDayOfMonth",
    "getDayOfWeek",
    "getDayOfYear",
    "getFullYear",
    "getHours",
    "getMilliseconds",
    "getMinutes",
    "getMonth",
    "getSeconds",
    "int",
    "list",
    "map",
    "matches",
    "null_type",
    "size",
    "startsWith",
    "string",
    "timestamp",
    "type",
    "uint",
)
FUNCTIONS = tuple(sorted(set(CEL_PYTHON_FUNCTIONS) | {"has", "dyn"} | set(cel_functions.PLAIN_FUNCTIONS)))
# Operators that nest: each one with two operands is a level of evaluator recursion.
_NESTING = {
    "conditionalor",
    "conditionaland",
    "relation",
    "addition",
    "multiplication",
    "unary",
    "paren_expr",
    "member_index",
    "member_dot_arg",
    "ident_arg",
    "list_lit",
    "map_lit",
}


_ALWAYS_NESTS = {"paren_expr", "list_lit", "map_lit"}

# cel-python's evaluator recurses, using about 50 Python frames per nesting level, and
# `celpy.Environment()` sets the recursion limit to 2500: that leaves no headroom at the
# MAX_DEPTH levels the loader accepts, so a rule that loads could still die of RecursionError
# (caught, but a deny nobody intended). Measured with 200 nested levels: no C-stack trouble.
RECURSION_LIMIT = 2500 + 60 * MAX_DEPTH


def _ensure_recursion_headroom() -> None:
    if sys.getrecursionlimit() < RECURSION_LIMIT:
        sys.setrecursionlimit(RECURSION_LIMIT)


def engine_override(environ: Mapping[str, str] | None = None) -> str | None:
    """`RULEAUTH_ENGINE` if set (not validated here: the loader reports a bad value)."""
    value = (os.environ if environ is None else environ).get(ENGINE_ENV, "").strip()
    return value or None


class ExpressionError(LoadError, ValueError):
    """A CEL expression that cannot be accepted; the message says how to fix it.

    `where` is a 1-based (line, column) inside the expression's own text, when known.
    `define` names the `define:` whose own text is wrong (then `where` is inside that text):
    the loader reports it once, at the definition, not at every rule that uses it.
    """

    def __init__(self, message: str, where: tuple[int, int] | None = None, define: str | None = None):
        super().__init__(message)
        self.where = where
        self.define = define


@dataclass(frozen=True)
class Read:
    """One input an expression reads: `request.headers` with key 'x-tenant', or `claims` (key None)."""

    input: str
    key: str | None = None

    def __str__(self) -> str:
        return f"{self.input}[{self.key!r}]" if self.key is not None else self.input


@dataclass
class Compiled:
    source: str
    program: Any  # a cel_closures.Program, a celpy.Runner, or a cel-cpp Expression
    reads: frozenset[Read]
    defines: frozenset[str] = field(default_factory=frozenset)
    engine: str = CEL_PYTHON
    # How to compile the expression again: the checked tree with positions for dry-run
    # explanations (a deciding process keeps no tree: 100 rules' trees were ~3 MB of a
    # Lambda's memory), and the whole program in a process that loads a rules snapshot.
    origin: Origin | None = field(default=None, repr=False)
    _tree: lark.Tree | None = field(default=None, init=False, repr=False)
    # CLOSURES, INTERPRETER (both cel-python) or CEL_EXPR_PYTHON; set from the program.
    runs_on: str = field(init=False, default="")
    # The compiled closure itself, when runs_on is CLOSURES: called without indirection.
    closure: Callable[[Mapping[str, Any]], Any] | None = field(init=False, default=None, repr=False)

    @property
    def tree(self) -> lark.Tree | None:
        """The checked tree, defines inlined, with source positions (made on first use)."""
        if self._tree is None and self.origin is not None:
            self._tree = self.origin.tree()
        return self._tree

    @property
    def uses_now(self) -> bool:
        return any(r.input in ("now", "now_unix") for r in self.reads)

    def __post_init__(self) -> None:
        if self.engine == CEL_EXPR_PYTHON:
            self.runs_on = CEL_EXPR_PYTHON
        elif isinstance(self.program, cel_closures.Program):
            self.runs_on, self.closure = CLOSURES, self.program.evaluate
        else:
            self.runs_on = INTERPRETER

    def evaluate(self, activation: Mapping[str, Any]) -> Any:
        """The raw result: classify it with evaluation.evaluate, never use it as is.

        `activation` holds plain values (evaluation.activation_for).
        """
        if self.runs_on == CLOSURES:
            return self.program.evaluate(activation)
        if self.runs_on == CEL_EXPR_PYTHON:
            return fast_engine.evaluate(self.program, activation)
        from ruleauth.cel.interpreter import converted

        return self.program.evaluate(converted(activation))

    # -- rules snapshots (rules/snapshot.py): what the program is built again from, as data --

    def stored(self) -> dict[str, Any]:
        """This expression as JSON-ready data: closures as their checked tree without lark,
        cel-cpp's program as the text it compiled; cel-python's interpreter needs lark's own
        tree with positions, so for it the text alone (compiled again on reading)."""
        if self.origin is None:
            raise TypeError("this compiled expression has no origin to be saved with")
        state: dict[str, Any] = {
            "source": self.source,
            # Sorted (a set's order is the hash seed's), a whole map's read (key None) first.
            "reads": [
                [r.input, r.key] for r in sorted(self.reads, key=lambda r: (r.input, r.key is not None, r.key or ""))
            ],
            "defines": sorted(self.defines),
            "engine": self.engine,
            "runs_on": self.runs_on,
        }
        if self.runs_on == CLOSURES:
            state["tree"] = cel_closures.tree_data(cel_closures.plain(self.origin.tree(positions=False)))
        elif self.runs_on == CEL_EXPR_PYTHON:
            state["text"] = self.origin.inlined_text()
        return state

    @classmethod
    def restored(cls, state: Mapping[str, Any], recompiler: Recompiler) -> Compiled:
        """The expression `stored` gave, built as Compiler.compile builds it, without parsing
        (but for cel-python's interpreter). Raises ValueError, or what building raises, for
        data `stored` cannot have given."""
        source, engine, runs_on = state["source"], state["engine"], state["runs_on"]
        if not (isinstance(source, str) and engine in ENGINES and runs_on in (CLOSURES, INTERPRETER, CEL_EXPR_PYTHON)):
            raise ValueError("not a stored expression")
        reads = frozenset(Read(str(i), None if k is None else str(k)) for i, k in _pairs(state["reads"]))
        defines = frozenset(_strings(state["defines"]))
        origin = Origin(recompiler, source)
        if runs_on == CLOSURES and set(state) == {*_STORED, "tree"}:
            program: Any = cel_closures.compile_tree(
                cel_closures.tree_from_data(state["tree"]), cel_functions.PLAIN_FUNCTIONS
            )
        elif runs_on == CEL_EXPR_PYTHON and set(state) == {*_STORED, "text"} and isinstance(state["text"], str):
            program = fast_engine.compile_expression(state["text"])
        elif runs_on == INTERPRETER and set(state) == set(_STORED):
            program = origin.compile().program
        else:
            raise ValueError(f"a stored expression that runs on {runs_on} holds {sorted(state)}")
        compiled = cls(source, program, reads, defines, engine, origin)
        if compiled.runs_on != runs_on and runs_on != INTERPRETER:
            raise ValueError(f"a stored expression built for {runs_on} runs on {compiled.runs_on}")
        return compiled


_STORED = ("source", "reads", "defines", "engine", "runs_on")


def _pairs(value: Any) -> list[tuple[Any, Any]]:
    if not isinstance(value, list) or not all(
        isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) and (p[1] is None or isinstance(p[1], str))
        for p in value
    ):
        raise ValueError("reads that are not [input, key] pairs")
    return [(p[0], p[1]) for p in value]


def _strings(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError("not a list of strings")
    return value


class Origin:
    """One expression's text, and the compiler that compiled it (as a Recompiler)."""

    def __init__(self, recompiler: Recompiler, text: str):
        self.text = text
        self.recompiler = recompiler

    def tree(self, positions: bool = True) -> lark.Tree:
        return self.recompiler.compiler().checked_tree(self.text, positions)[0]

    def compile(self) -> Compiled:
        return self.recompiler.compiler().compile(self.text)

    def inlined_text(self) -> str:
        """The text cel-cpp compiles: the definitions it names inlined."""
        compiler = self.recompiler.compiler()
        checker = compiler.checked_tree(self.text, positions=False)[1]
        return _inline(self.text, checker.define_spans, compiler._define_text)[0]


class Recompiler:
    """A compiler's arguments, and the compiler: one per rule set, shared by its Origins.

    Inside the loading process it is that compiler (and its parsed definitions); read from a
    rules snapshot, it makes an equal compiler on first use, one for the whole set.
    """

    def __init__(self, settings: dict[str, Any], compiler: Compiler | None = None):
        self.settings = settings
        self._compiler = compiler

    @property
    def has_compiler(self) -> bool:
        """Whether this process has parsed with it (compiled the rules, or re-derived a tree)."""
        return self._compiler is not None

    def compiler(self) -> Compiler:
        if self._compiler is None:
            self._compiler = Compiler(**self.settings)
        return self._compiler


class Compiler:
    """Checks and compiles every expression of one rule set, once, at cold start.

    `engine` defaults to `RULEAUTH_ENGINE`, else cel-python. With cel-python, each
    expression is compiled to closures when it can be (cel/closures.py), else run on the
    interpreter; `interpreter_only` (default: `RULEAUTH_CEL_INTERPRETER`) skips the closures.
    """

    def __init__(
        self,
        defines: Mapping[str, str] | None = None,
        jwt_configured: bool = True,
        engine: str | None = None,
        interpreter_only: bool | None = None,
    ):
        self.engine = engine or engine_override() or CEL_PYTHON
        if self.engine not in ENGINES:
            raise ValueError(f"unknown CEL engine {self.engine!r}; choose one of {', '.join(ENGINES)}")
        if self.engine == CEL_EXPR_PYTHON:
            fast_engine.environment()  # raises EngineUnavailable before any rule is compiled
        self._environment: Any = None  # cel-python's, made only if an expression needs it
        self._define_sources = dict(defines or {})
        self._define_trees: dict[tuple[str, bool], lark.Tree] = {}  # by (name, with positions)
        # Definitions each definition uses, transitively: its stored tree is already inlined,
        # so walking it again no longer shows their names.
        self._define_uses: dict[str, frozenset[str]] = {}
        # Where each definition's text names other definitions, for inlining as text.
        self._define_spans: dict[str, list[_Span]] = {}
        self._define_texts: dict[str, str] = {}
        self.jwt_configured = jwt_configured
        if interpreter_only is None:
            interpreter_only = os.environ.get(INTERPRETER_ENV, "").strip() not in ("", "0")
        self._interpreter_only = interpreter_only
        # This compiler's arguments: an equal compiler compiles every expression alike.
        settings = {
            "defines": self._define_sources,
            "jwt_configured": jwt_configured,
            "engine": self.engine,
            "interpreter_only": interpreter_only,
        }
        self.recompiler = Recompiler(settings, self)
        self._checked: dict[str, tuple[lark.Tree, _Checker]] = {}  # compile()'s, by text
        self._interpreted: dict[str, lark.Tree] = {}  # _celpy_program's, with positions, by text
        _ensure_recursion_headroom()

    def parse(self, text: str, positions: bool = True) -> lark.Tree:
        if len(text) > MAX_SOURCE_CHARS:
            raise ExpressionError(
                f"expression is {len(text)} characters; the limit is {MAX_SOURCE_CHARS}: "
                "split it into named `define:` expressions"
            )
        if _bracket_depth(text) > MAX_DEPTH:
            raise ExpressionError(f"expression nests more than {MAX_DEPTH} levels of brackets")
        from ruleauth.cel import parser as cel_parser

        try:
            return cel_parser.parse(text, positions)
        except RecursionError:
            raise ExpressionError(f"expression nests too deeply (limit {MAX_DEPTH} levels)") from None
        except cel_parser.CELSyntaxError as exc:
            raise ExpressionError(f"CEL syntax error {exc}", exc.where) from None

    def define_tree(self, name: str, stack: tuple[str, ...] = (), positions: bool = True) -> lark.Tree:
        if name in stack:
            cycle = " → ".join((*stack, name))
            raise ExpressionError(f"define {name!r} refers to itself ({cycle})", define=name)
        if (name, positions) not in self._define_trees:
            try:
                tree = self.parse(self._define_sources[name], positions)
                checker = _Checker(self, (*stack, name), positions)
                checker.visit(tree, frozenset(), 0)
            except ExpressionError as exc:
                if exc.define is None:  # the innermost definition is the one to fix
                    exc.define = name
                raise
            self._define_trees[(name, positions)] = tree
            self._define_uses[name] = frozenset(checker.defines_used)
            self._define_spans[name] = checker.define_spans
        return self._define_trees[(name, positions)]

    def checked_tree(self, text: str, positions: bool = True) -> tuple[lark.Tree, _Checker]:
        """The parse tree with defines inlined, after every load-time check."""
        tree = self.parse(text, positions)
        checker = _Checker(self, (), positions)
        checker.visit(tree, frozenset(), 0)
        return tree, checker

    def compile(self, text: str) -> Compiled:
        # Deciding needs no source positions: parsing without them takes half the time. A text
        # met before (rules often repeat one) is parsed and checked once: its checked tree is
        # never changed, so each Compiled builds its own program from the one tree.
        found = self._checked.get(text)
        if found is None:
            found = self._checked[text] = self.checked_tree(text, positions=False)
        tree, checker = found
        origin = Origin(self.recompiler, text)
        depth = _tree_depth(tree)
        if depth > MAX_DEPTH:
            raise ExpressionError(
                f"expression nests {depth} levels deep; the limit is {MAX_DEPTH}: "
                "split it into named `define:` expressions"
            )
        reads, defines = frozenset(checker.reads), frozenset(checker.defines_used)
        if self.engine == CEL_EXPR_PYTHON:
            program = self._fast_program(text, checker.define_spans)
            return Compiled(text, program, reads, defines, CEL_EXPR_PYTHON, origin)
        return Compiled(text, self._celpy_program(text, tree), reads, defines, CEL_PYTHON, origin)

    def _celpy_program(self, text: str, tree: lark.Tree) -> Any:
        if not self._interpreter_only:
            try:
                return cel_closures.compile_tree(tree, cel_functions.PLAIN_FUNCTIONS)
            except cel_closures.Unsupported:
                pass  # timestamps, bytes, ...: cel-python's interpreter runs this one
        from ruleauth.cel import (
            interpreter as celpy_values,  # imports cel-python: only rule sets that need it pay for it
        )

        if self._environment is None:
            self._environment = celpy_values.environment()
        # The interpreter reads source positions when it reports an error. Its tree is parsed
        # once per text too; each program gets its own copy, as cel-python may annotate trees.
        positioned = self._interpreted.get(text)
        if positioned is None:
            positioned = self._interpreted[text] = self.checked_tree(text)[0]
        interpreted = copy.deepcopy(positioned)
        refusal = interpreter_refusal(interpreted)
        if refusal is not None:
            raise ExpressionError(refusal)
        canonical_literals(interpreted)
        return self._environment.program(interpreted, functions=celpy_values.FUNCTIONS)

    # -- the fast engine: defines inlined as text, then cel-cpp's compiler --------------

    def _fast_program(self, text: str, spans: list[_Span]) -> Any:
        expanded, pieces = _inline(text, spans, self._define_text)
        try:
            return fast_engine.compile_expression(expanded)
        except fast_engine.CompileError as exc:
            message = f"engine {CEL_EXPR_PYTHON}: {exc.message}"
            if exc.line is None or exc.column is None:
                raise ExpressionError(message) from None
            offset = _offset_of(expanded, exc.line, exc.column)
            for start, end, origin in pieces:
                if start <= offset < end or (offset == end == len(expanded)):
                    if isinstance(origin, str):
                        raise ExpressionError(f"{message} (in define {origin!r})") from None
                    raise ExpressionError(message, cel_tree.line_col(text, origin + offset - start)) from None
            raise ExpressionError(message) from None

    def _define_text(self, name: str) -> str:
        """A definition's text with the definitions it uses inlined, recursively."""
        if name not in self._define_texts:
            self.define_tree(name)  # parsed and checked, so its spans are known
            expanded, _ = _inline(self._define_sources[name], self._define_spans[name], self._define_text)
            self._define_texts[name] = expanded
        return self._define_texts[name]


@dataclass(frozen=True)
class _Span:
    """Where a text names a definition: character offsets of the identifier token."""

    start: int
    end: int
    name: str


def _inline(text: str, spans: list[_Span], define_text: Callable[[str], str]) -> tuple[str, list[tuple[int, int, Any]]]:
    """`text` with each define name replaced by `(its text, newline, )`.

    The newline before `)` ends a `//` comment the definition may close with. The pieces
    map offsets of the result back: (start, end, offset in `text`) for the text's own
    characters, (start, end, define name) for an inlined definition.
    """
    parts: list[str] = []
    pieces: list[tuple[int, int, Any]] = []
    cursor = length = 0
    for span in sorted(spans, key=lambda s: s.start):
        own = text[cursor : span.start]
        parts.append(own)
        pieces.append((length, length + len(own), cursor))
        length += len(own)
        inlined = "(" + define_text(span.name) + "\n)"
        parts.append(inlined)
        pieces.append((length, length + len(inlined), span.name))
        length += len(inlined)
        cursor = span.end
    rest = text[cursor:]
    parts.append(rest)
    pieces.append((length, length + len(rest), cursor))
    return "".join(parts), pieces


def _offset_of(text: str, line: int, column: int) -> int:
    lines = text.split("\n")
    line = max(1, min(line, len(lines)))
    return sum(len(text) + 1 for text in lines[: line - 1]) + max(column - 1, 0)


class _Checker:
    """Walks a parse tree: names, functions, scopes, inlining and recorded reads."""

    def __init__(self, compiler: Compiler, define_stack: tuple[str, ...], positions: bool = True):
        self.compiler = compiler
        self.define_stack = define_stack
        self.positions = positions
        self.reads: set[Read] = set()
        self.defines_used: set[str] = set()
        # Define names in this checker's own text (not in inlined trees, whose positions are
        # offsets in the definitions' texts), for the fast engine's textual inlining.
        self.define_spans: list[_Span] = []

    def visit(self, node: Any, scope: frozenset[str], comprehension: int) -> None:
        if not is_tree(node):
            return
        kind = node.data
        if kind == "primary" and _is_ident(node.children[0]):
            self._primary_ident(node, scope, comprehension)
            return
        if kind in ("member_dot", "member_index"):
            chain = _access_chain(node, scope)
            # `q.role` on a definition: a field of its value. The walk below inlines `q` (its
            # reads are the definition's); as a chain it would be looked up as a variable.
            if chain is not None and chain.names[0] in self.compiler._define_sources:
                chain = None
            if chain is not None:
                self._record(chain, node)
                for index_expr in chain.dynamic_indexes:
                    self.visit(index_expr, scope, comprehension)
                return
        if kind == "member_dot_arg":
            self._method_call(node, scope, comprehension)
            return
        if kind == "ident_arg":
            name = cast("lark.Token", node.children[0]).value
            if name not in FUNCTIONS:
                raise ExpressionError(_unknown("function", name, FUNCTIONS))
            arguments: Any = node.children[1] if len(node.children) > 1 else None
            _check_arity(name, len(arguments.children) if is_tree(arguments) else 0)
        if kind == "literal":
            _check_literal(node.children[0])
        if kind in ("dot_ident", "dot_ident_arg"):
            raise ExpressionError("leading-dot names (.name) are not supported in rules")
        if kind == "member_object":
            raise ExpressionError("message construction (Type{field: ...}) is not supported in rules")
        for child in node.children:
            self.visit(child, scope, comprehension)

    def _primary_ident(self, primary: lark.Tree, scope: frozenset[str], comprehension: int = 0) -> None:
        name = cast("lark.Token", primary.children[0].children[0]).value
        if name in scope:
            return
        if name in self.compiler._define_sources:
            # Inline the definition: the rule evaluates it as if written in place.
            token = cast("lark.Token", primary.children[0].children[0])
            # The lexer sets every token's offsets (`positions` is only trees' meta).
            self.define_spans.append(_Span(cast(int, token.start_pos), cast(int, token.end_pos), name))
            tree = self.compiler.define_tree(name, self.define_stack, self.positions)
            inner = _Checker(self.compiler, (*self.define_stack, name), self.positions)
            # The definition is checked where it is used: inside a comprehension over data, a
            # comprehension in the definition is nested (E6), just as if written in place.
            inner.visit(tree, frozenset(), comprehension)
            self.reads |= inner.reads
            self.defines_used |= inner.defines_used | {name} | self.compiler._define_uses.get(name, frozenset())
            # Trees are never changed once checked, so a deciding tree shares the definition's;
            # a positioned one (explanations, the interpreter) gets its own copy.
            from ruleauth.cel.parser import DefineUse

            primary.children[0] = DefineUse(name, copy.deepcopy(tree) if self.positions else tree)
            return
        self._record(_Chain([name], []), primary)

    def _record(self, chain: _Chain, node: lark.Tree) -> None:
        root = chain.names[0]
        if root not in VARIABLES:
            candidates = VARIABLES + tuple(self.compiler._define_sources)
            raise ExpressionError(_unknown("variable", root, candidates))
        if root == "claims" and not self.compiler.jwt_configured:
            raise ExpressionError("`claims` needs a `jwt:` provider; this rules file configures none")
        if root == "request" and len(chain.names) > 1:
            fieldname = chain.names[1]
            if fieldname not in REQUEST_FIELDS:
                raise ExpressionError(_unknown("field of request", fieldname, REQUEST_FIELDS))
            key = chain.names[2] if len(chain.names) > 2 and fieldname in REQUEST_MAPS else None
            if fieldname == "client_cert" and len(chain.names) > 2:
                key = chain.names[2]
                if key not in CLIENT_CERT_FIELDS:
                    raise ExpressionError(_unknown("field of request.client_cert", key, CLIENT_CERT_FIELDS))
            if fieldname == "headers" and key is not None and key != key.lower():
                raise ExpressionError(
                    f"header names are lower case in request.headers: write {key.lower()!r}, not {key!r}"
                )
            whole_map = fieldname in REQUEST_MAPS and len(chain.names) == 2
            self.reads.add(Read(f"request.{fieldname}", None if whole_map else key))
        elif root == "auth" and len(chain.names) > 1:
            if chain.names[1] not in AUTH_FIELDS:
                raise ExpressionError(_unknown("field of auth", chain.names[1], AUTH_FIELDS))
            self.reads.add(Read("auth.provider"))
        elif root == "claims" and len(chain.names) > 1:
            # Which claims: answers can then be shared by callers whose read claims agree.
            self.reads.add(Read("claims", chain.names[1]))
        else:
            self.reads.add(Read(root))

    def _method_call(self, node: lark.Tree, scope: frozenset[str], comprehension: int) -> None:
        target, name_token, *rest = node.children
        name = cast("lark.Token", name_token).value
        args = rest[0].children if rest and rest[0] is not None else []
        if name in MACROS:
            if len(args) != 2 or not _is_bare_ident(args[0]):
                raise ExpressionError(f"{name}() takes a variable name and an expression, e.g. list.{name}(x, x > 0)")
            variable = _bare_ident_name(args[0])
            self.visit(target, scope, comprehension)
            # Iterating over anything but a literal list iterates over caller data.
            over_data = _mentions_ident(target)
            if comprehension > 0 and over_data:
                raise ExpressionError(
                    f"{name}() nested inside another comprehension over request or claims data: "
                    "its cost grows with the product of the inputs' sizes; restructure the rule"
                )
            self.visit(args[1], scope | {variable}, comprehension + (1 if over_data else 0))
            return
        if name not in FUNCTIONS:
            raise ExpressionError(_unknown("function", name, FUNCTIONS))
        _check_arity(name, 1 + len(args))
        self.visit(target, scope, comprehension)
        for arg in args:
            self.visit(arg, scope, comprehension)


@dataclass
class _Chain:
    names: list[str]
    dynamic_indexes: list[lark.Tree]


def _access_chain(node: lark.Tree, scope: frozenset[str]) -> _Chain | None:
    """`request.headers['x'].y` → names ['request', 'headers', 'x', 'y'], rooted at a free variable.

    Past a computed key only the map itself is known to be read, so the names stop there."""
    found = cel_tree.access_chain(node)
    if found is None:
        return None
    chain, dynamic = found
    if chain[0] in scope:
        return None
    names = [name for name in chain[: chain.index(None) if None in chain else len(chain)] if name is not None]
    return _Chain(names, dynamic)


def _mentions_ident(tree: Any) -> bool:
    return is_tree(tree) and any(t.data == "ident" for t in tree.iter_subtrees())


def _is_ident(node: Any) -> bool:
    return is_tree(node) and node.data == "ident"


def _bare_ident_name(expr: lark.Tree) -> str:
    node = expr
    while is_tree(node) and node.data != "ident":
        if len(node.children) != 1:
            break
        node = node.children[0]
    return cast("lark.Token", node.children[0]).value


def _is_bare_ident(expr: Any) -> bool:
    node = expr
    while is_tree(node):
        if node.data == "ident":
            return True
        if len(node.children) != 1:
            return False
        node = node.children[0]
    return False


def _tree_depth(tree: lark.Tree) -> int:
    # Once per expression at every full load: written for speed (locals, trees only on the stack).
    deepest = 0
    stack: list[tuple[Any, int]] = [(tree, 0)] if is_tree(tree) else []
    pop, push = stack.pop, stack.append
    while stack:
        node, depth = pop()
        children = node.children
        # List and map literals have one child (their item list) yet nest like brackets: each
        # costs the evaluator as many stack frames as a parenthesis, so they count alike.
        if node.data in _NESTING and (len(children) > 1 or node.data in _ALWAYS_NESTS):
            depth += 1
            if depth > deepest:
                deepest = depth
        for child in children:
            if hasattr(child, "data"):  # is_tree, inlined
                push((child, depth))
    return deepest


def _bracket_depth(text: str) -> int:
    depth = deepest = 0
    quote = ""
    escaped = False
    for char in text:
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in ")]}":
            depth -= 1
    return deepest


# The strings-extension functions ruleauth implements (cel/functions.py), by how many
# arguments they take, the target of a method call included: CEL's `split(sep, limit)` and
# the others' extra forms are not implemented, so they are load errors, not run-time errors.
_ARITY = {"split": (2,), "join": (1, 2), "lowerAscii": (1,), "upperAscii": (1,), "trim": (1,)}


def _check_arity(name: str, count: int) -> None:
    allowed = _ARITY.get(name)
    if allowed is not None and count not in allowed:
        shown = " or ".join(str(n) for n in allowed)
        raise ExpressionError(
            f"{name}() takes {shown} argument{'s' if allowed != (1,) else ''} "
            f"(the target of a method call counts), not {count}"
        )


_TEXT_LITERALS = ("STRING_LIT", "MLSTRING_LIT", "BYTES_LIT")


def _check_literal(token: Any) -> None:
    """A string or bytes literal with an escape CEL does not define is a syntax error in CEL."""
    if getattr(token, "type", None) in _TEXT_LITERALS:
        try:
            cel_closures.literal_text(token.value)
        except ValueError as exc:
            raise ExpressionError(f"CEL syntax error: {exc}: {token.value[:40]!r}") from None


def canonical_literals(tree: Any) -> None:
    """Respell every string and bytes literal in the form cel-python's interpreter reads right."""
    import lark

    for node in tree.iter_subtrees():
        if node.data == "literal" and getattr(node.children[0], "type", None) in _TEXT_LITERALS:
            token = node.children[0]
            kind, text = cel_closures.canonical_literal(cel_closures.literal_text(token.value))
            node.children[0] = lark.Token.new_borrow_pos(kind, text, token)


def interpreter_refusal(tree: Any) -> str | None:
    """Why cel-python's interpreter must not run this expression, or None.

    Only constructs it is known to answer wrongly (tests/test_cel_conformance.py, docs/cel.md)
    are refused: there it would give another answer than CEL's. They are all about timestamps
    and durations (its values hold microseconds, and their arithmetic has no range check);
    compiled closures run them as CEL says, so the message says what keeps a rule off it.
    (Functions it answers wrongly but ruleauth can replace, `string()` and a duration's
    `getMilliseconds()`, are replaced instead: celpy_values.FUNCTIONS.)
    """
    temporal = any(_is_temporal_source(node) for node in tree.iter_subtrees())
    if not temporal:
        return None
    for node in tree.iter_subtrees():
        call = _call_of(node)
        if call is not None:
            name, args = call
            if name in ("timestamp", "duration"):
                problem = _temporal_literal_problem(name, args)
                if problem:
                    return _on_interpreter(problem)
        if node.data == "addition" and len(node.children) == 2:
            operands = [node.children[0].children[0], node.children[1]]
            if _now_and_duration_literal(operands):
                continue  # within ±292 years of the present: no overflow (the literal was checked)
            if any(_tainted(operand) for operand in operands):
                return _on_interpreter(
                    "timestamp and duration arithmetic has no range check there (compare "
                    "now_unix with integer seconds instead, e.g. now_unix - 3600 > claims.iat)"
                )
    return None


def _on_interpreter(problem: str) -> str:
    return (
        f"this expression runs on cel-python's interpreter (RULEAUTH_CEL_INTERPRETER is set, or it "
        f"uses something compiled closures do not run: a uint, a map with non-string keys, type()...), "
        f"and {problem}: write it without those so that it compiles to closures, which follow CEL, "
        f"or unset RULEAUTH_CEL_INTERPRETER"
    )


def _now_and_duration_literal(operands: list[Any]) -> bool:
    first, second = (_unwrap_all(operand) for operand in operands)
    if is_tree(first) and first.data == "ident" and first.children[0].value == "now":
        call = _call_of(second) if is_tree(second) else None
        return (
            call is not None and call[0] == "duration" and len(call[1]) == 1 and _unwrap_literal(call[1][0]) is not None
        )
    return False


def _unwrap_all(node: Any) -> Any:
    while is_tree(node) and len(node.children) == 1 and node.data not in ("literal", "ident"):
        node = node.children[0]
    return node


def _call_of(node: Any) -> tuple[str, list[Any]] | None:
    """(function name, arguments without the method target) of a call node, else None."""
    if node.data == "ident_arg":
        arguments: Any = node.children[1] if len(node.children) > 1 else None
        return node.children[0].value, list(arguments.children) if is_tree(arguments) else []
    if node.data == "member_dot_arg":
        arguments = node.children[2] if len(node.children) > 2 else None
        return node.children[1].value, list(arguments.children) if is_tree(arguments) else []
    return None


def _calls(node: Any, name: str) -> bool:
    call = _call_of(node)
    return call is not None and call[0] == name


def _is_temporal_source(node: Any) -> bool:
    if node.data == "ident" and node.children[0].value == "now":
        return True
    return _calls(node, "timestamp") or _calls(node, "duration")


def _tainted(node: Any) -> bool:
    """Whether a value could be a timestamp or duration: it mentions one, or a comprehension
    variable (which may range over them: the expression mentions one somewhere)."""
    if not is_tree(node):
        return False
    for sub in node.iter_subtrees():
        if _is_temporal_source(sub):
            return True
        if sub.data == "ident" and sub.children[0].value not in VARIABLES:
            return True
    return False


def _temporal_literal_problem(name: str, args: list[Any]) -> str | None:
    token = _unwrap_literal(args[0]) if len(args) == 1 else None
    if token is None or token.type not in _TEXT_LITERALS or token.type == "BYTES_LIT":
        return f"{name}() of anything but a string literal is an error there"
    value = cast(str, cel_closures.literal_text(token.value))  # not BYTES_LIT: text
    from ruleauth.cel import timestamps as cel_time

    try:
        parsed = cel_time.parse_timestamp(value) if name == "timestamp" else cel_time.parse_duration(value)
    except ValueError as exc:
        return f"{name}({token.value}) is out of range or invalid ({exc}), which it does not see"
    if parsed.nanos % 1000:
        return f"{name}({token.value}) is cut to microseconds"
    return None


def _unwrap_literal(node: Any) -> Any:
    while is_tree(node) and len(node.children) == 1 and node.data != "literal":
        node = node.children[0]
    if is_tree(node) and node.data == "literal":
        return node.children[0]
    return None


def _unknown(kind: str, name: str, known: tuple[str, ...] | list[str]) -> str:
    import difflib  # only for a rule with a mistake: not a cold start's import

    # Never the name itself: "unknown variable 'q'; did you mean 'q'?" says nothing.
    close = difflib.get_close_matches(name, [k for k in known if k != name], n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    word = _WORD_OPERATORS.get(name.lower())
    if word is not None:  # `not(x)` parses as a call, `and` as a name: other languages' operators
        hint = f"; CEL writes {name!r} as {word!r}"
    return f"unknown {kind} {name!r}{hint}"


_WORD_OPERATORS = {"and": "&&", "or": "||", "not": "!"}
