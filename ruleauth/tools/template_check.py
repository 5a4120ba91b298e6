"""`ruleauth validate --template`: the rules file against the API definition it will guard.

Findings are warnings (errors with `--strict`): API routes no rule covers (API
Gateway calls the authorizer, and ruleauth denies them), rules no API route
reaches, and an authorizer whose identity sources or cache TTL disagree with
the rules' `cache:` block (the one thing that makes cached responses wrong).
Also the sample-path helpers that `dry-run`'s `policy_grants` uses.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ruleauth.errors import WARNING, Problem
from ruleauth.model import ANY, METHODS, WEBSOCKET_CONNECT, SourcePos
from ruleauth.policy.iam import resource_matches
from ruleauth.rules.routes import GREEDY, PARAM, Route, RouteSyntaxError, parse_path
from ruleauth.rules.ruleset import CACHE_DISABLED, CACHE_ROUTE, RESPONSE_SIMPLE, RuleSet

REST_ROUTE_CONTEXT = ("httpMethod", "resourcePath")
HTTP_ROUTE_CONTEXT = ("routeKey",)
_ROUTE_CONTEXT = set(REST_ROUTE_CONTEXT) | set(HTTP_ROUTE_CONTEXT)


def sample_path(route: Route) -> str:
    """A concrete path the route matches: {x} → "x", {x+} → "x/y"."""
    if route.websocket:
        return WEBSOCKET_CONNECT
    parts = []
    for segment in route.segments:
        if segment.kind == PARAM:
            parts.append(segment.text)
        elif segment.kind == GREEDY:
            parts.append(f"{segment.text}/y")
        else:
            parts.append(segment.text)
    return "/" + "/".join(parts)


def methods_of(method: str) -> tuple[str, ...]:
    return METHODS if method == ANY else (method,)


def compare(ruleset: RuleSet, template: Any) -> list[Problem]:
    """Every disagreement between `ruleset` and an `ApiTemplate`, as warnings."""
    problems: list[Problem] = []
    where = SourcePos(template.source, 1, 1)  # for what the template says nowhere in particular
    guarded = [r for r in template.routes if r.authorizer is not None]
    problems.extend(_uncovered_routes(ruleset, guarded, where))
    problems.extend(_unreached_rules(ruleset, template.routes))
    problems.extend(_never_consulted(ruleset, guarded, [r for r in template.routes if r.authorizer is None], where))
    for settings in template.authorizers:
        problems.extend(_authorizer(ruleset, settings, settings.pos or where))
    if not template.authorizers:
        problems.append(
            Problem(f"{template.source} defines no Lambda authorizer: nothing calls ruleauth", where, WARNING)
        )
    return problems


def _uncovered_routes(ruleset: RuleSet, routes: Iterable[Any], default: SourcePos) -> list[Problem]:
    problems = []
    for api_route in routes:
        where = api_route.pos or default
        if api_route.path == "$default":
            problems.append(
                Problem(
                    "the API's $default catch-all route reaches the authorizer with any method and path; "
                    "requests that no rule matches are denied (403)",
                    where,
                    WARNING,
                )
            )
            continue
        if api_route.path.startswith("$"):
            if api_route.path == WEBSOCKET_CONNECT and ruleset.router.find("", WEBSOCKET_CONNECT) is None:
                problems.append(
                    Problem(
                        "API route $connect has no rule, so every WebSocket connection is denied: "
                        "add a rule with route: $connect",
                        where,
                        WARNING,
                    )
                )
            continue
        try:
            route = Route(api_route.method, api_route.path, parse_path(api_route.path))
        except RouteSyntaxError:
            continue
        missing = [m for m in methods_of(api_route.method) if ruleset.router.find(m, sample_path(route)) is None]
        if missing and api_route.method == ANY and len(missing) < len(METHODS):
            problems.append(
                Problem(
                    f"API route {api_route} has no rule for {', '.join(missing)}: those methods are denied (403)",
                    where,
                    WARNING,
                )
            )
        elif missing:
            problems.append(
                Problem(
                    f"API route {api_route} has no rule, so every request to it is denied (403): "
                    f"add a rule with route: {api_route}",
                    where,
                    WARNING,
                )
            )
        problems.extend(_cached_reach(ruleset, api_route, route, missing, where))
    return problems


def _cached_reach(
    ruleset: RuleSet, api_route: Any, route: Route, missing: list[str], where: SourcePos
) -> list[Problem]:
    """An API route no rule lists may still sit under another rule's wildcard: a response
    cached for that rule can then allow it (gap Denies cover it only for some callers)."""
    table = ruleset.table
    if table is None:
        return []
    found = []
    for method in missing:
        target = f"{method}/{sample_path(route).lstrip('/')}"
        wide = next((e for e in table.entries if e.method == method and resource_matches(e.pattern, target)), None)
        if wide is not None:
            found.append(
                Problem(
                    f"API route {method} {api_route.path} has no rule, but the cached Allow of rule "
                    f"{wide.rule.name!r} ({wide.pattern}) also covers it: a caller allowed there may reach it "
                    f"through API Gateway's cache. Add a rule for {method} {api_route.path}, or use "
                    "cache.mode: route",
                    where,
                    WARNING,
                    wide.rule.name,
                )
            )
    return found


def _api_routes(routes: Iterable[Any]) -> tuple[list[tuple[Route, Any]], bool]:
    """The template's routes as rule routes (with each one's ApiRoute), and whether one is
    HTTP API's `$default` catch-all."""
    api_routes = []
    catch_all = False
    for api_route in routes:
        if api_route.path == "$default":
            catch_all = True
            continue
        if api_route.path.startswith("$"):
            api_routes.append((Route("", api_route.path, ()), api_route))
            continue
        try:
            api_routes.append((Route(api_route.method, api_route.path, parse_path(api_route.path)), api_route))
        except RouteSyntaxError:
            continue
    return api_routes, catch_all


def _reaching(route: Route, api_routes: list[tuple[Route, Any]]) -> list[Any]:
    """The template routes through which a request reaches this rule route."""
    path = sample_path(route)
    methods = ("",) if route.websocket else methods_of(route.method)
    return [given for api, given in api_routes if any(api.match(m, path) is not None for m in methods)]


def _unreached_rules(ruleset: RuleSet, routes: Iterable[Any]) -> list[Problem]:
    api_routes, catch_all = _api_routes(routes)
    if catch_all:
        return []
    return [
        Problem(
            f"route {route} matches no route of the API in the template: the rule never runs "
            "(remove it, or add the route to the API)",
            rule.pos,
            WARNING,
            rule.name,
        )
        for rule in ruleset.rules
        for route in rule.routes
        if not _reaching(route, api_routes)
    ]


def _never_consulted(ruleset: RuleSet, guarded: list[Any], open_routes: list[Any], where: SourcePos) -> list[Problem]:
    """A rule whose route the API serves without the authorizer (SAM `Auth: {Authorizer: NONE}`,
    OpenAPI `security: []`): API Gateway never asks ruleauth, so the rule decides nothing
    (docs/apigw-facts.md "Routes without the authorizer")."""
    guarded_routes, catch_all = _api_routes(guarded)
    open_api_routes, _ = _api_routes(open_routes)
    if catch_all:
        return []
    return [
        Problem(
            f"API route {api_route} runs no authorizer ({api_route.open_by or 'no authorizer'}), so "
            f"API Gateway never consults this rule ({route}). {_open_fix(api_route.open_by)}",
            api_route.pos or where,
            WARNING,
            rule.name,
        )
        for rule in ruleset.rules
        for route in rule.routes
        if not _reaching(route, guarded_routes)
        for api_route in _reaching(route, open_api_routes)
    ]


def _open_fix(open_by: str) -> str:
    """The fix for a rule on a route without the authorizer, in the template's own terms."""
    keep = "if the route is meant to be public, delete the rule"
    if "AWS_IAM" in open_by:
        return f"IAM authorization decides this route, not ruleauth: {keep}"
    if "NONE" in open_by:
        return (
            "To have the rule decide, remove `Authorizer: NONE` from the event's Auth (or name the ruleauth "
            f"authorizer: `Auth: {{Authorizer: <name>}}`); {keep}"
        )
    if "security" in open_by:
        return (
            "To have the rule decide, remove `security: []` from the operation, or in SAM give the event "
            f"`Auth: {{Authorizer: <name>}}`; {keep}"
        )
    return (
        "To have the rule decide, set the API's `Auth: {DefaultAuthorizer: <name>}` or the event's "
        f"`Auth: {{Authorizer: <name>}}`; {keep}"
    )


def _authorizer(ruleset: RuleSet, settings: Any, where: SourcePos) -> list[Problem]:
    cache = ruleset.cache
    name = f"authorizer {settings.name}"
    problems: list[Problem] = []

    def warn(message: str) -> None:
        problems.append(Problem(f"{name}: {message}", where, WARNING))

    ttl = settings.ttl
    if ttl is not None:
        if cache.mode == CACHE_DISABLED and ttl > 0:
            warn(
                f"caches responses for {ttl} s, but the rules say cache.mode: disabled; "
                "cached per-request responses would be replayed for other routes: set ReauthorizeEvery: 0"
            )
        elif cache.mode != CACHE_DISABLED and ttl == 0:
            warn(
                f"has TTL 0 (no caching), but the rules say cache.mode: {cache.mode}; "
                "set cache.mode: disabled in the rules, or a TTL above 0"
            )
    if cache.mode == CACHE_ROUTE:
        needed = HTTP_ROUTE_CONTEXT if settings.api_type == "http" else REST_ROUTE_CONTEXT
        absent = [c for c in needed if c not in settings.context]
        if absent:
            warn(
                f"cache.mode: route needs the route in the cache key, but the identity sources lack "
                f"context {', '.join(absent)}: add them (Identity.Context) or use cache.mode: disabled"
            )
    compare_sets = [
        ("headers", {h.lower() for h in cache.headers}, {h.lower() for h in settings.headers}),
        ("query", set(cache.query), set(settings.query)),
        ("stage_variables", set(cache.stage_variables), set(settings.stage_variables)),
        ("context", set(cache.context) - _ROUTE_CONTEXT, set(settings.context) - _ROUTE_CONTEXT),
    ]
    if cache.mode != CACHE_DISABLED or (ttl or 0) > 0:
        for what, rules_side, api_side in compare_sets:
            if rules_side != api_side:
                warn(
                    f"identity source {what} are {_listed(api_side)} in the template but "
                    f"{_listed(rules_side)} in the rules' cache.sources: make them the same"
                )
    token = ruleset.token
    if settings.payload == "TOKEN":
        header = settings.headers[0] if settings.headers else "Authorization"
        if not token.header or token.header.lower() != header.lower():
            warn(
                f"is a TOKEN authorizer reading header {header}, but the rules read the credential from "
                f"{token.where}: use a REQUEST authorizer or set token.header: {header}"
            )
    if settings.payload == "TOKEN":
        reading = [p.name for p in ruleset.providers if p.certificate_bound]
        if reading or _reads_client_cert(ruleset):
            warn(
                "is a TOKEN authorizer, whose events carry no client certificate (docs/apigw-facts.md "
                '"Client certificates"), but the rules read request.client_cert'
                + (f" or bind tokens to it (certificate_bound {', '.join(reading)})" if reading else "")
                + ": every such request fails; use a REQUEST authorizer (FunctionPayloadType: REQUEST)"
            )
    if settings.simple_responses and ruleset.response != RESPONSE_SIMPLE:
        warn(
            "has EnableSimpleResponses, but the rules answer with IAM policies (response: iam), which "
            "API Gateway rejects with 500: set response: simple (or RULEAUTH_RESPONSE=simple)"
        )
    if not settings.simple_responses and ruleset.response == RESPONSE_SIMPLE and settings.payload == "2.0":
        warn(
            "expects IAM policy responses (EnableSimpleResponses is off), but the rules say response: simple: "
            "turn EnableSimpleResponses on, or set response: iam"
        )
    return problems


def _reads_client_cert(ruleset: RuleSet) -> bool:
    compiled = [r.allow for r in ruleset.rules] + list(ruleset.context.values())
    compiled += [c for c in (ruleset.principal, ruleset.usage_identifier_key) if c is not None]
    return any(read.input == "request.client_cert" for c in compiled for read in c.reads)


def _listed(values: set[str]) -> str:
    return "[" + ", ".join(sorted(values)) + "]" if values else "none"
