"""Policies that stay right when API Gateway caches them (cache.mode identity).

API Gateway reuses a cached response for every route the same caller calls
next, so the response must answer for the whole route table. Each rule route
becomes a resource pattern built from the rule's template, never from the
request path (so a `*` or `?` in a path can never widen a grant, A3): `{id}`
and `{proxy+}` become `*`, and `ANY` expands to one pattern per method.

IAM's `*` matches any characters, `/` included, and an explicit Deny wins. So
`GET/orders/*` (for `GET /orders/{id}`) also covers `GET/orders/1/items`. The
table is analysed once at cold start on a pool of witness paths (every route
instantiated with a fresh value and with the literals of the routes around it):
for each Allow pattern we know which other routes' paths it also covers (they
get a Deny when the caller is denied there) and which deeper paths no rule
lists (they get a "gap" Deny `GET/orders/*/*` unless an allowed deeper route
needs them). Rule sets whose Deny would have to cover another route's allowed
paths cannot be expressed exactly: `validate` reports them; at run time the
conflict resolves to deny, never to allow.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Sequence

from .model import METHODS, WEBSOCKET_CONNECT
from .policy_eval import resource_matches
from .routes import GREEDY, LITERAL, PARAM, Route, Router
from .ruleset import Rule, RuleSet

MAX_WITNESSES_PER_ROUTE = 256
FRESH = ("x1", "x2")
# A long ARN prefix (the longest region, a 10-character API id, an 8-character stage): used to
# estimate sizes before the real prefix is known; a real response that does not fit falls
# back to a per-request policy, so the estimate only decides what validate reports.
PREFIX_ESTIMATE = len("arn:aws:execute-api:ap-southeast-2:123456789012:abcdefghij/") + 8 + 1
STATEMENT_OVERHEAD = len('{"Action":"execute-api:Invoke","Effect":"Allow","Resource":[]},')
ENVELOPE = len('{"principalId":"","policyDocument":{"Version":"2012-10-17","Statement":[]}}')


@dataclass(frozen=True)
class Entry:
    """One (concrete method, rule route) cell of the table."""

    index: int
    method: str  # "" for $connect
    route: Route
    rule: Rule
    pattern: str  # resource suffix after the stage: "GET/orders/*" or "$connect"

    @property
    def label(self) -> str:
        return str(self.route) if self.route.websocket else f"{self.method} {self.route.path}"


@dataclass(frozen=True)
class Conflict:
    """Denying `denied` needs a Deny that also covers paths where `allowed` decides."""

    denied: Entry
    allowed: Entry
    example: str


@dataclass
class RouteTable:
    entries: list[Entry]
    # deny_if_allowed[a]: entries whose paths pattern `a` also covers (they need a Deny when denied).
    deny_if_allowed: list[frozenset[int]]
    # gaps[a]: per parameter of `a`, candidate Denies for deeper unlisted paths, most general
    # first, as (pattern, blockers): a candidate is usable while none of its blockers is allowed.
    gaps: list[list[list[tuple[str, frozenset[int]]]]]
    conflicts: list[Conflict] = field(default_factory=list)
    uncovered_gaps: list[tuple[Entry, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._by_cell = {(e.method, id(e.route)): e for e in self.entries}

    def entry_for(self, method: str, route: Route) -> Entry | None:
        return self._by_cell.get((method, id(route)))

    def synthesise(self, allowed: Sequence[bool], asked: Entry | None) -> tuple[list[str], list[str]]:
        """Allow and Deny patterns for one caller, given each entry's rule decision."""
        allows = [e.pattern for e in self.entries if allowed[e.index]]
        denies: set[str] = set()
        for entry in self.entries:
            if not allowed[entry.index]:
                continue
            denies.update(self.entries[d].pattern for d in self.deny_if_allowed[entry.index] if not allowed[d])
            for candidates in self.gaps[entry.index]:
                for pattern, blockers in candidates:
                    if not any(allowed[b] for b in blockers):
                        denies.add(pattern)
                        break
        if asked is not None and not allowed[asked.index]:
            # An explicit Deny for the asked route gives callers the explicit-deny 403, as
            # hand-written authorizers do; only where it cannot shadow an allowed route.
            if not any(allowed[other] for other in self.deny_if_allowed[asked.index]):
                denies.add(asked.pattern)
        return reduce_patterns(allows), reduce_patterns(sorted(denies))


def route_pattern(method: str, route: Route) -> str:
    if route.websocket:
        return WEBSOCKET_CONNECT
    path = "/".join(s.text if s.kind == LITERAL else "*" for s in route.segments)
    return f"{method}/{path}"


def build_table(ruleset: RuleSet) -> RouteTable:
    entries: list[Entry] = []
    for rule in ruleset.rules:
        if rule.shadow:
            continue
        for route in rule.routes:
            methods = ("",) if route.websocket else (METHODS if route.method == "ANY" else (route.method,))
            for method in methods:
                entries.append(Entry(len(entries), method, route, rule, route_pattern(method, route)))
    routes = [e.route for e in entries]
    router: Router[Rule] = ruleset.router
    by_key = {(e.method, id(e.route)): e for e in entries}
    pool = _witness_pool(routes)
    methods = sorted({e.method for e in entries})
    # (method, path) → winning entry index or None (no rule: a gap).
    winners: dict[tuple[str, str], int | None] = {}
    for method in methods:
        for path in pool:
            if method == "" and path != WEBSOCKET_CONNECT:
                continue
            match = router.find(method, path)
            winners[(method, path)] = by_key[(method, id(match.route))].index if match else None
    by_method: dict[str, _Witnesses] = {}
    for (method, path), winner in winners.items():
        by_method.setdefault(method, _Witnesses()).add(f"{method}/{path.lstrip('/')}" if method else path, winner)

    deny_if_allowed: list[frozenset[int]] = []
    gaps: list[list[list[tuple[str, frozenset[int]]]]] = []
    blockers_of: dict[str, frozenset[int]] = {}
    uncovered: list[tuple[Entry, str]] = []
    covered_by: list[list[tuple[str, int | None]]] = []
    for entry in entries:
        witnesses = by_method.get(entry.method, _Witnesses())
        covered = witnesses.matching(entry.pattern)
        covered_by.append(covered)
        deny_if_allowed.append(frozenset(w for _, w in covered if w is not None and w != entry.index))
        entry_gaps = []
        for specific, general in _gap_patterns(entry):
            candidates = []
            for gap in (general, specific):
                if gap not in blockers_of:
                    blockers_of[gap] = frozenset(w for _, w in witnesses.matching(gap) if w is not None)
                candidates.append((gap, blockers_of[gap]))
            entry_gaps.append(candidates)
            if blockers_of[specific]:
                uncovered.append((entry, specific))
        gaps.append(entry_gaps)
    coverers: dict[int, list[int]] = {}
    for index, covered_entries in enumerate(deny_if_allowed):
        for covered_entry in covered_entries:
            coverers.setdefault(covered_entry, []).append(index)
    conflicts: list[Conflict] = []
    for denied in entries:
        # Denying `denied` takes a Deny only when another route's Allow covers its paths...
        needs_deny = any(
            not _decide_alike(entries[other].rule, denied.rule) for other in coverers.get(denied.index, ())
        )
        if not needs_deny:
            continue
        # ...and that Deny is wrong wherever it also covers paths another route allows.
        for text, winner in covered_by[denied.index]:
            if winner is not None and winner != denied.index and not _decide_alike(denied.rule, entries[winner].rule):
                conflicts.append(Conflict(denied, entries[winner], text))
                break
    return RouteTable(entries, deny_if_allowed, gaps, _unique_conflicts(conflicts), uncovered)


class _Witnesses:
    """Witness ARN suffixes of one method, sorted so a pattern only tests those sharing its literal prefix."""

    def __init__(self) -> None:
        self._items: list[tuple[str, int | None]] = []
        self._sorted = True

    def add(self, text: str, winner: int | None) -> None:
        self._items.append((text, winner))
        self._sorted = False

    def matching(self, pattern: str) -> list[tuple[str, int | None]]:
        if not self._sorted:
            self._items.sort(key=lambda item: item[0])
            self._keys = [text for text, _ in self._items]
            self._sorted = True
        prefix = pattern.split("*", 1)[0]
        start = bisect.bisect_left(self._keys, prefix)
        found = []
        for text, winner in self._items[start:]:
            if not text.startswith(prefix):
                break
            if resource_matches(pattern, text):
                found.append((text, winner))
        return found


def _decide_alike(a: Rule, b: Rule) -> bool:
    """Two rules that always give one caller the same answer never conflict."""
    if a is b:
        return True
    reads_route = any(r.input in ("request.method", "request.route") for r in a.allow.reads | b.allow.reads)
    return (not reads_route and a.allow.source.strip() == b.allow.source.strip()
            and a.auth == b.auth and a.providers == b.providers)


def _unique_conflicts(conflicts: list[Conflict]) -> list[Conflict]:
    seen: set[tuple[str, str]] = set()
    unique = []
    for conflict in conflicts:
        key = (conflict.denied.rule.name, conflict.allowed.rule.name)
        if key not in seen:
            seen.add(key)
            unique.append(conflict)
    return unique


def _gap_patterns(entry: Entry) -> list[tuple[str, str]]:
    """For each single-segment parameter, Denies for paths where its `*` spans two or more
    segments: the specific pattern (`GET/orders/*/*`) and a general one for every path at
    least that deep (`GET/*/*/*`), which many routes share, so one Deny can serve them all."""
    if entry.route.websocket:
        return []
    found = []
    count = len(entry.route.segments)
    general = f"{entry.method}/" + "/".join(["*"] * (count + 1))
    for index, segment in enumerate(entry.route.segments):
        if segment.kind != PARAM:
            continue
        parts = [s.text if s.kind == LITERAL else "*" for s in entry.route.segments]
        parts[index] = "*/*"
        found.append((f"{entry.method}/" + "/".join(parts), general))
    return found


def _witness_pool(routes: Sequence[Route]) -> list[str]:
    """Concrete paths to test patterns on: each route instantiated with fresh values and with
    the literals that other routes have at the same depth under the same prefix."""
    pool: set[str] = set()
    # Greedy parameters also get one tail deeper than any pattern reaches, so that a general
    # gap Deny (`GET/*/*/*`) is blocked by a greedy route that allows such paths.
    deepest = max((len(r.segments) for r in routes), default=0) + 2
    for route in routes:
        if route.websocket:
            pool.add(WEBSOCKET_CONNECT)
            continue
        produced: list[list[str]] = [[]]
        for index, segment in enumerate(route.segments):
            if segment.kind == LITERAL:
                produced = [p + [segment.text] for p in produced]
                continue
            grown: list[list[str]] = []
            for prefix in produced:
                choices = _choices(routes, prefix, index, greedy=segment.kind == GREEDY)
                if segment.kind == GREEDY and deepest - index > len(FRESH):
                    choices.append([FRESH[0]] * (deepest - index))
                grown.extend(prefix + choice for choice in choices)
                if len(grown) >= MAX_WITNESSES_PER_ROUTE:
                    break
            produced = grown[:MAX_WITNESSES_PER_ROUTE]
        pool.update("/" + "/".join(p) for p in produced)
    return sorted(pool)


def _choices(routes: Sequence[Route], prefix: list[str], index: int, greedy: bool) -> list[list[str]]:
    """Values for a parameter at `index`: a fresh one, and what sibling routes have there."""
    choices: list[list[str]] = [[FRESH[0]]]
    if greedy:
        choices.append(list(FRESH))
    for other in routes:
        segments = other.segments
        if len(segments) <= index or not _compatible(segments, prefix):
            continue
        if greedy:
            tail = [s.text if s.kind == LITERAL else FRESH[0] for s in segments[index:]]
            if tail not in choices:
                choices.append(tail)
        elif segments[index].kind == LITERAL and [segments[index].text] not in choices:
            choices.append([segments[index].text])
    return choices


def _compatible(segments: Sequence, prefix: list[str]) -> bool:
    for segment, value in zip(segments, prefix):
        if segment.kind == LITERAL and segment.text != value:
            return False
        if segment.kind == GREEDY:
            return True
    return True


def _covers(wide: str, narrow: str) -> bool:
    """True when every ARN `narrow` matches is also matched by `wide` (glob containment:
    `wide`'s wildcards may absorb `narrow`'s, never the reverse)."""
    return resource_matches(wide, narrow)


def reduce_patterns(patterns: Sequence[str]) -> list[str]:
    """Drop patterns another pattern already covers: the policy's decisions do not change
    (an Allow or Deny that adds no ARN to its effect's set is dead weight). A covering
    pattern's literal prefix is a prefix of the covered one's, which bounds the search."""
    unique = sorted(set(patterns))
    by_prefix: dict[str, list[str]] = {}
    for pattern in unique:
        if "*" in pattern:
            by_prefix.setdefault(pattern.split("*", 1)[0], []).append(pattern)
    kept = []
    for pattern in unique:
        literal = pattern.split("*", 1)[0]
        if not any(
            other != pattern and _covers(other, pattern) and not (_covers(pattern, other) and pattern < other)
            for cut in range(len(literal) + 1)
            for other in by_prefix.get(literal[:cut], ())
        ):
            kept.append(pattern)
    return kept


def estimated_size(allows: Sequence[str], denies: Sequence[str]) -> int:
    """Bytes of the policy part of a response with these patterns under a long ARN prefix."""
    size = ENVELOPE
    for patterns in (allows, denies):
        if patterns:
            size += STATEMENT_OVERHEAD + sum(PREFIX_ESTIMATE + len(p) + 3 for p in patterns)
    return size


@dataclass(frozen=True)
class SizeReport:
    all_allowed: int  # every route allowed (compressed)
    worst_case: int  # every pattern the table could ever emit, uncompressed: an upper bound


def size_report(table: RouteTable) -> SizeReport:
    everything = [True] * len(table.entries)
    allows, denies = table.synthesise(everything, None)
    all_patterns = sorted({e.pattern for e in table.entries})
    all_denies = sorted(
        {table.entries[d].pattern for ds in table.deny_if_allowed for d in ds}
        | {candidates[-1][0] for gaps in table.gaps for candidates in gaps}
        | set(all_patterns)
    )
    return SizeReport(estimated_size(allows, denies), estimated_size(all_patterns, all_denies))
