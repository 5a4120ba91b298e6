"""Policies that stay right when API Gateway caches them (cache.mode identity).

API Gateway reuses a cached response for every route the same caller calls
next, so the response must answer for the whole route table. Each rule route
becomes a resource pattern built from the rule's template, never from the
request path (so a `*` or `?` in a path can never widen a grant, A3): `{id}`
and `{proxy+}` become `*`, and `ANY` expands to one pattern per method.

IAM's `*` matches any characters, `/` included, and an explicit Deny wins. So
`GET/orders/*` (for `GET /orders/{id}`) also covers `GET/orders/1/items`. The
table is analysed once at cold start with an exact, segment-level overlap test
between patterns and routes: for each Allow pattern we know which other routes
it may decide for (they get a Deny when the caller is denied there), and which
deeper paths no rule lists (they get a "gap" Deny `GET/orders/*/*` unless an
allowed route needs them). Where a relation cannot be settled exactly it is
assumed, so errors fall on the side of denying. Rule sets whose Deny would have
to cover another route's paths cannot be expressed exactly: the load (and so
`validate`) refuses them, suggesting cache.mode route or disabled.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ruleauth.cache import Cache
from ruleauth.model import METHODS, REST_REQUEST, REST_TOKEN, WEBSOCKET, WEBSOCKET_CONNECT
from ruleauth.policy.iam import resource_matches
from ruleauth.rules.routes import GREEDY, LITERAL, PARAM, Route, RouteSyntaxError, Segment, parse_path
from ruleauth.rules.ruleset import CACHE_IDENTITY, Rule, RuleSet

SYNTHESIS_MEMO = 256  # distinct decision vectors remembered per container

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
    # asked_blockers[d]: entries whose paths pattern `d` overlaps (an explicit Deny for `d`
    # must not cover an allowed one).
    asked_blockers: list[frozenset[int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._by_cell = {(e.method, id(e.route)): e for e in self.entries}
        self._memo: Cache[tuple[Any, ...], tuple[list[str], list[str]]] = Cache(SYNTHESIS_MEMO)
        # Every pattern a synthesis can emit, by literal prefix (made on first use), and for
        # each one met so far the others that cover it: reducing is then a lookup per pair.
        self._emittable: tuple[frozenset[str], dict[str, list[str]]] | None = None
        self._coverers: dict[str, tuple[tuple[str, bool], ...]] = {}

    def entry_for(self, method: str, route: Route) -> Entry | None:
        return self._by_cell.get((method, id(route)))

    def synthesise(
        self,
        allowed: Sequence[bool],
        asked: Entry | None,
        scope: frozenset[int] | None = None,
        reach: frozenset[int] | None = None,
    ) -> tuple[list[str], list[str]]:
        """Allow and Deny patterns for one caller, given each entry's rule decision.

        `scope`: only these entries' Allows are emitted (None: the whole table), each with
        every Deny its wildcards need, so the response is exact wherever a scoped Allow
        reaches, and implicitly denies the rest: narrower, never wider. `reach`: the entries
        that decide the requests the response can answer (route mode: those under the API's
        route; None: all); a denied entry outside it needs no Deny.

        Callers with the same decisions (same roles, scopes) get the same patterns, so the
        table part is remembered (bounded): its reduction costs milliseconds on large tables.
        The asked route only adds, at most, its own explicit Deny."""
        key = (bytes(map(bool, allowed)), scope, reach)
        found = self._memo.get(key)
        if found is None:
            found = self._synthesise(allowed, scope, reach)
            self._memo.put(key, found)
        allows, denies = list(found[0]), list(found[1])
        # An explicit Deny for the asked route gives callers the explicit-deny 403, as
        # hand-written authorizers do; only where it cannot shadow an allowed route.
        if (
            asked is not None
            and not allowed[asked.index]
            and not any(allowed[other] for other in self.asked_blockers[asked.index])
            and not any(_covers(deny, asked.pattern) for deny in denies)
        ):
            denies = sorted([*denies, asked.pattern])
        return allows, denies

    def _synthesise(
        self, allowed: Sequence[bool], scope: frozenset[int] | None, reach: frozenset[int] | None
    ) -> tuple[list[str], list[str]]:
        emitted = [e for e in self.entries if allowed[e.index] and (scope is None or e.index in scope)]
        allows = [e.pattern for e in emitted]
        denies: set[str] = set()
        if any("*" in pattern for pattern in allows):
            denies.update(EMPTY_SEGMENT_DENIES)
        for entry in emitted:
            denies.update(
                self.entries[d].pattern
                for d in self.deny_if_allowed[entry.index]
                if not allowed[d] and (reach is None or d in reach)
            )
            for candidates in self.gaps[entry.index]:
                for pattern, blockers in candidates:
                    if not any(allowed[b] for b in blockers):
                        denies.add(pattern)
                        break
        return self._reduce(allows), self._reduce(denies)

    def _reduce(self, patterns: Iterable[str]) -> list[str]:
        """reduce_patterns(patterns), for patterns of this table: the same patterns kept, found
        from each pattern's coverers among everything the table can emit, computed once per
        pattern (the set is fixed by the table, so this index is bounded by it)."""
        present = set(patterns)
        if self._emittable is None:
            emittable = {e.pattern for e in self.entries} | set(EMPTY_SEGMENT_DENIES)
            emittable |= {pattern for gaps in self.gaps for candidates in gaps for pattern, _ in candidates}
            self._emittable = (frozenset(emittable), _by_literal_prefix(emittable))
        universe, by_prefix = self._emittable
        if not present <= universe:  # cannot happen: every synthesised pattern is the table's
            return reduce_patterns(sorted(present))
        kept = []
        for pattern in sorted(present):
            coverers = self._coverers.get(pattern)
            if coverers is None:
                coverers = self._coverers[pattern] = tuple(
                    (other, _covers(pattern, other)) for other in _covering(pattern, by_prefix)
                )
            # As reduce_patterns: of two patterns that cover each other, the smaller is kept.
            if not any(other in present and not (mutual and pattern < other) for other, mutual in coverers):
                kept.append(pattern)
        return kept


# IAM's `*` also matches the empty string, so `GET/orders/*` covers `GET/orders/` and
# `GET/*/x` covers `GET//x`: paths with an empty segment, which no route matches (the rules
# deny them) but a method ARN can hold (docs/apigw-facts.md). These two Denies cover exactly
# the ARNs whose path has an empty segment: a `//` anywhere after the stage, or a trailing
# `/` after a non-empty path. The root's ARN (`GET/`) has a single `/` and is not covered.
EMPTY_SEGMENT_DENIES = ("*//*", "*/?*/")


def route_pattern(method: str, route: Route) -> str:
    if route.websocket:
        return WEBSOCKET_CONNECT
    path = "/".join(s.text if s.kind == LITERAL else "*" for s in route.segments)
    return f"{method}/{path}"


def table_for(ruleset: RuleSet) -> RouteTable | None:
    """The policy table a rule set carries (`RuleSet.table`, stored in rules snapshots): cache.mode
    identity's, built once at load; None otherwise (route mode builds its own when first needed)."""
    if ruleset.cache.mode != CACHE_IDENTITY or not ruleset.rules:
        return None
    return build_table(ruleset)


def build_table(ruleset: RuleSet) -> RouteTable:
    entries: list[Entry] = []
    for rule in ruleset.rules:
        if rule.shadow:
            continue
        for route in rule.routes:
            methods = ("",) if route.websocket else (METHODS if route.method == "ANY" else (route.method,))
            for method in methods:
                entries.append(Entry(len(entries), method, route, rule, route_pattern(method, route)))
    index = _Index(entries)

    deny_if_allowed: list[frozenset[int]] = []
    asked_blockers: list[frozenset[int]] = []
    gaps: list[list[list[tuple[str, frozenset[int]]]]] = []
    uncovered: list[tuple[Entry, str]] = []
    for entry in entries:
        overlapping = index.overlapping(entry.method, _glob(entry.route.segments)) - {entry.index}
        asked_blockers.append(frozenset(overlapping))
        deny_if_allowed.append(frozenset(d for d in overlapping if _may_win_inside(entry, entries[d], index)))
        entry_gaps = []
        if not entry.route.websocket and _glob(entry.route.segments) == [STAR]:
            # `GET/*` (for `/{id}` or `/{proxy+}`) also matches the root's ARN `GET/`, since
            # `*` matches the empty string: deny it unless a root rule allows it.
            entry_gaps.append([(f"{entry.method}/", index.overlapping(entry.method, []))])
        for specific, general in _gap_patterns(entry):
            candidates = [
                (text, frozenset(index.overlapping(entry.method, tokens))) for text, tokens in (general, specific)
            ]
            entry_gaps.append(candidates)
            if candidates[1][1]:
                uncovered.append((entry, specific[0]))
        gaps.append(entry_gaps)
    needed_by: dict[int, list[int]] = {}
    for allowed_entry, needed in enumerate(deny_if_allowed):
        for denied_entry in needed:
            needed_by.setdefault(denied_entry, []).append(allowed_entry)
    conflicts: list[Conflict] = []
    for denied in entries:
        # Denying `denied` takes a Deny only when another route's Allow covers its paths...
        if not any(not _decide_alike(entries[a].rule, denied.rule) for a in needed_by.get(denied.index, ())):
            continue
        # ...and that Deny is wrong wherever it also covers paths another route decides.
        for other in sorted(deny_if_allowed[denied.index]):
            if not _decide_alike(denied.rule, entries[other].rule):
                conflicts.append(Conflict(denied, entries[other], entries[other].label))
                break
    return RouteTable(entries, deny_if_allowed, gaps, _unique_conflicts(conflicts), uncovered, asked_blockers)


# -- exact overlap of a resource pattern and a route, segment by segment ----------------------
#
# A pattern is a list of tokens: a literal segment, or STAR, which (delimited by '/') matches
# one or more whole segments. A route's segments are literals, {x} (one segment) or {x+}
# (one or more). Paths with empty segments match no route and are left out (the policy
# denies them outright, EMPTY_SEGMENT_DENIES). One case of `*` matching the empty string
# remains: the pattern `M/*` also matches the root `M/`.

STAR = None
ONE = ("one segment",)  # a route's {x} as a token (only in api_route_scope)
PathToken = str | tuple[str] | None  # a literal segment, ONE or STAR


def _glob(segments: Sequence[Segment]) -> list[str | None]:
    return [s.text if s.kind == LITERAL else STAR for s in segments]


def _overlaps(tokens: Sequence[PathToken], segments: Sequence[Segment]) -> bool:
    """Is there a path both the pattern and the route match? Breadth-first over the pairs of
    positions (pattern token, route segment) reached at a segment boundary."""
    if not segments:  # the root: matched by `M/` and by `M/*` (its `*` empty)
        return len(tokens) == 0 or list(tokens) == [STAR]
    end = (len(tokens), len(segments))
    seen = {(0, 0)}
    frontier = [(0, 0)]
    while frontier:
        i, j = frontier.pop()
        if (i, j) == end:
            return True
        if i == len(tokens) or j == len(segments):
            continue
        token, segment = tokens[i], segments[j]
        if token is not STAR and token is not ONE and segment.kind == LITERAL and token != segment.text:
            continue  # no one segment value satisfies both
        next_i = (i, i + 1) if token is STAR else (i + 1,)
        next_j = (j, j + 1) if segment.kind == GREEDY else (j + 1,)
        for a in next_i:
            for b in next_j:
                if (a, b) not in seen:
                    seen.add((a, b))
                    frontier.append((a, b))
    return False


def api_route_scope(table: RouteTable, request: Any) -> frozenset[int]:
    """cache.mode route: the entries that decide requests under the API's route (the cache
    key's route: `resource`, or `routeKey`'s path). An API route that is unknown or not a path
    (`$default`, a TOKEN event) covers every route; REST keys the cache on the method too,
    HTTP APIs' `ANY` route keys do not. An entry that overlaps the API route but is less
    specific than a rule route containing all of it never decides there."""
    tokens, same_method = _api_route(request)
    segments = None if tokens is None else parse_path(request.resource)
    by_method: dict[str, list[Entry]] = {}
    for e in table.entries:
        if (not same_method or e.method == request.method) and (tokens is None or _overlaps(tokens, e.route.segments)):
            by_method.setdefault(e.method, []).append(e)
    found: set[int] = set()
    for entries in by_method.values():
        containers = [
            e.route.specificity() for e in entries if segments is not None and _contains(e.route.segments, segments)
        ]
        best = min(containers) if containers else None
        found.update(e.index for e in entries if best is None or e.route.specificity() <= best)
    return frozenset(found)


def api_route_is_the_rules(routes: Sequence[Route], request: Any, route: Route | None) -> bool:
    """Does the API's route cover only paths that the matched rule route `route` decides (so
    its pattern alone answers them all)? Needs no table: most route-mode requests ask this."""
    if request.event_type == WEBSOCKET:
        return True
    tokens, same_method = _api_route(request)
    if route is None or tokens is None or not _contains(route.segments, parse_path(request.resource)):
        return False
    if not same_method and (
        route.method == "ANY"
        or any(
            other is not route
            and not other.websocket
            and other.method != route.method
            and _overlaps(tokens, other.segments)
            for other in routes
        )
    ):
        # An HTTP API's cache key holds no method for an `ANY` API route: a pattern for the
        # asked method alone would be replayed for the others.
        return False
    # Another rule route decides a path under the API route only where it is more specific
    # than `route` (the router's order does not depend on the path).
    rank = route.specificity()
    return not any(
        other is not route
        and not other.websocket
        and other.specificity() < rank
        and _overlaps(tokens, other.segments)
        and (not same_method or other.method in ("ANY", request.method))
        for other in routes
    )


def _api_route(request: Any) -> tuple[list[PathToken] | None, bool]:
    """The API route's path as tokens ({x} one segment, {x+} one or more), or None when
    unknown; and whether the cache key also holds the method (REST, and an HTTP API route
    key that names one: `GET /a`, not `ANY /a`)."""
    same_method = request.event_type in (REST_TOKEN, REST_REQUEST) or bool(request.resource_method)
    try:
        segments = parse_path(request.resource)
    except RouteSyntaxError:
        return None, same_method
    tokens = [s.text if s.kind == LITERAL else ONE if s.kind == PARAM else STAR for s in segments]
    return tokens, same_method


def _contains(outer: Sequence[Segment], inner: Sequence[Segment]) -> bool:
    """Does route `outer` match every path route `inner` matches?"""
    if not outer or not inner:
        return not outer and not inner
    head, rest = outer[0], inner[0]
    if head.kind == GREEDY:
        return True  # `inner` has at least one segment left, all of which {x+} takes
    if rest.kind == GREEDY or (head.kind == LITERAL and (rest.kind != LITERAL or rest.text != head.text)):
        return False
    return _contains(outer[1:], inner[1:])


class _Index:
    """Entries by method and first literal, so an overlap test only meets plausible routes."""

    def __init__(self, entries: Sequence[Entry]):
        self.entries = entries
        self._by_first: dict[tuple[str, str], list[Entry]] = {}
        self._open: dict[str, list[Entry]] = {}
        self._all: dict[str, list[Entry]] = {}
        self._memo: dict[tuple[str, tuple[str | None, ...]], frozenset[int]] = {}
        for entry in entries:
            self._all.setdefault(entry.method, []).append(entry)
            segments = entry.route.segments
            if segments and segments[0].kind == LITERAL:
                self._by_first.setdefault((entry.method, segments[0].text), []).append(entry)
            else:
                self._open.setdefault(entry.method, []).append(entry)

    def overlapping(self, method: str, tokens: Sequence[str | None]) -> frozenset[int]:
        key = (method, tuple(tokens))
        if key not in self._memo:
            if method == "":
                found = {e.index for e in self._all.get("", [])}
            else:
                if tokens and tokens[0] is not STAR:
                    candidates = self._by_first.get((method, tokens[0]), []) + self._open.get(method, [])
                else:
                    candidates = self._all.get(method, [])
                found = {e.index for e in candidates if _overlaps(tokens, e.route.segments)}
            self._memo[key] = frozenset(found)
        return self._memo[key]


def _may_win_inside(wide: Entry, other: Entry, index: _Index) -> bool:
    """May `other` decide a path that `wide`'s pattern covers? Not when `wide` itself is more
    specific and the overlap lies in wide's own paths (none in its multi-segment `*` spans):
    there `wide` wins. Otherwise assume it may (a superfluous Deny only ever narrows)."""
    if wide.route.websocket:
        return False
    if wide.route.specificity() >= other.route.specificity():
        return True
    return any(
        other.index in index.overlapping(wide.method, tokens) for _, tokens in _gap_patterns(wide, tokens_only=True)
    )


def _decide_alike(a: Rule, b: Rule) -> bool:
    """Two rules that always give one caller the same answer never conflict."""
    if a is b:
        return True
    reads_route = any(r.input in ("request.method", "request.route") for r in a.allow.reads | b.allow.reads)
    return (
        not reads_route
        and a.allow.source.strip() == b.allow.source.strip()
        and a.auth == b.auth
        and a.providers == b.providers
    )


def _unique_conflicts(conflicts: list[Conflict]) -> list[Conflict]:
    seen: set[tuple[str, str]] = set()
    unique = []
    for conflict in conflicts:
        key = (conflict.denied.rule.name, conflict.allowed.rule.name)
        if key not in seen:
            seen.add(key)
            unique.append(conflict)
    return unique


def _gap_patterns(entry: Entry, tokens_only: bool = False) -> list[Any]:
    """For each single-segment parameter, Denies for paths where its `*` spans two or more
    segments: the specific pattern (`GET/orders/*/*`) and a general one for every path at
    least that deep (`GET/*/*/*`), which many routes share, so one Deny can serve them all.
    Each as (pattern text, tokens)."""
    if entry.route.websocket:
        return []
    found = []
    count = len(entry.route.segments)
    general_tokens = [STAR] * (count + 1)
    general = (f"{entry.method}/" + "/".join(["*"] * (count + 1)), general_tokens)
    for position, segment in enumerate(entry.route.segments):
        if segment.kind != PARAM:
            continue
        tokens = _glob(entry.route.segments)
        tokens[position : position + 1] = [STAR, STAR]
        text = f"{entry.method}/" + "/".join("*" if t is STAR else t for t in tokens)
        found.append(((text, tokens), general))
    if tokens_only:
        return [specific for specific, _ in found]
    return found


def _covers(wide: str, narrow: str) -> bool:
    """True when every ARN `narrow` matches is also matched by `wide` (glob containment:
    `wide`'s wildcards may absorb `narrow`'s, never the reverse)."""
    return resource_matches(wide, narrow)


def reduce_patterns(patterns: Sequence[str]) -> list[str]:
    """Drop patterns another pattern already covers: the policy's decisions do not change
    (an Allow or Deny that adds no ARN to its effect's set is dead weight). A covering
    pattern's literal prefix is a prefix of the covered one's, which bounds the search."""
    unique = sorted(set(patterns))
    by_prefix = _by_literal_prefix(unique)
    return [
        pattern
        for pattern in unique
        if not any(not (_covers(pattern, other) and pattern < other) for other in _covering(pattern, by_prefix))
    ]


def _by_literal_prefix(patterns: Iterable[str]) -> dict[str, list[str]]:
    """Wildcard patterns by their literal part before the first `*` (only they cover others)."""
    by_prefix: dict[str, list[str]] = {}
    for pattern in sorted(patterns):
        if "*" in pattern:
            by_prefix.setdefault(pattern.split("*", 1)[0], []).append(pattern)
    return by_prefix


def _covering(pattern: str, by_prefix: dict[str, list[str]]) -> list[str]:
    """The patterns of `by_prefix` other than `pattern` that cover it."""
    literal = pattern.split("*", 1)[0]
    return [
        other
        for cut in range(len(literal) + 1)
        for other in by_prefix.get(literal[:cut], ())
        if other != pattern and _covers(other, pattern)
    ]


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
        | set(EMPTY_SEGMENT_DENIES)
    )
    return SizeReport(estimated_size(allows, denies), estimated_size(all_patterns, all_denies))
