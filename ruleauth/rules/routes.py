"""Route patterns (`GET /orders/{id}`, `ANY /admin/{proxy+}`, `$connect`) and the router.

A request is matched segment by segment. The most specific candidate wins:
segments compared left to right (literal > `{x}` > `{x+}`), then an explicit
method beats `ANY`. The winner decides alone, so adding a broad rule can never
widen what a narrower rule allows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from ruleauth.errors import LoadError
from ruleauth.model import ANY, METHODS, WEBSOCKET_CONNECT

LITERAL, PARAM, GREEDY = "literal", "param", "greedy"
_RANK = {LITERAL: 0, PARAM: 1, GREEDY: 2}
Shape = tuple[str, tuple[tuple[str, str], ...], bool]  # Route.shape: (method, segments, websocket)

_PARAM = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)(\+?)\}$")
# Characters API Gateway allows in resource paths; never IAM wildcards (* ?).
_LITERAL = re.compile(r"^[A-Za-z0-9._~\-:@!$&'()+,;=%]+$")


class RouteSyntaxError(LoadError, ValueError):
    pass


@dataclass(frozen=True)
class Segment:
    kind: str
    text: str  # the literal, or the parameter name


@dataclass(frozen=True)
class Route:
    """A rule's route. For WebSocket `$connect`, method is "" and segments is empty."""

    method: str
    path: str
    segments: tuple[Segment, ...]

    @property
    def websocket(self) -> bool:
        return self.path == WEBSOCKET_CONNECT

    def __str__(self) -> str:
        return self.path if self.websocket else f"{self.method} {self.path}"

    @property
    def shape(self) -> Shape:
        """Identity after renaming parameters: two rules with one shape are ambiguous."""
        segments = tuple((s.kind, s.text if s.kind == LITERAL else "") for s in self.segments)
        return (self.method, segments, self.websocket)

    def specificity(self) -> tuple[tuple[int, ...], bool]:
        """Sort key: smaller is more specific."""
        ranks = tuple(_RANK[s.kind] for s in self.segments)
        # A path that ends earlier is more specific than one continuing with greedy segments;
        # after the per-segment ranks, prefer explicit methods.
        return ranks, self.method == ANY

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """Path parameters when this route matches, else None."""
        if self.websocket:
            return {} if path == WEBSOCKET_CONNECT and method == "" else None
        if method == "" or (self.method != ANY and self.method != method):
            return None
        return match_segments(self.segments, split_path(path))


def split_path(path: str) -> list[str] | None:
    """'/a/b' → ['a', 'b']; '/' → []. Anything not starting with '/' cannot match."""
    if not path.startswith("/"):
        return None
    if path == "/":
        return []
    return path[1:].split("/")


def match_segments(segments: Sequence[Segment], parts: list[str] | None) -> dict[str, str] | None:
    if parts is None:
        return None
    params: dict[str, str] = {}
    for index, segment in enumerate(segments):
        if segment.kind == GREEDY:
            rest = parts[index:]
            if not rest or any(p == "" for p in rest):
                return None
            params[segment.text] = "/".join(rest)
            return params
        if index >= len(parts):
            return None
        part = parts[index]
        if segment.kind == LITERAL:
            if part != segment.text:
                return None
        elif part == "":
            return None
        else:
            params[segment.text] = part
    return params if len(parts) == len(segments) else None


def parse_route(text: str) -> Route:
    """Parse `METHOD /path` or `$connect`; raises RouteSyntaxError with a fix-it message."""
    if text == WEBSOCKET_CONNECT:
        return Route("", WEBSOCKET_CONNECT, ())
    parts = text.split(" ")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise RouteSyntaxError(
            f"route {text!r} must be 'METHOD /path' (one space), e.g. 'GET /orders/{{id}}', or '$connect'"
        )
    method, path = parts
    if method not in METHODS and method != ANY:
        upper = method.upper()
        hint = f"; write {upper!r}" if upper in METHODS or upper == ANY else ""
        raise RouteSyntaxError(f"unknown method {method!r}: use one of {', '.join((*METHODS, ANY))}{hint}")
    return Route(method, path, parse_path(path))


def parse_path(path: str) -> tuple[Segment, ...]:
    if not path.startswith("/"):
        raise RouteSyntaxError(f"route path {path!r} must start with '/'")
    if path == "/":
        return ()
    raw = path[1:].split("/")
    segments: list[Segment] = []
    names: set[str] = set()
    for index, part in enumerate(raw):
        if part == "":
            raise RouteSyntaxError(f"route path {path!r} has an empty segment (// or a trailing /)")
        param = _PARAM.match(part)
        if param:
            name, greedy = param.group(1), bool(param.group(2))
            if greedy and index != len(raw) - 1:
                raise RouteSyntaxError(f"greedy parameter {{{name}+}} must be the last segment of {path!r}")
            if name in names:
                raise RouteSyntaxError(f"parameter {{{name}}} appears twice in {path!r}")
            names.add(name)
            segments.append(Segment(GREEDY if greedy else PARAM, name))
        elif "*" in part or "?" in part:
            raise RouteSyntaxError(
                f"route path {path!r} contains '*' or '?': use {{name}} or {{name+}} parameters instead"
            )
        elif "{" in part or "}" in part or not _LITERAL.match(part):
            raise RouteSyntaxError(f"segment {part!r} of {path!r} is neither a literal nor a {{name}} parameter")
        else:
            segments.append(Segment(LITERAL, part))
    return tuple(segments)


T = TypeVar("T")


@dataclass(frozen=True)
class RouteMatch(Generic[T]):
    route: Route
    target: T
    params: Mapping[str, str]


class Router(Generic[T]):
    """Routes to targets (rules), most specific first. Built once at cold start.

    Routes are bucketed by their first literal segment, so a lookup only tries
    the routes that could match; candidates keep their global specificity order.
    """

    def __init__(self, entries: Iterable[tuple[Route, T]]):
        self._entries = sorted(entries, key=lambda e: e[0].specificity())
        self._by_first: dict[str, list[tuple[int, Route, T]]] = {}
        self._open: list[tuple[int, Route, T]] = []  # first segment is a parameter, or no segment
        for order, (route, target) in enumerate(self._entries):
            first = route.segments[0] if route.segments else None
            if first is not None and first.kind == LITERAL:
                self._by_first.setdefault(first.text, []).append((order, route, target))
            else:
                self._open.append((order, route, target))

    def _ordered(self, path: str) -> Iterable[tuple[int, Route, T]]:
        head = path[1:].split("/", 1)[0] if path.startswith("/") else None
        bucket = self._by_first.get(head, []) if head else []
        return sorted(bucket + self._open, key=lambda e: e[0]) if bucket and self._open else (bucket or self._open)

    def candidates(self, method: str, path: str) -> list[RouteMatch[T]]:
        """Every matching route, most specific first."""
        found = []
        for _, route, target in self._ordered(path):
            params = route.match(method, path)
            if params is not None:
                found.append(RouteMatch(route, target, params))
        return found

    def find(self, method: str, path: str) -> RouteMatch[T] | None:
        for _, route, target in self._ordered(path):
            params = route.match(method, path)
            if params is not None:
                return RouteMatch(route, target, params)
        return None

    @property
    def entries(self) -> list[tuple[Route, T]]:
        return list(self._entries)
