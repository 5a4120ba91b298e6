"""CEL compiled to Python closures: how the cel-python engine evaluates most rules.

cel-python's interpreter walks the parse tree for every evaluation, wrapping each
value in its own types on the way: 0.2-1 ms per expression, which made a new
caller of a 50-route API cost 16 ms. Here the checked parse tree (cel-python's
own grammar, parsed once at cold start) becomes a tree of Python closures over
plain values (str, int, float, bool, None, list, dict): a few microseconds each.

Only a subset is compiled: the operators, field access, `has()`, the five
comprehension macros, string functions, `size`, `int`, `double`, `string`, `bytes`, `dyn`,
string and bytes literals with every escape CEL defines, timestamps, durations and `now`
(cel/timestamps.py: integer nanoseconds, range-checked) with their accessors, and the
strings-extension functions of cel/functions.py. Anything else (uint, maps with non-string
keys, `type()`) raises `Unsupported` at compile time, and that expression runs on
cel-python's interpreter instead, unless the loader refuses it there
(expressions.interpreter_refusal). Nothing is decided here that the loader has not
already checked (cel/compiler.py).

Errors are Python exceptions (`KeyError`, `TypeError`, `ZeroDivisionError`,
`IndexError`, `ValueError`), named like cel-python's. `&&`, `||`,
`exists` and `all` absorb an error when the other side decides, as CEL requires.

Numbers, equality, ordering and `in` are CEL's (cel/numeric.py, docs/cel-numbers.md):
values of different types are unequal (`1 == 'a'` is false), int and double compare by
value (`1 == 1.0`, `[1] == [1.0]`), int arithmetic outside 64 bits is an error, double
arithmetic is IEEE (`1.0 / 0.0` is +inf). Literals, timestamps and durations are CEL's
too (cel/timestamps.py, docs/cel.md). cel-python's interpreter answers the same: its operators
and the functions it gets wrong are overridden in cel/interpreter.py. Where cel-python still
departs from the specification, the compiled form takes the answer that denies: `true && 1`
is an error (cel-python: 1), as is `size(null)` (cel-python: 0).
An error survives `!`, so a stricter answer cannot turn into an allow. The tests
(tests/test_cel_closures.py) run both on generated expressions: the answers agree, or the
compiled one errors where cel-python's answer is not CEL's (cel-cpp's).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

from ruleauth.cel import numeric as cel_numbers
from ruleauth.cel import timestamps as cel_time
from ruleauth.cel.timestamps import Duration, Timestamp
from ruleauth.cel.tree import is_tree
from ruleauth.cel.tree import unwrap as _unwrap

if TYPE_CHECKING:
    import lark

Closure = Callable[[Mapping[str, Any]], Any]

INT64_MIN, INT64_MAX = cel_numbers.INT64_MIN, cel_numbers.INT64_MAX
_NO_OVERLOAD = "no such overload"


class Unsupported(Exception):
    """A construct outside the compiled subset: the expression runs on cel-python's interpreter."""


class PlainTree:
    """A parse-tree node without lark: what a rules snapshot stores and the builder reads.

    `define` names the definition a `paren_expr` inlines (cel_parser.DefineUse), else None.
    """

    __slots__ = ("children", "data", "define")

    def __init__(self, data: str, children: list[Any], define: str | None = None):
        self.data, self.children, self.define = data, children, define


class PlainToken(str):
    """A lexer token without lark: the text, and its terminal's name as `type`."""

    type: str

    def __new__(cls, kind: str, text: str) -> PlainToken:
        token = super().__new__(cls, text)
        token.type = kind
        return token

    @property
    def value(self) -> str:
        return str.__str__(self)


def plain(node: Any) -> Any:
    """A lark tree (or token) as PlainTree/PlainToken; None stays None.

    Chains of single-child precedence levels (`expr` → … → `primary`) are left out: the
    builder makes the same closure from the node under them, and a snapshot's trees are
    then a quarter the size.
    """
    node = _unwrap(node, parens=False)  # a `define:` use is a parenthesis that shares its value
    if is_tree(node):
        return PlainTree(str(node.data), [plain(child) for child in node.children], getattr(node, "define", None))
    if node is None:
        return None
    return PlainToken(node.type, node.value)


# Rules snapshots store trees as JSON (rules/snapshot.py): a node is the list
# [data, define, *children], a token the string "TYPE text", an absent child null.
_NODE_KIND = re.compile(r"[a-z][a-z_]*\Z")  # the grammar's rule names: never a dunder or private name
_TOKEN_KIND = re.compile(r"[A-Z][A-Z0-9_]*\Z")


def tree_data(node: Any) -> Any:
    """A PlainTree (or token, or None) as JSON-ready lists and strings."""
    if isinstance(node, PlainTree):
        return [node.data, node.define, *(tree_data(child) for child in node.children)]
    if node is None:
        return None
    return f"{node.type} {node.value}"


def tree_from_data(data: Any) -> Any:
    """The PlainTree `tree_data` gave; ValueError for anything it cannot have given.

    Only the shape is checked here; building closures from it (compile_tree) refuses the rest."""
    if data is None:
        return None
    if type(data) is str:
        kind, space, text = data.partition(" ")
        if kind not in _KINDS_SEEN:
            if not space or not _TOKEN_KIND.match(kind):
                raise ValueError(f"not a token: {data[:40]!r}")
            _KINDS_SEEN.add(kind)
        return PlainToken(kind, text)
    if type(data) is not list or len(data) < 2:
        raise ValueError("not a tree node")
    kind, define = data[0], data[1]
    if kind not in _KINDS_SEEN:
        if type(kind) is not str or not _NODE_KIND.match(kind):
            raise ValueError(f"not a tree node kind: {str(kind)[:40]!r}")
        _KINDS_SEEN.add(kind)
    if define is not None and type(define) is not str:
        raise ValueError("a define name that is not a string")
    return PlainTree(kind, [tree_from_data(child) for child in data[2:]], define)


# Node and token kinds already checked: a snapshot holds a few dozen, thousands of times.
_KINDS_SEEN: set[str] = set()


class Program:
    """One compiled expression; `evaluate` takes the plain activation, returns a plain value or raises."""

    __slots__ = ("evaluate",)

    def __init__(self, closure: Closure):
        self.evaluate = closure


def compile_tree(tree: lark.Tree, functions: Mapping[str, Callable[..., Any]]) -> Program:
    return Program(_Builder(functions).build(tree))


# ------------------------------------------------------------------ value operations


def _overload() -> TypeError:
    return TypeError(_NO_OVERLOAD)


_int = cel_numbers.int64
_NUMBERS = (int, float)  # plain values: closures never hold a uint (a uint literal or uint() is Unsupported)


def equal(left: Any, right: Any) -> bool:
    """CEL equality on plain values: numbers by value (cel_numbers.comparable), values of other
    different types unequal, lists and maps item by item. It never fails."""
    kind = type(left)
    if kind is type(right):
        if kind is list:
            return len(left) == len(right) and all(equal(x, y) for x, y in zip(left, right, strict=True))
        if kind is dict:
            return _maps_equal(left, right)
        return left == right  # float: NaN is unequal to itself, as CEL wants
    if kind in _NUMBERS and type(right) in _NUMBERS:
        return float(left) == float(right)
    return False


def _maps_equal(left: dict, right: dict) -> bool:
    if len(left) != len(right):
        return False
    for key, value in left.items():
        found = _lookup(right, key)
        if found is _ABSENT or not equal(value, found):
            return False
    return True


_ABSENT = object()


def _lookup(mapping: dict, key: Any) -> Any:
    """A map's value for a key by CEL equality: Python's dict would take True for 1."""
    if type(key) is str:
        return mapping.get(key, _ABSENT)
    for candidate, value in mapping.items():
        if equal(key, candidate):
            return value
    return _ABSENT


def not_equal(left: Any, right: Any) -> bool:
    return not equal(left, right)


def contained(item: Any, container: Any) -> bool:
    kind = type(container)
    if kind is list:
        if type(item) is str:  # the common case (scopes, groups), at C speed: a str equals only a str
            return item in container
        return any(equal(item, value) for value in container)
    if kind is dict:
        return _lookup(container, item) is not _ABSENT
    raise _overload()


_ORDERED = (int, float, str, bool, bytes, Timestamp, Duration)


def _ordered(left: Any, right: Any) -> tuple[Any, Any]:
    """The operands as values Python orders as CEL does: same-type values as they are, an
    int with a double both as doubles; anything else has no ordering."""
    kind = type(left)
    if kind is type(right):
        if kind in _ORDERED:
            return left, right
    elif kind in _NUMBERS and type(right) in _NUMBERS:
        return float(left), float(right)
    raise _overload()


def less(left: Any, right: Any) -> bool:
    left, right = _ordered(left, right)
    return left < right


def less_equal(left: Any, right: Any) -> bool:
    left, right = _ordered(left, right)
    return left <= right


def greater(left: Any, right: Any) -> bool:
    left, right = _ordered(left, right)
    return left > right


def greater_equal(left: Any, right: Any) -> bool:
    left, right = _ordered(left, right)
    return left >= right


def add(left: Any, right: Any) -> Any:
    kind = type(left)
    if kind is not type(right):
        raise _overload()  # no mixed arithmetic in CEL, not even int + double
    if kind is int:
        return _int(left + right)
    if kind in (float, str, list, bytes):
        return left + right
    raise _overload()


def subtract(left: Any, right: Any) -> Any:
    kind = type(left)
    if kind is not type(right) or kind not in _NUMBERS:
        raise _overload()
    return _int(left - right) if kind is int else left - right


def multiply(left: Any, right: Any) -> Any:
    kind = type(left)
    if kind is not type(right) or kind not in _NUMBERS:
        raise _overload()
    return _int(left * right) if kind is int else left * right


def divide(left: Any, right: Any) -> Any:
    kind = type(left)
    if kind is not type(right) or kind not in _NUMBERS:
        raise _overload()
    if kind is float:
        return cel_numbers.divide_doubles(left, right)
    return _int(cel_numbers.divide_ints(left, right))


def modulo(left: Any, right: Any) -> Any:
    if type(left) is not int or type(right) is not int:
        raise _overload()
    return cel_numbers.modulo_ints(left, right)


def negate(value: Any) -> Any:
    kind = type(value)
    if kind is int:
        return _int(-value)
    if kind is float:
        return -value
    raise _overload()


def logical_not(value: Any) -> bool:
    if type(value) is not bool:
        raise _overload()
    return not value


def select(target: Any, name: str) -> Any:
    if type(target) is not dict:
        raise _overload()
    try:
        return target[name]
    except KeyError:
        raise KeyError("no such key") from None


def index(target: Any, key: Any) -> Any:
    kind = type(target)
    if kind is dict:
        if type(key) is not str:
            raise _overload()
        return select(target, key)
    if kind is list:
        if type(key) is int:
            position = key
        elif type(key) is float:
            position = cel_numbers.list_position(key)
        else:
            raise _overload()
        if not 0 <= position < len(target):
            raise IndexError("list index out of range")
        return target[position]
    raise _overload()


def size(value: Any) -> int:
    if type(value) in (str, list, dict, bytes):
        return len(value)
    raise _overload()


def _text(value: Any) -> str:
    if type(value) is not str:
        raise _overload()
    return value


def contains(text: Any, part: Any) -> bool:
    return _text(part) in _text(text)


def starts_with(text: Any, prefix: Any) -> bool:
    return _text(text).startswith(_text(prefix))


def ends_with(text: Any, suffix: Any) -> bool:
    return _text(text).endswith(_text(suffix))


def to_int(value: Any) -> int:
    kind = type(value)
    if kind is int:
        return value
    if kind is float:
        return cel_numbers.double_to_int(value)
    if kind is str:
        return cel_numbers.string_to_int(value)
    raise _overload()


def to_double(value: Any) -> float:
    kind = type(value)
    if kind is float:
        return value
    if kind is int:
        return float(value)
    if kind is str:
        return cel_numbers.string_to_double(value)
    raise _overload()


def to_string(value: Any) -> str:
    kind = type(value)
    if kind is str:
        return value
    if kind in (int, float):
        return str(value)
    if kind is bytes:
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("invalid UTF-8 in bytes") from None
    if kind in cel_time.TEMPORAL:
        return str(value)
    if kind is bool:
        return "true" if value else "false"
    raise _overload()


def to_bytes(value: Any) -> bytes:
    kind = type(value)
    if kind is bytes:
        return value
    if kind is str:
        return value.encode("utf-8")
    raise _overload()


def _to_int(value: Any) -> int:
    """int(), with int(timestamp) (whole seconds since the epoch) beside the numeric conversions."""
    if type(value) is Timestamp:
        return cel_time.seconds_of(value)
    return to_int(value)


_TEMPORAL = frozenset(cel_time.TEMPORAL)


def _add(left: Any, right: Any) -> Any:
    if type(left) in _TEMPORAL or type(right) in _TEMPORAL:
        return cel_time.add(left, right)
    return add(left, right)


def _subtract(left: Any, right: Any) -> Any:
    if type(left) in _TEMPORAL or type(right) in _TEMPORAL:
        return cel_time.subtract(left, right)
    return subtract(left, right)


def _matcher() -> Callable[[Any, Any], bool]:
    try:
        import re2  # google-re2, which cel-python itself uses for matches(): linear time
    except ImportError:  # pragma: no cover - a dependency of cel-python
        raise Unsupported("matches() needs google-re2") from None

    def matches(text: Any, pattern: Any) -> bool:
        text, pattern = _text(text), _text(pattern)
        try:
            return re2.search(pattern, text) is not None
        except re2.error:
            raise ValueError("bad pattern") from None

    return matches


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "size": size,
    "contains": contains,
    "startsWith": starts_with,
    "endsWith": ends_with,
    "int": _to_int,
    "double": to_double,
    "string": to_string,
    "dyn": lambda value: value,
    "bytes": to_bytes,
    "timestamp": cel_time.to_timestamp,
    "duration": cel_time.to_duration,
    **cel_time.ACCESSORS,
}
_RELATIONS = {
    "relation_eq": equal,
    "relation_ne": not_equal,
    "relation_lt": less,
    "relation_le": less_equal,
    "relation_gt": greater,
    "relation_ge": greater_equal,
    "relation_in": contained,
}
_ARITHMETIC = {
    "addition_add": _add,
    "addition_sub": _subtract,
    "multiplication_mul": multiply,
    "multiplication_div": divide,
    "multiplication_mod": modulo,
}
_MACROS = ("exists", "all", "exists_one", "map", "filter")


# ------------------------------------------------------------------ the builder


class _Builder:
    def __init__(self, functions: Mapping[str, Callable[..., Any]]):
        self._functions = {**_FUNCTIONS, **functions}

    def build(self, node: Any) -> Closure:
        if not is_tree(node):
            raise Unsupported(f"token {node!r}")
        method = getattr(self, "_" + node.data, None)
        if method is None:
            raise Unsupported(node.data)
        return method(node)

    # single-child wrappers and precedence levels

    def _expr(self, node: lark.Tree) -> Closure:
        if len(node.children) == 1:
            return self.build(node.children[0])
        return _conditional(*(self.build(child) for child in node.children))

    def _conditionalor(self, node: lark.Tree) -> Closure:
        return self._logical(node, decisive=True)

    def _conditionaland(self, node: lark.Tree) -> Closure:
        return self._logical(node, decisive=False)

    def _logical(self, node: lark.Tree, decisive: bool) -> Closure:
        if len(node.children) == 1:
            return self.build(node.children[0])
        # `a || b || c` parses as ((a || b) || c): one closure over the whole chain instead.
        operands = []
        while node.data in ("conditionalor", "conditionaland") and len(node.children) == 2:
            if node.data != ("conditionalor" if decisive else "conditionaland"):
                break
            operands.append(node.children[1])
            node = node.children[0]
        operands.append(node)
        return _logical([self.build(operand) for operand in reversed(operands)], decisive)

    def _relation(self, node: lark.Tree) -> Closure:
        return self._binary(node, _RELATIONS)

    def _addition(self, node: lark.Tree) -> Closure:
        return self._binary(node, _ARITHMETIC)

    _multiplication = _addition

    def _binary(self, node: lark.Tree, operators: Mapping[str, Callable[[Any, Any], Any]]) -> Closure:
        if len(node.children) == 1:
            return self.build(node.children[0])
        operator_node, right_node = node.children
        operation = operators[operator_node.data]
        left, right = self.build(operator_node.children[0]), self.build(right_node)
        constant = _constant_of(right_node)
        if constant is not _NOT_CONSTANT:
            if operation in (equal, not_equal) and type(constant) in _SCALARS:
                return _compare_to_constant(left, constant, negate=operation is not_equal)
            return lambda a: operation(left(a), constant)
        constant = _constant_of(operator_node.children[0])
        if constant is not _NOT_CONSTANT:
            if operation in (equal, not_equal) and type(constant) in _SCALARS:
                return _compare_to_constant(right, constant, negate=operation is not_equal)
            return lambda a: operation(constant, right(a))
        return lambda a: operation(left(a), right(a))

    def _unary(self, node: lark.Tree) -> Closure:
        if len(node.children) == 1:
            return self.build(node.children[0])
        operator_node, operand_node = node.children
        operand = self.build(operand_node)
        operation = logical_not if operator_node.data == "unary_not" else negate
        return lambda a: operation(operand(a))

    def _member(self, node: lark.Tree) -> Closure:
        return self.build(node.children[0])

    _primary = _member

    def _paren_expr(self, node: lark.Tree) -> Closure:
        inner = self.build(node.children[0])
        define = getattr(node, "define", None)  # cel_parser.DefineUse, or a PlainTree's
        return _shared(define, inner) if define is not None else inner

    # names, fields, indexes

    def _ident(self, node: lark.Tree) -> Closure:
        name = cast("lark.Token", node.children[0]).value
        if name == "now":  # a datetime in the activation (cel/evaluation.py): CEL's nanoseconds here
            return lambda a: cel_time.from_datetime(a["now"])
        # Every variable is in the activation (the checker refused any other name): read at C speed.
        return operator.itemgetter(name)

    def _member_dot(self, node: lark.Tree) -> Closure:
        target, name = self.build(node.children[0]), cast("lark.Token", node.children[1]).value
        return lambda a: select(target(a), name)

    def _member_index(self, node: lark.Tree) -> Closure:
        target, key_node = self.build(node.children[0]), node.children[1]
        constant = _constant_of(key_node)
        if constant is not _NOT_CONSTANT:
            return lambda a: index(target(a), constant)
        key = self.build(key_node)
        return lambda a: index(target(a), key(a))

    # literals

    def _literal(self, node: lark.Tree) -> Closure:
        value = literal_value(cast("lark.Token", node.children[0]))
        return lambda a: value

    def _list_lit(self, node: lark.Tree) -> Closure:
        constant = _constant_of(node)
        if constant is not _NOT_CONSTANT:
            return lambda a: constant
        items = [self.build(child) for child in _items(node)]
        return lambda a: [item(a) for item in items]

    def _map_lit(self, node: lark.Tree) -> Closure:
        children = _items(node)
        keys = [_constant_of(child) for child in children[0::2]]
        if any(type(key) is not str for key in keys) or len(set(keys)) != len(keys):
            raise Unsupported("map literal keys other than distinct string literals")
        values = [self.build(child) for child in children[1::2]]
        pairs = list(zip(keys, values, strict=True))
        return lambda a: {key: value(a) for key, value in pairs}

    # calls

    def _ident_arg(self, node: lark.Tree) -> Closure:
        name = cast("lark.Token", node.children[0]).value
        args = _items(node.children[1]) if len(node.children) > 1 and node.children[1] is not None else []
        if name == "has":
            return self._has(args)
        if name in ("timestamp", "duration") and len(args) == 1 and type(_constant_of(args[0])) is str:
            try:  # read once here, not at every evaluation (`now < timestamp('2030-…')`)
                value = self._functions[name](_constant_of(args[0]))
            except ValueError:
                pass  # a bad text stays an error at run time, as in CEL
            else:
                return lambda a: value
        return self._call(name, [self.build(arg) for arg in args])

    def _member_dot_arg(self, node: lark.Tree) -> Closure:
        target_node, name_token, *rest = node.children
        name = cast("lark.Token", name_token).value
        args = _items(rest[0]) if rest and rest[0] is not None else []
        target = self.build(target_node)
        if name in _MACROS:
            return self._macro(name, target, _bare_name(args[0]), self.build(args[1]))
        return self._call(name, [target, *(self.build(arg) for arg in args)])

    def _call(self, name: str, args: list[Closure]) -> Closure:
        function: Callable[..., Any] | None = _matcher() if name == "matches" else self._functions.get(name)
        if function is None:
            raise Unsupported(f"function {name}")
        if len(args) == 1:
            (only,) = args
            return lambda a: function(only(a))
        if len(args) == 2:
            first, second = args
            return lambda a: function(first(a), second(a))
        return lambda a: function(*(arg(a) for arg in args))

    def _has(self, args: list[Any]) -> Closure:
        node = _unwrap(args[0]) if len(args) == 1 else None
        if node is None or node.data != "member_dot":
            raise Unsupported("has() of anything but a field selection")
        target, name = self.build(node.children[0]), cast("lark.Token", node.children[1]).value

        def has(a: Mapping[str, Any]) -> bool:
            value = target(a)
            if type(value) is not dict:
                raise _overload()
            return name in value

        return has

    def _macro(self, name: str, target: Closure, variable: str, body: Closure) -> Closure:
        def items(a: Mapping[str, Any]) -> Any:
            value = target(a)
            if type(value) not in (list, dict):
                raise _overload()
            return list(value)  # a map's keys, as CEL iterates maps

        if name == "map":

            def mapped(a: Mapping[str, Any]) -> list[Any]:
                scope, out = dict(a), []
                for value in items(a):
                    scope[variable] = value
                    out.append(body(scope))
                return out

            return mapped
        if name == "filter":

            def filtered(a: Mapping[str, Any]) -> list[Any]:
                scope, out = dict(a), []
                for value in items(a):
                    scope[variable] = value
                    if _must_bool(body(scope)):
                        out.append(value)
                return out

            return filtered
        if name == "exists_one":

            def exactly_one(a: Mapping[str, Any]) -> bool:
                scope, found = dict(a), 0
                for value in items(a):
                    scope[variable] = value
                    found += _must_bool(body(scope))
                return found == 1

            return exactly_one
        decisive = name == "exists"  # exists stops at the first true, all at the first false

        def quantifier(a: Mapping[str, Any]) -> bool:
            scope, error = dict(a), None
            for value in items(a):
                scope[variable] = value
                try:
                    result = body(scope)
                except Exception as exc:  # an error is absorbed if another item decides
                    error = error or exc
                    continue
                if result is decisive:
                    return decisive
                if type(result) is not bool:
                    error = error or _overload()
            if error is not None:
                raise error
            return not decisive

        return quantifier


def _shared(name: str, inner: Closure) -> Closure:
    """`inner` evaluated once per activation that carries `shared_values` (a request's own;
    the copies made for comprehensions and for other table cells carry none)."""

    def shared(a: Mapping[str, Any]) -> Any:
        memo = getattr(a, "shared_values", None)
        if memo is None:
            return inner(a)
        if name in memo:
            value = memo[name]
            if isinstance(value, _Raised):
                raise value.error.with_traceback(None)
            return value
        try:
            value = inner(a)
        except Exception as exc:
            memo[name] = _Raised(exc)
            raise
        memo[name] = value
        return value

    return shared


class _Raised:
    __slots__ = ("error",)

    def __init__(self, error: Exception):
        self.error = error


def _must_bool(value: Any) -> bool:
    if type(value) is not bool:
        raise _overload()
    return value


def _conditional(condition: Closure, then: Closure, otherwise: Closure) -> Closure:
    def conditional(a: Mapping[str, Any]) -> Any:
        chosen = condition(a)
        if chosen is True:
            return then(a)
        if chosen is False:
            return otherwise(a)
        raise _overload()

    return conditional


def _logical(operands: list[Closure], decisive: bool) -> Closure:
    """`&&` (decisive false) and `||` (decisive true) over a chain: commutative, so an error
    stands only if no operand decides, and a non-boolean operand is an error."""

    if len(operands) == 2:
        return _logical_pair(operands[0], operands[1], decisive)

    def logical(a: Mapping[str, Any]) -> bool:
        error: Exception | None = None
        for operand in operands:
            try:
                value = operand(a)
            except Exception as exc:
                error = error or exc
                continue
            if value is decisive:
                return decisive
            if type(value) is not bool:
                error = error or _overload()
        if error is not None:
            raise error
        return not decisive

    return logical


def _logical_pair(first: Closure, second: Closure, decisive: bool) -> Closure:
    """The commonest chain, `a || b` or `a && b`, unrolled (it runs for most rules)."""

    def logical(a: Mapping[str, Any]) -> bool:
        try:
            value = first(a)
        except Exception as exc:
            error: Exception | None = exc
        else:
            if value is decisive:
                return decisive
            error = None if type(value) is bool else _overload()
        value = second(a)  # an error here stands, as does the first one
        if value is decisive:
            return decisive
        if error is not None:
            raise error
        if type(value) is not bool:
            raise _overload()
        return not decisive

    return logical


_SCALARS = (str, int, float, bool, type(None))


def _compare_to_constant(operand: Closure, constant: Any, negate: bool) -> Closure:
    """`x == 'literal'` (and `!=`), the commonest test in rules, without the general equality."""
    kind = type(constant)

    def compare(a: Mapping[str, Any]) -> bool:
        value = operand(a)
        same = value == constant if type(value) is kind else equal(value, constant)
        return not same if negate else same

    return compare


# ------------------------------------------------------------------ tree helpers


_NOT_CONSTANT = object()


def _constant_of(node: Any) -> Any:
    """A literal's value, or a list literal's when every item is a literal (closures never
    change a list they are given, so one list serves every evaluation)."""
    node = _unwrap(node)
    if is_tree(node) and node.data == "literal":
        return literal_value(node.children[0])
    if is_tree(node) and node.data == "list_lit":
        items = [_constant_of(child) for child in _items(node)]
        return _NOT_CONSTANT if any(item is _NOT_CONSTANT for item in items) else items
    return _NOT_CONSTANT


def _items(node: Any) -> list[Any]:
    """The children of an exprlist or mapinits (or of a literal that holds one)."""
    if node is None:
        return []
    if is_tree(node) and node.data in ("list_lit", "map_lit"):
        return _items(node.children[0]) if node.children else []
    return list(node.children)


def _bare_name(node: Any) -> str:
    node = _unwrap(node)
    if is_tree(node) and node.data == "ident":
        return node.children[0].value
    raise Unsupported("comprehension variable")


def literal_value(token: lark.Token) -> Any:
    kind, text = token.type, token.value
    if kind == "BOOL_LIT":
        return text == "true"
    if kind == "NULL_LIT":
        return None
    if kind == "INT_LIT":
        negative = text.startswith("-")
        digits = text.lstrip("-")
        value = int(digits, 16) if digits[:2].lower() == "0x" else int(digits, 10)
        value = -value if negative else value
        if not INT64_MIN <= value <= INT64_MAX:
            raise Unsupported("int literal out of range")
        return value
    if kind == "FLOAT_LIT":
        return float(text)
    if kind in ("STRING_LIT", "MLSTRING_LIT", "BYTES_LIT"):
        try:
            return literal_text(text)
        except ValueError as exc:  # the loader refused it already (cel/compiler.py)
            raise Unsupported(str(exc)) from None
    raise Unsupported(kind)  # UINT_LIT


# ------------------------------------------------------------------ string and bytes literals


_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "?": "?",
    '"': '"',
    "'": "'",
    "`": "`",
}
_HEX = frozenset("0123456789abcdefABCDEF")


def literal_text(text: str) -> str | bytes:
    """A string or bytes literal's value, its escapes read as the CEL specification defines
    them (docs/cel.md "String and bytes literals"); a bad escape is a ValueError."""
    prefix_end = 0
    while text[prefix_end] not in "'\"":
        prefix_end += 1
    prefix = text[:prefix_end].lower()
    is_bytes, raw = "b" in prefix, "r" in prefix
    body = text[prefix_end:]
    quote = body[:3] if body[:3] in ("'''", '"""') else body[0]
    content = body[len(quote) : -len(quote)]
    if raw or "\\" not in content:
        return content.encode("utf-8") if is_bytes else content
    return _unescape(content, is_bytes)


def _unescape(content: str, is_bytes: bool) -> str | bytes:
    out: list[Any] = []  # str pieces; in a bytes literal, ints are single octets
    i, end = 0, len(content)
    while i < end:
        char = content[i]
        if char != "\\":
            out.append(char)
            i += 1
            continue
        if i + 1 >= end:
            raise ValueError("a string literal ends with a lone backslash")
        code = content[i + 1]
        if code in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[code])
            i += 2
        elif code in "xX":
            digits = content[i + 2 : i + 4]
            if len(digits) != 2 or not set(digits) <= _HEX:
                raise ValueError(f"\\{code} needs two hex digits")
            value = int(digits, 16)
            out.append(value if is_bytes else chr(value))
            i += 4
        elif code in "0123":
            digits = content[i + 1 : i + 4]
            if len(digits) != 3 or not set(digits) <= set("01234567"):
                raise ValueError("an octal escape needs three digits, \\000 to \\377")
            value = int(digits, 8)
            out.append(value if is_bytes else chr(value))
            i += 4
        elif code in "uU" and not is_bytes:
            width = 4 if code == "u" else 8
            digits = content[i + 2 : i + 2 + width]
            if len(digits) != width or not set(digits) <= _HEX:
                raise ValueError(f"\\{code} needs {width} hex digits")
            value = int(digits, 16)
            if value > 0x10FFFF or 0xD800 <= value <= 0xDFFF:
                raise ValueError(f"\\{code}{digits} is not a Unicode code point")
            out.append(chr(value))
            i += 2 + width
        else:
            what = "in a bytes literal" if code in "uU" else "in a string literal"
            raise ValueError(f"invalid escape \\{code} {what}")
    if not is_bytes:
        return "".join(out)
    data = bytearray()
    for piece in out:
        if type(piece) is int:
            data.append(piece)
        else:
            data += piece.encode("utf-8")
    return bytes(data)


def canonical_literal(value: str | bytes) -> tuple[str, str]:
    """(token type, text) spelling `value` with only the escapes cel-python's interpreter reads
    right (`\\\\`, `\\"`, `\\u`, `\\U`; `\\x` in bytes): it keeps `\\X4c`, `\\?` and `\\``
    literally and drops a newline in `b'''…'''`, so literals reach it in this form."""
    out: list[str] = []
    if isinstance(value, bytes):
        out.extend(
            chr(byte) if 0x20 <= byte < 0x7F and byte not in (0x22, 0x5C) else f"\\x{byte:02x}" for byte in value
        )
        return "BYTES_LIT", 'b"' + "".join(out) + '"'
    for char in value:
        code = ord(char)
        if 0x20 <= code < 0x7F and char not in '"\\':
            out.append(char)
        else:
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
    return "STRING_LIT", '"' + "".join(out) + '"'
