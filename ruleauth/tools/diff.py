"""`ruleauth diff OLD NEW`: who gains or loses access to what when the rules change.

Both rule sets decide the same requests as API Gateway in front of the Lambda decides them
(`rule_tests.decide_case`, as `ruleauth test` decides its cases, offline claims standing in
for verified tokens: API Gateway's own 401 for a missing identity source, else the Lambda's
code path), and every difference in outcome, principal or context is reported.

The requests: every route pattern × method of both versions (ANY expands to API Gateway's
methods) at a concrete path, asked by every caller class; plus the `tests:` requests of both
versions. A caller class sets each variable the route's rules (of either version) and the
principal and context read to one of its interesting values: the literals the compiled CEL
trees compare it against (`==`, `in`, `startsWith`, an `exists` body...), a value none of
them, and missing; and an identity: no credential, a credential that is no JWT, a JWT of
each trusted issuer of either version, one of an issuer neither trusts. The product over
those variables covers every branch the rules contain (up to the cap, which is reported).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import itertools
import json
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruleauth.cel.closures import Unsupported, literal_value
from ruleauth.cel.compiler import Compiled
from ruleauth.cel.tree import access_chain, is_tree, string_literal, unwrap
from ruleauth.errors import BadEvent, LoadError
from ruleauth.model import REST_REQUEST, WEBSOCKET, WEBSOCKET_CONNECT, SourcePos
from ruleauth.reasons import Outcome, Reason
from ruleauth.rules.ruleset import Expectation, RuleSet, TestCase
from ruleauth.runtime.events import parse_event
from ruleauth.tools.local_gateway import identity_sources
from ruleauth.tools.rule_tests import CaseInputError, decide_case
from ruleauth.tools.synthetic_events import event_for_test
from ruleauth.tools.template_check import methods_of, sample_path

MAX_CLASSES = 4096  # caller classes per route × method, unless --max-classes says otherwise
MAX_SUBSETS = 4  # a list variable with more element literals gets singletons, not all subsets
GRANT, REVOKE, PRINCIPAL, CONTEXT, REFUSAL = "grant", "revoke", "principal", "context", "refusal"
# What a change means for --exit-code: a refusal that changes form (403 ↔ 401) is shown, but
# the caller is refused before and after.
ACCESS_CHANGES = (GRANT, REVOKE, PRINCIPAL, CONTEXT)
ACCESS_ORDER = (REVOKE, GRANT, PRINCIPAL, CONTEXT, REFUSAL)  # the order rows are shown in
MARKS = {GRANT: "+", REVOKE: "-", PRINCIPAL: "~", CONTEXT: "~", REFUSAL: "~"}
ANY_VALUE = "*"
NOT_APPLICABLE = "-"
OTHER = "other"
UNKNOWN_ISSUER = "https://issuer-neither-version-trusts.invalid"
OPAQUE_CREDENTIAL = "opaque-credential"
DEFAULT_SUB = "caller-1"
_WHERE = SourcePos("<ruleauth diff>", 1, 1)
_MISSING = object()
# Variables a caller class sets: claims and scopes (JWT callers), request maps and source_ip.
_REQUEST_MAPS = ("headers", "query", "cookies", "stage_variables")
_STRING_METHODS = ("startsWith", "endsWith", "contains")
_SAME_VALUE = ("lowerAscii", "upperAscii", "trim")  # a literal in their result's form is its own result
_SPLIT = "\0split"  # marks a chain read through .split(): its elements come from the string
_MACROS = ("exists", "all", "exists_one", "filter", "map")


# -- what the expressions compare against -------------------------------------------------


@dataclass
class _Facts:
    """Per variable (a chain of names, e.g. ('claims', 'groups')): the scalar values and the
    list elements it is compared against, and whether it is read at all."""

    scalars: dict[tuple[str, ...], list[Any]] = field(default_factory=dict)
    elements: dict[tuple[str, ...], list[Any]] = field(default_factory=dict)

    def scalar(self, var: tuple[str, ...], value: Any) -> None:
        known = self.scalars.setdefault(var, [])
        if not any(_same(value, v) for v in known):
            known.append(value)

    def element(self, var: tuple[str, ...], value: Any) -> None:
        known = self.elements.setdefault(var, [])
        if not any(_same(value, v) for v in known):
            known.append(value)


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def _literal(node: Any) -> Any:
    """The value of a literal (string, number, bool) under `node`'s wrappers, else _MISSING."""
    text = string_literal(node)
    if text is not None:
        return text
    inner = unwrap(node)
    if is_tree(inner) and inner.data == "literal" and inner.children:
        token = inner.children[0]
        if getattr(token, "type", "") in ("INT_LIT", "FLOAT_LIT", "BOOL_LIT"):
            try:  # read as the rules' own closures read it, int64 range included
                return literal_value(token)
            except (Unsupported, ValueError):
                return _MISSING
    return _MISSING


def _list_literal(node: Any) -> list[Any] | None:
    inner = unwrap(node)
    if not (is_tree(inner) and inner.data == "list_lit"):
        return None
    items = inner.children[0].children if inner.children and is_tree(inner.children[0]) else []
    values = [_literal(item) for item in items]
    return [v for v in values if v is not _MISSING]


def _chain(node: Any, bound: Mapping[str, tuple[str, ...]]) -> tuple[str, ...] | None:
    """The variable a node reads (its names, root first; a macro's variable as its list's
    elements, marked by a trailing '[]'), or None when it is not a plain read."""
    current = node
    while True:
        found = access_chain(current) if is_tree(current) else None
        if found is not None:
            names, dynamic = found
            if dynamic or None in names:
                return None
            root = str(names[0])
            rest = tuple(str(n) for n in names[1:])
            if root in bound:
                return (*bound[root], "[]", *rest) if rest else (*bound[root], "[]")
            return (root, *rest)
        if is_tree(current) and current.data == "ident" and current.children:
            root = str(current.children[0])
            return (*bound[root], "[]") if root in bound else (root,)
        if is_tree(current) and current.data == "member_dot_arg" and len(current.children) >= 2:
            method = str(current.children[1])
            if method in _SAME_VALUE and (len(current.children) < 3 or current.children[2] is None):
                current = current.children[0]  # 'admin' is its own lowerAscii(): the literal serves
                continue
            if method == "split":
                target = _chain(current.children[0], bound)
                return None if target is None else (*target, _SPLIT)
            return None
        if is_tree(current) and len(current.children) == 1:
            current = current.children[0]
            continue
        return None


def _collect(tree: Any, facts: _Facts, bound: Mapping[str, tuple[str, ...]] | None = None) -> None:
    bound = dict(bound or {})
    stack: list[tuple[Any, Mapping[str, tuple[str, ...]]]] = [(tree, bound)]
    while stack:
        node, names = stack.pop()
        if not is_tree(node):
            continue
        kids = [c for c in node.children if c is not None]
        if node.data == "relation" and len(kids) == 2 and is_tree(kids[0]) and kids[0].data.startswith("relation_"):
            _relation(kids[0].data, kids[0].children[0], kids[1], names, facts)
        elif node.data == "member_dot_arg" and len(kids) >= 2:
            target, method = kids[0], str(kids[1])
            args = list(kids[2].children) if len(kids) > 2 and is_tree(kids[2]) else []
            var = _chain(target, names)
            if method in _MACROS and len(args) == 2 and var is not None:
                variable = _chain(args[0], {})
                if variable is not None and len(variable) == 1:
                    stack.append((args[1], {**names, variable[0]: var}))
                    stack.append((target, names))
                    continue
            if method in _STRING_METHODS and len(args) == 1 and var is not None:
                value = _literal(args[0])
                if isinstance(value, str):
                    _found(facts, var, value)
        stack.extend((child, names) for child in kids)


def _found(facts: _Facts, var: tuple[str, ...], value: Any) -> None:
    if _SPLIT in var:
        return  # a split string is compared as a whole list: no one value for the string
    if var and var[-1] == "[]":
        facts.element(var[:-1], value)
    else:
        facts.scalar(var, value)


def _relation(op: str, left: Any, right: Any, names: Mapping[str, tuple[str, ...]], facts: _Facts) -> None:
    lvar, rvar = _chain(left, names), _chain(right, names)
    lval, rval = _literal(left), _literal(right)
    if op == "relation_in":
        if lvar is not None and (values := _list_literal(right)) is not None:
            for value in values:
                _found(facts, lvar, value)
        elif rvar is not None and lval is not _MISSING and rvar[-1] == _SPLIT:
            if _SPLIT not in rvar[:-1]:
                facts.scalar(rvar[:-1], lval)  # 'x' in claims.roles.split(','): the string 'x' holds it
        elif rvar is not None and lval is not _MISSING and _SPLIT not in rvar:
            facts.element(rvar, lval)  # 'admin' in claims.groups
        return
    for var, value in ((lvar, rval), (rvar, lval)):
        if var is None or value is _MISSING:
            continue
        if op in ("relation_eq", "relation_ne") or isinstance(value, bool):
            _found(facts, var, value)
        elif isinstance(value, (int, float)):
            for near in (value - 1, value, value + 1):
                _found(facts, var, near)
    if lvar is not None and rvar is not None and op in ("relation_eq", "relation_ne"):
        # Two variables compared: give both one shared value, so a class has them equal.
        for var, other in ((lvar, rvar), (rvar, lvar)):
            _found(facts, var, _shared_value(other))


def _shared_value(var: tuple[str, ...]) -> str:
    # A path parameter's value is its name at the sample path (template_check.sample_path).
    if var[:2] == ("request", "params") and len(var) == 3:
        return var[2]
    return "shared-value"


def expressions(ruleset: RuleSet) -> Iterator[Compiled]:
    for compiled in (ruleset.principal, *ruleset.context.values(), ruleset.usage_identifier_key):
        if compiled is not None:
            yield compiled


def compared_values(compiled: Iterable[Compiled]) -> _Facts:
    """What these expressions compare their variables with: for one route, its rules' (of
    both versions) and the principal's and context's, so values another route's rule
    compares with never multiply this route's caller classes."""
    facts = _Facts()
    for expression in compiled:
        if expression.tree is not None:
            _collect(expression.tree, facts)
    return facts


# -- caller classes ----------------------------------------------------------------------


@dataclass(frozen=True)
class Value:
    label: str
    value: Any  # _MISSING: the variable is absent


@dataclass(frozen=True)
class Dimension:
    name: str
    var: tuple[str, ...]
    values: tuple[Value, ...]
    jwt_only: bool = False


def _label(value: Any) -> str:
    if value is _MISSING:
        return "missing"
    if isinstance(value, list):
        return "[" + ", ".join(_label(v) for v in value) + "]"
    if isinstance(value, str):
        return repr(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


class _Invented(str):
    """A value no expression names ("none of them"): never listed among what a row lacks."""


def _other(known: Sequence[Any]) -> _Invented:
    text = OTHER
    while any(isinstance(k, str) and text == k for k in known):
        text += "-x"
    return _Invented(text)


def _subsets(elements: Sequence[Any]) -> list[list[Any]]:
    if len(elements) <= MAX_SUBSETS:
        return [list(c) for n in range(len(elements) + 1) for c in itertools.combinations(elements, n)]
    # Too many for every subset: none, each alone, all, and all but each one.
    subsets = [[], *([e] for e in elements), list(elements)]
    subsets += [[e for e in elements if e is not left] for left in elements]
    return subsets


def _values(var: tuple[str, ...], facts: _Facts) -> tuple[Value, ...]:
    scalars = facts.scalars.get(var, [])
    elements = facts.elements.get(var, [])
    values: list[Any] = list(scalars)
    if var[:2] == ("request", "source_ip"):
        # Always present (API Gateway sets it): the addresses compared with, and another one.
        addresses = [v for v in values if isinstance(v, str) and _is_ip(v)]
        addresses.append(next(a for a in ("198.51.100.7", "203.0.113.9") if a not in addresses))
        return tuple(Value(_label(v), v) for v in addresses)
    if elements or var == ("scopes",):
        values += _subsets(elements)
        values.append([_other(elements)])
    if scalars or not elements:
        values.append(_other(scalars))  # none of the values compared with
    values.append(_MISSING)
    return tuple(Value(_label(v), v) for v in values)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _settable(var: tuple[str, ...], rulesets: Sequence[RuleSet]) -> bool:
    """Whether a caller class can set this variable (the credential itself is never one)."""
    if var[0] == "scopes":
        return len(var) == 1
    if var[0] == "claims":
        return len(var) >= 2 and var[1] not in ("iss", "scope", "scp")
    if var[0] == "request" and len(var) == 3 and var[1] in _REQUEST_MAPS:
        for ruleset in rulesets:
            token = ruleset.token
            credential = {"headers": token.header, "query": token.query, "cookies": token.cookie}.get(var[1])
            if credential is not None and credential.lower() == var[2].lower():
                return False
        return True
    return var[:2] == ("request", "source_ip") and len(var) == 2


def identity_values(rulesets: Sequence[RuleSet]) -> tuple[Value, ...]:
    values = [Value("no credential", None), Value("a credential that is no JWT", OPAQUE_CREDENTIAL)]
    issuers: list[str] = []
    for ruleset in rulesets:
        issuers += [p.issuer for p in ruleset.providers if p.issuer not in issuers]
    values += [Value(f"JWT from {issuer}", {"iss": issuer}) for issuer in issuers]
    if issuers:
        values.append(Value("JWT from an issuer neither version trusts", {"iss": UNKNOWN_ISSUER}))
    return tuple(values)


def dimensions_for(reads: Iterable[tuple[str, ...]], facts: _Facts, rulesets: Sequence[RuleSet]) -> list[Dimension]:
    dims = [Dimension("identity", ("identity",), identity_values(rulesets))]
    seen: set[tuple[str, ...]] = set()
    for var in sorted(set(reads)):
        if var in seen or not _settable(var, rulesets):
            continue
        seen.add(var)
        dims.append(Dimension(variable_name(var), var, _values(var, facts), jwt_only=var[0] in ("claims", "scopes")))
    return dims


def variable_name(var: tuple[str, ...]) -> str:
    """('request', 'headers', 'x-t') → request.headers['x-t']; ('claims', 'org', 'id') → claims.org.id."""
    if var[0] == "request" and len(var) == 3 and var[1] in _REQUEST_MAPS:
        return f"request.{var[1]}[{var[2]!r}]"
    return ".".join(var)


def reads_of(compiled: Compiled, facts: _Facts) -> set[tuple[str, ...]]:
    """The variables an expression reads: its recorded reads, deepened to the claim paths it
    compares against."""
    found: set[tuple[str, ...]] = set()
    for read in compiled.reads:
        root, _, rest = read.input.partition(".")
        if root == "claims" and read.key is not None:
            found.add(("claims", read.key))
        elif root == "request" and rest in _REQUEST_MAPS and read.key is not None:
            found.add(("request", rest, read.key))
        elif root == "request" and rest == "source_ip":
            found.add(("request", "source_ip"))
        elif root == "scopes":
            found.add(("scopes",))
    deeper = [v for v in (*facts.scalars, *facts.elements) if v[0] == "claims" and len(v) > 2]
    for var in deeper:
        if var[:2] in found:
            found.discard(var[:2])
            found.add(var)
    return found


def identity_source_reads(rulesets: Sequence[RuleSet]) -> set[tuple[str, ...]]:
    """The headers and query parameters either version names as identity sources: API Gateway
    answers 401 itself when one is missing, so a caller class has each present or missing
    even where no expression reads it (the credential's own is the identity)."""
    found: set[tuple[str, ...]] = set()
    for ruleset in rulesets:
        headers, query = identity_sources(ruleset, REST_REQUEST)
        found |= {("request", "headers", name.lower()) for name in headers}
        found |= {("request", "query", name) for name in query}
    return found


@dataclass(frozen=True)
class CallerClass:
    labels: tuple[tuple[str, str], ...]  # (dimension, value label), in dimension order
    request: Mapping[str, Any]
    claims: Mapping[str, Any] | None
    test: str | None = None  # a `tests:` case's name and position
    case: TestCase | None = None  # that case, asked as `ruleauth test` asks it

    def describe(self) -> str:
        if self.test is not None:
            return self.test
        shown = [f"{name}={label}" for name, label in self.labels if label not in (ANY_VALUE, NOT_APPLICABLE)]
        return ", ".join(shown) if shown else "every caller"


def _set_path(target: dict[str, Any], path: Sequence[str], value: Any) -> None:
    for key in path[:-1]:
        nested = target.get(key)
        if not isinstance(nested, dict):
            nested = target[key] = {}
        target = nested
    target[path[-1]] = value


def _plain(value: Any) -> Any:
    """A caller's value as a token or request carries it: plain str, never _Invented."""
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return str(value) if isinstance(value, str) else value


def caller_class(dims: Sequence[Dimension], choice: Sequence[Value], method: str, path: str) -> CallerClass:
    identity = choice[0].value
    jwt = isinstance(identity, dict)
    claims: dict[str, Any] | None = {"sub": DEFAULT_SUB, **identity} if jwt else None
    request: dict[str, Any] = {
        "method": method,
        "path": path,
        "headers": {},
        "query": {},
        "cookies": {},
        "stage_variables": {},
    }
    if isinstance(identity, str):
        request["token"] = identity
    labels = [("identity", choice[0].label)]
    for dim, value in zip(dims[1:], choice[1:], strict=True):
        labels.append((dim.name, value.label if (jwt or not dim.jwt_only) else NOT_APPLICABLE))
        if dim.jwt_only and not jwt:
            continue
        if value.value is _MISSING:
            if claims is not None and dim.var[0] == "claims" and len(dim.var) == 2:
                claims.pop(dim.var[1], None)  # the default `sub` too: missing is missing
            continue
        plain = _plain(value.value)
        if dim.var == ("scopes",):
            assert claims is not None
            claims["scope"] = " ".join(str(s) for s in plain)
        elif dim.var[0] == "claims":
            assert claims is not None
            _set_path(claims, [k for k in dim.var[1:] if k != "[]"], plain)
        elif dim.var[1] == "source_ip":
            request["source_ip"] = plain
        else:
            request[dim.var[1]][dim.var[2]] = _text(plain)
    return CallerClass(tuple(labels), request, claims)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def classes_for(dims: Sequence[Dimension], method: str, path: str, cap: int) -> tuple[list[CallerClass], int]:
    """Every caller class over `dims` (an identity without a JWT fixes the JWT-only variables),
    or, past `cap`, `cap` of them that still give each value of each variable with each
    identity. Returns (the classes, how many there are in all)."""
    plans: list[tuple[Value, list[list[Value]]]] = []
    total = 0
    for identity in dims[0].values:
        jwt = isinstance(identity.value, dict)
        pools = [list(d.values) if (jwt or not d.jwt_only) else [d.values[-1]] for d in dims[1:]]
        plans.append((identity, pools))
        count = 1
        for pool in pools:
            count *= len(pool)
        total += count
    if total <= cap:
        classes = [
            caller_class(dims, (identity, *combo), method, path)
            for identity, pools in plans
            for combo in itertools.product(*pools)
        ]
        return classes, total
    wanted: list[tuple[int, tuple[int, ...]]] = []
    for n, (_identity, pools) in enumerate(plans):
        base = tuple(0 for _ in pools)
        wanted += [(n, (*base[:i], j, *base[i + 1 :])) for i, pool in enumerate(pools) for j in range(len(pool))]
    rng = random.Random(0)  # a sample, but the same one on every run
    for _ in range(cap * 2):
        n = rng.randrange(len(plans))
        wanted.append((n, tuple(rng.randrange(len(pool)) for pool in plans[n][1])))
    picked: dict[tuple[int, tuple[int, ...]], None] = {}
    for key in wanted:
        if len(picked) >= cap:
            break
        picked.setdefault(key, None)
    classes = []
    for n, indexes in picked:
        identity, pools = plans[n]
        combo = tuple(pool[k] for pool, k in zip(pools, indexes, strict=True))
        classes.append(caller_class(dims, (identity, *combo), method, path))
    return classes, total


# -- deciding and comparing -------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    decision: str
    reason: str
    status: int
    rule: str | None
    route: str | None
    principal: str | None
    context: Mapping[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "reason": self.reason,
            "status": self.status,
            "rule": self.rule,
            "route": self.route,
            "principal": self.principal if self.decision == Outcome.ALLOW else None,
            "context": dict(self.context) if self.decision == Outcome.ALLOW else None,
        }


def answer(authorizer: Any, caller: CallerClass) -> Answer:
    case = caller.case or TestCase(
        "diff",
        _WHERE,
        Expectation(Outcome.ALLOW),
        request=caller.request,
        claims=caller.claims,
        event_type=WEBSOCKET if caller.request.get("path") == WEBSOCKET_CONNECT else None,
    )
    try:
        decided = decide_case(authorizer, case)
    except CaseInputError as exc:
        # A tests: case whose event file cannot be read: as the authorizer answers a bad event.
        return Answer(Outcome.DENY, Reason.BAD_EVENT, 0, None, None, None, {"error": str(exc)})
    allowed = decided.status == 200
    return Answer(
        Outcome.ALLOW if allowed else decided.outcome,
        decided.reason,
        decided.status,
        decided.rule,
        decided.route,
        decided.principal,
        dict(decided.context),
    )


def change_kind(old: Answer, new: Answer) -> str | None:
    was, now = old.decision == Outcome.ALLOW, new.decision == Outcome.ALLOW
    if now and not was:
        return GRANT
    if was and not now:
        return REVOKE
    if was and now:
        if old.principal != new.principal:
            return PRINCIPAL
        if old.context != new.context:
            return CONTEXT
        return None
    return REFUSAL if old.status != new.status else None


@dataclass
class Change:
    method: str
    path: str
    kind: str
    caller: CallerClass
    old: Answer
    new: Answer
    classes: int = 1  # how many caller classes this row stands for, once merged

    def summary(self) -> str:
        if self.kind in (GRANT, REVOKE, REFUSAL):
            return f"{_outcome(self.old)} → {_outcome(self.new)}"
        if self.kind == PRINCIPAL:
            return f"principal {self.old.principal!r} → {self.new.principal!r}"
        keys = sorted(set(self.old.context) | set(self.new.context))
        moved = [k for k in keys if self.old.context.get(k, _MISSING) != self.new.context.get(k, _MISSING)]
        return "; ".join(
            f"context.{k} {_shown(self.old.context.get(k, _MISSING))} → {_shown(self.new.context.get(k, _MISSING))}"
            for k in moved
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "kind": self.kind,
            "caller": self.caller.describe(),
            "variables": dict(self.caller.labels),
            "test": self.caller.test,
            "classes": self.classes,
            "old": self.old.as_dict(),
            "new": self.new.as_dict(),
        }


def _outcome(answer: Answer) -> str:
    if answer.decision == Outcome.ALLOW:
        return Outcome.ALLOW
    return f"{answer.decision} ({answer.reason}, {answer.status})"


def _shown(value: Any) -> str:
    return "absent" if value is _MISSING else repr(value)


@dataclass
class RouteReport:
    method: str
    path: str
    old_route: str | None
    new_route: str | None
    old_rule: str | None
    new_rule: str | None
    classes: int = 0
    total: int = 0
    changes: list[Change] = field(default_factory=list)

    @property
    def capped(self) -> bool:
        return self.total > self.classes

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "old": {"route": self.old_route, "rule": self.old_rule},
            "new": {"route": self.new_route, "rule": self.new_rule},
            "classes_explored": self.classes,
            "classes_total": self.total,
            "changes": [c.as_dict() for c in self.changes],
        }


@dataclass
class Report:
    old: str
    new: str
    routes: list[RouteReport]
    cap: int

    @property
    def changes(self) -> list[Change]:
        return [c for r in self.routes for c in r.changes]

    @property
    def access_changed(self) -> bool:
        return any(c.kind in ACCESS_CHANGES for c in self.changes)

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys((GRANT, REVOKE, PRINCIPAL, CONTEXT, REFUSAL), 0)
        for change in self.changes:
            counts[change.kind] += change.classes
        return counts

    def as_dict(self) -> dict[str, Any]:
        return {
            "old": self.old,
            "new": self.new,
            "access_changed": self.access_changed,
            "routes_explored": len(self.routes),
            "classes_explored": sum(r.classes for r in self.routes),
            "cap": self.cap,
            "capped": [f"{r.method} {r.path}".strip() for r in self.routes if r.capped],
            "counts": self.counts(),
            "routes": [r.as_dict() for r in self.routes if r.changes],
        }


def requests_of(rulesets: Sequence[RuleSet]) -> list[tuple[str, str]]:
    """Every route pattern × method of the rule sets, at a concrete path, in first-seen order."""
    found: list[tuple[str, str]] = []
    for ruleset in rulesets:
        for route, _rule in ruleset.router.entries:
            for method in ("",) if route.websocket else methods_of(route.method):
                key = (method, sample_path(route))
                if key not in found:
                    found.append(key)
    return found


def _match(ruleset: RuleSet, method: str, path: str) -> tuple[str | None, Any]:
    match = ruleset.router.find(method, path)
    return (str(match.route), match.target) if match else (None, None)


def diff(
    old: Any, new: Any, old_name: str, new_name: str, cap: int = MAX_CLASSES, names: Mapping[str, str] | None = None
) -> Report:
    """Compare two loaded Authorizers; `names` shows copied files by their own names."""
    names = names or {}
    rulesets = (old.ruleset, new.ruleset)
    callers = [c for ruleset in rulesets for c in expressions(ruleset)]
    routes: dict[tuple[str, str], RouteReport] = {}
    for method, path in requests_of(rulesets):
        report = _route_report(old, new, method, path)
        matched = [_match(ruleset, method, path)[1] for ruleset in rulesets]
        used = callers + [rule.allow for rule in matched if rule is not None]
        facts = compared_values(used)
        reads: set[tuple[str, ...]] = set()
        for compiled in used:
            reads |= reads_of(compiled, facts)
        reads |= identity_source_reads(rulesets)
        dims = dimensions_for(reads, facts, rulesets)
        classes, report.total = classes_for(dims, method, path, cap)
        report.classes = len(classes)
        for caller in classes:
            _compare(report, old, new, caller)
        report.changes = merge(report.changes, dims)
        routes[(method, path)] = report
    asked: set[str] = set()
    for ruleset in rulesets:
        for case in ruleset.tests:
            # A case both versions have (the same request, claims and time) is asked once.
            key = _case_key(case)
            if key in asked:
                continue
            asked.add(key)
            method, path = _asked(ruleset, case)
            if (method, path) not in routes:
                routes[(method, path)] = _route_report(old, new, method, path)
            report = routes[(method, path)]
            report.classes += 1
            report.total += 1
            pos = case.pos
            where = dataclasses.replace(pos, file=names.get(pos.file, pos.file)) if pos is not None else pos
            tested = CallerClass((), dict(case.request), case.claims, f"test {case.name!r} ({where})", case)
            _compare(report, old, new, tested)
    for report in routes.values():
        report.changes.sort(key=lambda c: (ACCESS_ORDER.index(c.kind), c.caller.test is not None, c.caller.describe()))
    return Report(old_name, new_name, list(routes.values()), cap)


def _route_report(old: Any, new: Any, method: str, path: str) -> RouteReport:
    old_route, old_rule = _match(old.ruleset, method, path)
    new_route, new_rule = _match(new.ruleset, method, path)
    return RouteReport(
        method,
        path,
        old_route,
        new_route,
        old_rule.name if old_rule else None,
        new_rule.name if new_rule else None,
    )


def _case_key(case: TestCase) -> str:
    event: Any = case.event
    if case.event:
        try:
            event = Path(case.event).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            pass  # asked anyway: both versions report the unreadable file alike
    return json.dumps([case.request, case.claims, case.now, case.event_type, event], sort_keys=True, default=str)


def _asked(ruleset: RuleSet, case: TestCase) -> tuple[str, str]:
    """The method and path a case asks, as the Lambda parses its event."""
    try:
        request = parse_event(event_for_test(ruleset, case))
    except (BadEvent, OSError, ValueError):
        return str(case.request.get("method") or "GET").upper(), str(case.request.get("path") or "/")
    return request.method, request.path


def _compare(report: RouteReport, old: Any, new: Any, caller: CallerClass) -> None:
    before, after = answer(old, caller), answer(new, caller)
    kind = change_kind(before, after)
    if kind is not None:
        report.changes.append(Change(report.method, report.path, kind, caller, before, after))


def merge(changes: list[Change], dims: Sequence[Dimension]) -> list[Change]:
    """Rows that differ only in one variable and together cover all its values become one row
    with that variable `*`; for a list variable, rows that cover every list holding one
    element become one row "has 'e'". Repeated for each variable. Test rows stay as they are."""
    tests = [c for c in changes if c.caller.test is not None]
    rows = [c for c in changes if c.caller.test is None]
    for index, dim in enumerate(dims):
        everything = {v.label for v in dim.values}
        lists = {v.label: v.value for v in dim.values if isinstance(v.value, list)}
        groups: dict[tuple[Any, ...], list[Change]] = {}
        for row in rows:
            labels = row.caller.labels
            key = (row.kind, row.summary(), labels[:index], labels[index + 1 :])
            groups.setdefault(key, []).append(row)
        merged: list[Change] = []
        for group in groups.values():
            if len(group) > 1 and {row.caller.labels[index][1] for row in group} == everything:
                merged.append(_merged(group, index, dim.name, ANY_VALUE))
                continue
            described = _described(lists, {row.caller.labels[index][1] for row in group})
            if described is not None:
                label, covered = described
                chosen = [row for row in group if row.caller.labels[index][1] in covered]
                merged.append(_merged(chosen, index, dim.name, label))
                group = [row for row in group if row not in chosen]
            merged.extend(group)
        rows = merged
    return rows + tests


def _described(lists: Mapping[str, list[Any]], seen: set[str]) -> tuple[str, set[str]] | None:
    """For a list variable: "has a, b; lacks c" when the lists seen are exactly those holding
    a and b and not c, among the values explored (and the lists covered); else None."""
    chosen = [lists[label] for label in seen if label in lists]
    if not chosen:
        return None
    elements = list(dict.fromkeys(e for value in lists.values() for e in value))
    has = [e for e in elements if all(e in value for value in chosen)]
    lacks = [e for e in elements if not any(e in value for value in chosen)]
    fits = {
        label for label, value in lists.items() if all(e in value for e in has) and not any(e in value for e in lacks)
    }
    if fits != {label for label in seen if label in lists}:
        return None
    named = [e for e in lacks if not isinstance(e, _Invented)]
    parts = ([f"has {', '.join(_label(e) for e in has)}"] if has else []) + (
        [f"lacks {', '.join(_label(e) for e in named)}"] if named else []
    )
    if "missing" in seen and not has:
        fits.add("missing")  # a missing list holds nothing, as an empty one
        parts.append("or missing")
    return " ".join(parts) or "any list", fits


def _merged(group: list[Change], index: int, name: str, label: str) -> Change:
    first = group[0]
    labels = (*first.caller.labels[:index], (name, label), *first.caller.labels[index + 1 :])
    caller = CallerClass(labels, first.caller.request, first.caller.claims)
    return Change(first.method, first.path, first.kind, caller, first.old, first.new, sum(r.classes for r in group))


# -- text output -------------------------------------------------------------------------


def text_lines(report: Report) -> list[str]:
    out: list[str] = []
    for route in report.routes:
        if not route.changes:
            continue
        where = f"{route.method} {route.path}".strip()
        old = f"{route.old_route} (rule {route.old_rule!r})" if route.old_route else "no route"
        new = f"{route.new_route} (rule {route.new_rule!r})" if route.new_route else "no route"
        out.append(f"{where}    old: {old}    new: {new}")
        for change in route.changes:
            count = f" [{change.classes} classes]" if change.classes > 1 else ""
            out.append(f"  {MARKS[change.kind]} {change.kind:<9} {change.caller.describe()}{count}: {change.summary()}")
        out.append("")
    counts = report.counts()
    explored = sum(r.classes for r in report.routes)
    shown = ", ".join(f"{MARKS[k]}{n} {k}" for k, n in counts.items() if n)
    out.append(
        f"{len(report.routes)} requests (each route × method, and the tests' own), {explored} caller classes explored: "
        + (shown if shown else "no access changes")
    )
    out.extend(
        f"note: {route.method} {route.path}: {route.total} caller classes, more than the cap of "
        f"{report.cap}; {route.classes} were explored (each value of each variable at least once): "
        "raise --max-classes for the whole product"
        for route in report.routes
        if route.capped
    )
    return out


# -- inputs: files, directories, pipes (`<(git show ...)`) and `--git REV` ------------------


class InputError(LoadError):
    """An input that cannot be read or found: a usage error."""


@dataclass
class Inputs:
    """Rules paths to load, and the names to show for files copied into `workdir`."""

    workdir: Path
    names: dict[str, str] = field(default_factory=dict)

    def readable(self, path: Path, label: str) -> Path:
        """A path the loader reads: a file or directory as it is; anything else (a pipe such as
        /dev/fd/63 from `<(git show ...)`, which can be read once) copied into a file named
        for it, so its problems still point at lines."""
        if path.is_dir() or path.is_file():
            return path
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
        copy = self.workdir / label / (path.name + ".yaml")
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_bytes(data)
        self.names[str(copy)] = str(path)
        return copy

    def from_git(self, rev: str, path: Path) -> Path:
        """The rules at `path` as of git revision `rev`, written under the work directory."""
        where = path if path.is_dir() else path.parent
        top = Path(_git(where, "rev-parse", "--show-toplevel").decode().strip())
        try:
            relative = path.resolve().relative_to(top.resolve())
        except ValueError:
            raise InputError(f"{path} is not inside the git work tree {top}") from None
        listed = _git(top, "ls-tree", "-r", "--name-only", "-z", rev, "--", str(relative) or ".")
        files = [name for name in listed.decode().split("\0") if name]
        if not files:
            raise InputError(f"{relative} does not exist at git revision {rev}")
        base = self.workdir / "git"
        self.names[str(base / relative)] = f"{rev}:{relative}"
        for name in files:
            target = base / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(_git(top, "show", f"{rev}:{name}"))
            self.names[str(target)] = f"{rev}:{name}"
        return base / relative


def _git(where: Path, *args: str) -> bytes:
    import subprocess

    try:
        done = subprocess.run(["git", "-C", str(where), *args], capture_output=True, check=False)
    except OSError as exc:
        raise InputError(f"cannot run git: {exc.strerror or exc}") from None
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise InputError(f"git {args[0]} failed: {message[-1] if message else 'exit ' + str(done.returncode)}")
    return done.stdout
