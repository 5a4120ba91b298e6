"""Policies stay right when API Gateway caches them (SPEC "Caching").

The oracle for "the rules' decision" is the same rules file loaded with
`cache.mode: disabled`, whose policy covers only the asked ARN; the cached
policy is judged by `policy_eval`, our model of API Gateway's IAM evaluation.
"""

from __future__ import annotations

import functools
import itertools
import json
import re
import textwrap
import weakref
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ruleauth.errors import RulesError
from ruleauth.model import METHODS
from ruleauth.policy import iam as policy_eval
from ruleauth.policy.synthesis import EMPTY_SEGMENT_DENIES, size_report
from ruleauth.rules import loader as rules_loader
from ruleauth.runtime.authorizer import Authorizer
from ruleauth.tools.synthetic_events import build_event

ROOT = Path(__file__).resolve().parents[1]


def authorizer(tmp_path: Path, text: str, mode: str = "identity", name: str = "rules.yaml") -> Authorizer:
    folder = tmp_path / mode
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text.replace("MODE", mode))
    return Authorizer.load(folder / name)


def event(method: str, path: str, token: str | None, stage: str = "prod", **api) -> dict:
    headers = {"Authorization": token} if token is not None else {}
    return build_event("rest-request", method, path, headers=headers, api={"stage": stage, **api})


def arn_of(method: str, path: str, stage: str = "prod") -> str:
    """As API Gateway builds it: the path after its own leading `/` (`//a` keeps one)."""
    return f"arn:aws:execute-api:us-east-1:123456789012:abc123/{stage}/{method}/{path[1:]}"


ROLES = """
version: 1
token: {header: Authorization}
cache:
  mode: MODE
  sources: {headers: [Authorization]}
define:
  role: "token.split(':')[0]"
rules:
  - name: public
    route: GET /public
    auth: token
    allow: "true"
  - name: read user
    route: GET /user/{id}
    auth: token
    allow: role in ['reader', 'admin']
  - name: user secrets
    route: GET /user/{id}/sensitive
    auth: token
    allow: role == 'admin'
  - name: admin
    route: ANY /admin/{proxy+}
    auth: token
    allow: role == 'admin'
  - name: files
    route: GET /files/{name}
    auth: token
    allow: role == 'reader'
"""


def test_A01_a_cached_policy_from_an_allowed_route_denies_the_callers_denied_routes(tmp_path):
    cached = authorizer(tmp_path, ROLES).authorize(event("GET", "/public", "guest:1")).response
    assert policy_eval.evaluate_response(cached, arn_of("GET", "/public")) == "allow"
    for method in METHODS:
        assert policy_eval.evaluate_response(cached, arn_of(method, "/admin/users")) != "allow"


def test_A01_the_same_cached_policy_allows_the_callers_other_allowed_routes(tmp_path):
    cached = authorizer(tmp_path, ROLES).authorize(event("GET", "/public", "admin:1")).response
    for method in METHODS:
        assert policy_eval.evaluate_response(cached, arn_of(method, "/admin/users/7")) == "allow"
    assert policy_eval.evaluate_response(cached, arn_of("GET", "/user/7/sensitive")) == "allow"


def test_A02_never_allow_star_and_a_param_wildcard_does_not_reach_deeper_denied_paths(tmp_path):
    response = authorizer(tmp_path, ROLES).authorize(event("GET", "/user/1", "reader:1")).response
    allow = [s for s in response["policyDocument"]["Statement"] if s["Effect"] == "Allow"]
    resources = resources_of({"policyDocument": {"Statement": allow}})
    assert all(not r.endswith(("/prod/*", "/*/*")) and r != "*" for r in resources)
    assert policy_eval.evaluate_response(response, arn_of("GET", "/user/1")) == "allow"
    assert policy_eval.evaluate_response(response, arn_of("GET", "/user/1/sensitive")) != "allow"
    # /user/{id} matches one segment only: deeper unlisted paths are denied too.
    assert policy_eval.evaluate_response(response, arn_of("GET", "/user/1/other/thing")) != "allow"


ROUTE_DEFINE = """
version: 1
token: {header: Authorization}
cache:
  mode: MODE
  sources: {headers: [Authorization]}
define:
  reads_orders: "request.method == 'GET' && request.route.contains('/orders/')"
rules:
  - name: orders
    route:
      - GET /orders/{id}
      - POST /orders/{id}
    auth: token
    allow: reads_orders
  - name: things
    route: GET /things/{id}
    auth: token
    allow: reads_orders || token == 'x'
"""


@pytest.mark.parametrize("asked", [("GET", "/orders/1"), ("POST", "/orders/1"), ("GET", "/things/1")])
def test_a_define_that_reads_the_route_is_decided_per_route_in_the_cached_policy(tmp_path, asked):
    # A define is computed once per request and shared by the rules that use it, but not
    # across table cells whose request.method and request.route differ.
    response = authorizer(tmp_path, ROUTE_DEFINE).authorize(event(*asked, "y")).response
    assert policy_eval.evaluate_response(response, arn_of("GET", "/orders/1")) == "allow"
    assert policy_eval.evaluate_response(response, arn_of("POST", "/orders/1")) != "allow"
    assert policy_eval.evaluate_response(response, arn_of("GET", "/things/1")) != "allow"


# -- an independent model of API Gateway's IAM evaluation (not ruleauth's policy_eval) ------
# `*` matches any run of characters, `/` and the empty string included; `?` exactly one
# character; any matching Deny wins; no matching Allow is an implicit deny.


@functools.cache
def _iam_regex(resource: str) -> re.Pattern:
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in resource), re.DOTALL)


def iam_outcome(response: dict, arn: str) -> str:
    if "isAuthorized" in response:
        return "allow" if response["isAuthorized"] is True else "implicit_deny"
    effects = set()
    for statement in response["policyDocument"]["Statement"]:
        assert statement["Action"] == "execute-api:Invoke"
        resources = [statement["Resource"]] if isinstance(statement["Resource"], str) else statement["Resource"]
        if any(_iam_regex(r).fullmatch(arn) for r in resources):
            effects.add(statement["Effect"])
    return "explicit_deny" if "Deny" in effects else "allow" if "Allow" in effects else "implicit_deny"


def resources_of(response: dict) -> list[str]:
    return [
        r
        for s in response["policyDocument"]["Statement"]
        for r in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])
    ]


def test_A03_a_wildcard_in_the_request_path_never_becomes_a_wildcard_in_the_policy(tmp_path):
    prefix = "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/"
    cached = authorizer(tmp_path, ROLES, "identity")
    templates = (
        {e.pattern for e in cached.ruleset.table.entries}
        | {pattern for gaps in cached.ruleset.table.gaps for candidates in gaps for pattern, _ in candidates}
        | set(EMPTY_SEGMENT_DENIES)
    )
    for mode in ("identity", "route"):
        response = authorizer(tmp_path, ROLES, mode).authorize(event("GET", "/files/*", "reader:1")).response
        assert {r[len(prefix) :] for r in resources_of(response)} <= templates
        assert policy_eval.evaluate_response(response, arn_of("GET", "/user/1/sensitive")) != "allow"
    # Without caching the asked ARN is used, with each * or ? pinned to one character.
    disabled = authorizer(tmp_path, ROLES, "disabled").authorize(event("GET", "/files/a*", "reader:1")).response
    assert resources_of(disabled) == [prefix + "GET/files/a?"]
    assert policy_eval.evaluate_response(disabled, arn_of("GET", "/files/a*")) == "allow"
    assert policy_eval.evaluate_response(disabled, arn_of("GET", "/files/abc")) != "allow"


@pytest.mark.parametrize("mode", ["identity", "route", "disabled"])
def test_A07_policies_pin_partition_region_account_api_and_stage(tmp_path, mode):
    request = build_event(
        "rest-request",
        "GET",
        "/public",
        headers={"Authorization": "admin:1"},
        api={"region": "cn-north-1", "account_id": "210987654321", "api_id": "zz9", "stage": "prod"},
    )
    request["methodArn"] = request["methodArn"].replace("arn:aws:", "arn:aws-cn:")
    response = authorizer(tmp_path, ROLES, mode).authorize(request).response
    for statement in response["policyDocument"]["Statement"]:
        resources = [statement["Resource"]] if isinstance(statement["Resource"], str) else statement["Resource"]
        for resource in resources:
            assert resource.startswith("arn:aws-cn:execute-api:cn-north-1:210987654321:zz9/prod/")
    other_stage = "arn:aws-cn:execute-api:cn-north-1:210987654321:zz9/dev/GET/public"
    assert policy_eval.evaluate_response(response, other_stage) != "allow"


def test_route_mode_answers_for_the_matched_routes_pattern_only_when_the_api_route_is_the_rules(tmp_path):
    request = event("GET", "/user/1", "reader:1")
    request["resource"] = "/user/{id}"
    response = authorizer(tmp_path, ROLES, "route").authorize(request).response
    prefix = "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/"
    assert response["policyDocument"]["Statement"] == [
        {
            "Action": "execute-api:Invoke",
            "Effect": "Allow",
            "Resource": prefix + "GET/user/*",
        },
        {  # what the `*` also matches: paths with an empty segment, which no route matches
            "Action": "execute-api:Invoke",
            "Effect": "Deny",
            "Resource": [prefix + p for p in EMPTY_SEGMENT_DENIES],
        },
    ]


def test_disabled_mode_answers_for_the_asked_arn_only(tmp_path):
    response = authorizer(tmp_path, ROLES, "disabled").authorize(event("GET", "/user/1", "reader:1")).response
    assert response["policyDocument"]["Statement"][0]["Resource"] == arn_of("GET", "/user/1")


def sample_paths(route_path: str) -> list[str]:
    """Concrete paths for a rule route, as API Gateway would put them in a method ARN."""
    values = {"param": ["1", "public", "items"], "greedy": ["x", "x/y", "users/7", "a/b/c/d/e"]}
    parts = route_path.strip("/").split("/") if route_path != "/" else []
    options = []
    for part in parts:
        if part.endswith("+}"):
            options.append(values["greedy"])
        elif part.startswith("{"):
            options.append(values["param"])
        else:
            options.append([part])
    return ["/" + "/".join(choice) for choice in itertools.product(*options)]


def table_requests(ruleset) -> list[tuple[str, str]]:
    requests = []
    for rule in ruleset.rules:
        for route in rule.routes:
            methods = METHODS if route.method == "ANY" else (route.method,)
            requests.extend((m, p) for m in methods for p in sample_paths(route.path))
    return requests


EXAMPLES = [
    ("rules", [{"Authorization": v} for v in ("17", "2", "abc")], None),
    (
        "examples/jwt-api",
        [{"Authorization": "Bearer t"}],
        [
            {"iss": "https://login.example.com", "sub": "u1", "scope": "orders:read", "tenant": "acme"},
            {"iss": "https://login.example.com", "sub": "u2", "groups": ["admin"]},
            {
                "iss": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Example",
                "sub": "p",
                "scope": "orders/read",
            },
            {"iss": "https://login.example.com", "sub": "u3"},
        ],
    ),
]


@pytest.mark.parametrize("folder, header_sets, claim_sets", EXAMPLES, ids=["demo", "jwt-api"])
def test_the_decision_is_the_policy_and_equals_the_rule_decision_for_every_route(folder, header_sets, claim_sets):
    cached = Authorizer.load(ROOT / folder)
    assert cached.ruleset.cache.mode == "identity"
    requests = table_requests(cached.ruleset)
    for headers in header_sets:
        for claims in claim_sets or [None]:
            for method, path in requests:
                result = cached.authorize(build_event("rest-request", method, path, headers=headers), claims=claims)
                rule_decision = _rule_decision(cached, method, path, headers, claims)
                assert result.decision.outcome == rule_decision, (method, path, headers, claims)
                if result.response is not None:
                    assert (result.gateway_outcome == "allow") == (rule_decision == "allow")
                    # ...and a cached copy of it answers every other route as the rules do.
                    for other_method, other_path in requests:
                        expected = _rule_decision(cached, other_method, other_path, headers, claims)
                        if expected == "unauthorized":
                            continue
                        got = policy_eval.evaluate_response(result.response, arn_of(other_method, other_path))
                        assert (got == "allow") == (expected == "allow"), (method, path, other_method, other_path)


# Keyed by the cached authorizer itself: an id() key outlives its object, and a later
# authorizer given the same id would be judged by another rule set's oracle.
_ORACLES: weakref.WeakKeyDictionary[Authorizer, Authorizer] = weakref.WeakKeyDictionary()


def _rule_decision(cached: Authorizer, method: str, path: str, headers: dict, claims) -> str:
    """The rules' own answer for one request: the same rule set decided without caching."""
    import dataclasses

    if cached not in _ORACLES:
        ruleset = dataclasses.replace(
            cached.ruleset, cache=dataclasses.replace(cached.ruleset.cache, mode="disabled"), table=None
        )
        _ORACLES[cached] = Authorizer(ruleset, verifier=cached.verifier)
    return (
        _ORACLES[cached]
        .authorize(build_event("rest-request", method, path, headers=headers), claims=claims)
        .decision.outcome
    )


# -- the property: random route tables, rules and callers ---------------------------------
#
# Every table has a root route (`/`, for some methods), and every request set holds the root,
# trailing slashes, double slashes, deeper unlisted paths and parameter values with `*` and
# `?`. Callers may carry a context value too large for the whole table (the per-request
# fallback) and a principal that fails. Responses are judged by the independent IAM model
# above against the rules' own answers (the same rules with cache.mode disabled): for every
# (asked, other request) pair API Gateway would answer from the cached copy.

SEGMENTS = st.sampled_from(["a", "b", "c", "{id}", "{key}"])
PARAM_VALUES = ("1", "a", "x*", "?", "secre*", "a?b", "*")
ROLES_DRAWN = ("r1", "r2", "r3")
REQUEST_METHODS = ("GET", "POST", "DELETE")
PAD = 7000  # bytes of context: the whole table no longer fits in 8 KB, one route does
STATS = {"tables": 0, "refused": 0, "requests": 0, "pairs": 0}


@st.composite
def route_tables(draw):
    count = draw(st.integers(min_value=1, max_value=6))
    routes, seen = [], set()
    root_method = draw(st.sampled_from(["GET", "POST", "ANY"]))
    routes.append((root_method, "/", sorted(draw(st.sets(st.sampled_from(ROLES_DRAWN), max_size=3)))))
    seen.add((root_method, "/"))
    for _ in range(count):
        depth = draw(st.integers(min_value=1, max_value=3))
        parts = [draw(SEGMENTS) for _ in range(depth)]
        if draw(st.booleans()) and draw(st.booleans()):
            parts[-1] = "{rest+}"
        # parameter names must be unique within a path
        names = iter(f"p{i}" for i in range(10))
        parts = [
            f"{{{next(names)}}}" if p == "{id}" or p == "{key}" else (f"{{{next(names)}+}}" if p == "{rest+}" else p)
            for p in parts
        ]
        method = draw(st.sampled_from(["GET", "POST", "DELETE", "ANY"]))
        path = "/" + "/".join(parts)
        shape = (method, re.sub(r"\{[^}]+\}", "{}", path))
        if shape in seen:
            continue
        seen.add(shape)
        allowed_roles = draw(st.sets(st.sampled_from(ROLES_DRAWN), max_size=3))
        routes.append((method, path, sorted(allowed_roles)))
    return routes


@st.composite
def callers(draw, principal: bool, pad: bool):
    """(role, headers): roles r1..r3 and r4 (no rule names it); a principal that is too long or
    missing (when the rules read it), and a context value too large for the whole table."""
    found = []
    for role in ("r1", "r2", "r3", "r4"):
        headers = {"Authorization": role}
        if principal:
            user = draw(st.sampled_from(["ok", "long", "missing"]))
            if user != "missing":
                headers["X-User"] = "u" * (300 if user == "long" else 8)
        if pad and draw(st.booleans()):
            headers["X-Pad"] = "p" * PAD
        found.append((role, headers))
    return found


def rules_text(routes, mode: str, principal: bool = False, pad: bool = False) -> str:
    lines = [
        "version: 1",
        "token: {header: Authorization}",
        f"cache: {{mode: {mode}, sources: {{headers: [Authorization, X-User, X-Pad]}}}}",
    ]
    if principal:
        lines.append("principal: \"request.headers['x-user']\"")
    if pad:
        lines += ["context:", "  pad: \"request.headers['x-pad']\""]
    lines.append("rules:")
    for index, (method, path, roles) in enumerate(routes):
        lines += [
            f"  - name: rule {index}",
            f"    route: '{method} {path}'",
            "    auth: token",
            '    allow: "token in [' + ", ".join(f"'{r}'" for r in roles) + ']"',
        ]
    return "\n".join(lines) + "\n"


def property_requests(routes) -> list[tuple[str, str]]:
    """Concrete requests for a table: each route's paths (parameter values with `*` and `?`),
    and around them the root, trailing and double slashes, and one level deeper."""
    paths = {"/", "//", "/x/"}
    for _, path, _ in routes:
        parts = path.strip("/").split("/") if path != "/" else []
        options = [
            [PARAM_VALUES[0], PARAM_VALUES[2 + len(parts) % 5]]
            if part.startswith("{") and not part.endswith("+}")
            else ["q", "q/r*"]
            if part.endswith("+}")
            else [part]
            for part in parts
        ]
        for choice in itertools.product(*options):
            concrete = "/" + "/".join(choice)
            paths.update({concrete, concrete + "/", concrete + "/z", "/" + concrete})
    return [(m, p) for m in REQUEST_METHODS for p in sorted(paths)]


# Event kinds: identity mode reuses a response for every request of the caller; route mode
# for every request under the API's route (the cache key's route).
KINDS = (
    "identity rest-request",
    "identity http-2.0",
    "identity http-1.0",
    "identity rest-token",
    "route http $default",
    "route http ANY /{proxy+}",
    "route rest /{proxy+}",
    "route rest resource",
)


def kind_event(kind: str, method: str, path: str, headers: dict, resource: str | None) -> dict:
    event_type = (
        kind.split(" ")[1] if kind.startswith("identity") else ("http-2.0" if " http " in kind else "rest-request")
    )
    request = build_event(event_type, method, path, headers=headers)
    if kind == "route http ANY /{proxy+}":
        request["routeKey"] = request["requestContext"]["routeKey"] = "ANY /{proxy+}"
    elif kind == "route rest /{proxy+}":
        request["resource"] = request["requestContext"]["resourcePath"] = "/{proxy+}"
    elif kind == "route rest resource":
        request["resource"] = request["requestContext"]["resourcePath"] = resource
    return request


def shares_cache(kind: str, asked: tuple, other: tuple, routes_of: dict) -> bool:
    """Would API Gateway answer `other` from `asked`'s cached response (same caller)?"""
    if kind.startswith("identity") or kind == "route http $default":
        return True
    if other[1] == "/":
        return False  # /{proxy+} does not match the root: its requests never share this key
    if kind == "route http ANY /{proxy+}":
        return True
    if kind == "route rest /{proxy+}":
        return asked[0] == other[0]
    return asked[0] == other[0] and routes_of[other] is not None and routes_of[other] == routes_of[asked]


@settings(
    max_examples=90, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(data=st.data(), routes=route_tables(), kind=st.sampled_from(KINDS), principal=st.booleans(), pad=st.booleans())
def _property(tmp_path_factory, data, routes, kind, principal, pad):
    mode = kind.split(" ")[0]
    folder = tmp_path_factory.mktemp("property")
    (folder / "cached.yaml").write_text(rules_text(routes, mode, principal, pad))
    (folder / "disabled.yaml").write_text(rules_text(routes, "disabled", principal, pad))
    oracle = Authorizer.load(folder / "disabled.yaml")
    try:
        cached = Authorizer.load(folder / "cached.yaml")
    except RulesError as exc:
        # Only rule sets a policy cannot express exactly may be refused, and validate says why.
        assert "cannot express these rules exactly" in str(exc)
        STATS["refused"] += 1
        return
    STATS["tables"] += 1
    requests = property_requests(routes)
    # Deeper paths no rule lists, under a wildcard that must also allow listed ones, cannot be
    # denied by IAM; the load warns about them (uncovered_gaps), so they are judged elsewhere.
    table = cached.decider.table if mode == "identity" else cached.decider.route_table
    uncovered = bool(table.uncovered_gaps)
    # Route mode loads tables identity mode refuses (conflicts): under a coarse API route their
    # responses may deny an allowed route (policy_conflict), never allow a denied one.
    inexact = bool(table.conflicts)

    def judged(other, decision) -> bool:
        path = other[1]
        return not uncovered or decision.route is not None or path == "/" or "//" in path or path.endswith("/")

    for role, headers in data.draw(callers(principal and "rest-token" not in kind, pad and "rest-token" not in kind)):
        decided = {
            r: oracle.authorize(kind_event("identity rest-request", *r, headers, None)).decision for r in requests
        }
        expected = {r: d.outcome for r, d in decided.items()}
        routes_of = {r: (d.route.split(" ", 1)[1] if d.route else None) for r, d in decided.items()}
        for asked in requests:
            if kind.endswith("resource") and routes_of[asked] is None:
                continue  # no API resource matches: API Gateway calls no authorizer
            if kind.endswith("{proxy+}") and asked[1] == "/":
                continue
            result = cached.authorize(kind_event(kind, *asked, headers, routes_of[asked]))
            assert result.response is not None, (asked, result.decision.reason)
            STATS["requests"] += 1
            granted = iam_outcome(result.response, arn_of(*asked)) == "allow"
            assert granted == (expected[asked] == "allow") or (inexact and not granted), (
                kind,
                role,
                asked,
                result.decision.reason,
            )
            fallback = (
                inexact
                or not judged(asked, decided[asked])
                or "policy_per_request" in result.decision.warnings
                or (result.decision.reason == "response_too_large")
            )
            for other in requests:
                if not shares_cache(kind, asked, other, routes_of) or not judged(other, decided[other]):
                    continue
                STATS["pairs"] += 1
                got = iam_outcome(result.response, arn_of(*other))
                if expected[other] != "allow":
                    assert got != "allow", (kind, role, asked, other)  # never an over-grant
                elif not fallback:  # a fallback may deny the caller's other routes, never allow them
                    assert got == "allow", (kind, role, asked, other)


def test_property_a_cached_response_answers_every_other_request_as_the_rules_do(tmp_path_factory):
    for key in STATS:
        STATS[key] = 0
    _property(tmp_path_factory)
    print(
        f"\nproperty: {STATS['tables']} tables loaded, {STATS['refused']} refused, "
        f"{STATS['requests']} asked requests, {STATS['pairs']} (asked, other request) pairs"
    )
    assert STATS["tables"] > 0 and STATS["pairs"] > 0


# -- what validate (the cold start's load) says about a table ----------------------------


def test_a_rule_set_no_cached_policy_can_express_is_a_load_error_that_suggests_route_or_disabled(tmp_path):
    text = textwrap.dedent("""
        version: 1
        token: {header: Authorization}
        rules:
          - name: files
            route: GET /files/{name}
            auth: token
            allow: token == 'reader'
          - name: everything else under files
            route: GET /files/{name}/{rest+}
            auth: token
            allow: token == 'admin'
          - name: archive
            route: GET /files/archive/{rest+}
            auth: token
            allow: token == 'reader'
    """)
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    with pytest.raises(RulesError) as caught:
        rules_loader.load(path)
    message = str(caught.value)
    assert "cannot express these rules exactly" in message
    assert "cache.mode: route" in message and "disabled" in message
    path.write_text(text.replace("rules:", "cache: {mode: route, sources: {headers: [Authorization]}}\nrules:", 1))
    rules_loader.load(path)  # route mode expresses it


def test_a_wildcard_that_covers_unlisted_deeper_paths_is_a_load_warning(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(ROLES.replace("MODE", "identity"))
    warnings = [w.format() for w in rules_loader.load(path).warnings]
    assert any("GET /user/{id}" in w and "deeper paths" in w for w in warnings)


def big_table(routes: int, nested: bool) -> str:
    lines = ["version: 1", "token: {header: Authorization}", "rules:"]
    for index in range(routes):
        if nested:
            path = f"/svc{index // 10}/res{index % 10}/{{id}}"
        else:
            path = f"/resource-{index:03d}/{{id}}"
        lines += [
            f"  - name: r{index}",
            f"    route: GET {path}",
            "    auth: token",
            f"    allow: token == 'role{index % 3}'",
        ]
    return "\n".join(lines) + "\n"


def test_fifty_routes_fit_and_the_size_is_reported(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(big_table(50, nested=False))
    ruleset = rules_loader.load(path)
    report = size_report(ruleset.table)
    assert report.all_allowed < 8192
    response = Authorizer(ruleset).authorize(event("GET", "/resource-001/1", "role1")).response
    assert len(json.dumps(response)) < 8192


def test_a_table_whose_policy_cannot_fit_in_8_kb_is_a_load_error(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(big_table(500, nested=False))
    with pytest.raises(RulesError) as caught:
        rules_loader.load(path)
    assert "8192" in str(caught.value)


def test_when_one_callers_table_overflows_the_response_falls_back_to_the_asked_rule_route(tmp_path):
    import dataclasses

    path = tmp_path / "rules.yaml"
    path.write_text(big_table(50, nested=False))
    ruleset = rules_loader.load(path)
    from ruleauth.cel.compiler import Compiler

    # Context takes most of the 8 KB: the table no longer fits, the asked route alone does.
    padded = dataclasses.replace(
        ruleset, context={f"pad{i}": Compiler().compile("'" + "y" * 1900 + "'") for i in range(4)}
    )
    result = Authorizer(padded).authorize(event("GET", "/resource-001/1", "role1"))
    assert "policy_per_request" in result.decision.warnings
    assert result.decision.outcome == "allow"
    allows = [s["Resource"] for s in result.response["policyDocument"]["Statement"] if s["Effect"] == "Allow"]
    assert allows == [arn_of("GET", "/resource-001/*")]  # the rule route's template
    cached = result.response
    assert iam_outcome(cached, arn_of("GET", "/resource-001/2")) == "allow"
    for other in ("/resource-001/", "/resource-001/2/x", "/resource-002/1", "/resource-001//x"):
        assert iam_outcome(cached, arn_of("GET", other)) != "allow", other


@pytest.mark.parametrize("path", ["/files/secre*", "/files/secre?", "/files/*", "/files/?ecret"])
def test_a_per_request_fallback_never_allows_what_a_wildcard_in_the_request_path_would_reach(tmp_path, path):
    # The full policy does not fit (a large context value), so the response is for the asked
    # route; its cached copy must not allow GET /files/secret, which only admin may call.
    text = textwrap.dedent("""
        version: 1
        token: {header: Authorization}
        cache: {mode: identity, sources: {headers: [Authorization, X-Pad]}}
        context:
          pad: "request.headers['x-pad']"
        rules:
          - name: files
            route: GET /files/{name}
            auth: token
            allow: token in ['admin', 'user']
          - name: secret
            route: GET /files/secret
            auth: token
            allow: token == 'admin'
          - name: others
            route: [OTHERS]
            auth: token
            allow: "true"
    """).replace("OTHERS", ", ".join(f"'GET /other{i}/{{id}}'" for i in range(20)))
    auth = authorizer(tmp_path, text)
    request = build_event("rest-request", "GET", path, headers={"Authorization": "user", "X-Pad": "p" * 7000})
    result = auth.authorize(request)
    assert "policy_per_request" in result.decision.warnings
    assert result.decision.outcome == "allow"
    assert iam_outcome(result.response, arn_of("GET", path)) == "allow"
    assert iam_outcome(result.response, arn_of("GET", "/files/secret")) == "explicit_deny"
    assert iam_outcome(result.response, arn_of("GET", "/files/other")) == "allow"


# -- each cached copy answers every other route as the rules do ---------------------------

ROOT_RULES = """
version: 1
token: {header: Authorization}
cache: {mode: MODE, sources: {headers: [Authorization]}}
rules:
  - name: root
    route: ROOT_ROUTE
    auth: token
    allow: ROOT_ALLOW
  - name: everything
    route: PROXY_ROUTE
    auth: token
    allow: PROXY_ALLOW
"""


def root_rules(root: str, root_allow: str, proxy: str, proxy_allow: str) -> str:
    return (
        ROOT_RULES.replace("ROOT_ROUTE", root)
        .replace("ROOT_ALLOW", root_allow)
        .replace("PROXY_ROUTE", proxy)
        .replace("PROXY_ALLOW", proxy_allow)
    )


def fixture_arn(name: str) -> str:
    from tests.fixtures import EVENTS

    return json.loads((EVENTS / name).read_text())["methodArn"]


def test_the_roots_arn_ends_in_the_method_and_a_slash():
    # The real event for GET / (tests/fixtures/events): what a `*` after `GET/` also matches.
    assert fixture_arn("rest-token-wildcard-stage.json").endswith("/GET/")


def test_a_policy_cached_from_a_proxy_route_denies_the_root_the_rules_deny(tmp_path):
    from ruleauth.tools.cli import policy_grants

    text = root_rules("GET /", "token == 'admin'", "ANY /{proxy+}", "token in ['admin', 'user']")
    auth = authorizer(tmp_path, text)
    result = auth.authorize(event("GET", "/anything", "user"))
    assert result.decision.outcome == "allow"
    assert iam_outcome(result.response, arn_of("GET", "/")) != "allow"
    assert iam_outcome(result.response, arn_of("GET", "/other/thing")) == "allow"
    assert "GET /" not in policy_grants(auth.ruleset, result)
    admin = auth.authorize(event("GET", "/anything", "admin")).response
    assert iam_outcome(admin, arn_of("GET", "/")) == "allow"


def test_a_deny_for_a_proxy_route_leaves_an_allowed_root_allowed(tmp_path):
    text = root_rules("ANY /", "token == 'user'", "DELETE /{proxy+}", "token == 'admin'")
    result = authorizer(tmp_path, text).authorize(event("DELETE", "/x", "user"))
    assert result.decision.outcome == "deny"
    assert iam_outcome(result.response, arn_of("DELETE", "/")) == "allow"
    assert iam_outcome(result.response, arn_of("DELETE", "/x/y")) != "allow"


@pytest.mark.parametrize("path", ["/orders/", "/orders//1", "//orders/1", "/orders/1/", "//", "/x//"])
def test_a_path_with_an_empty_segment_is_denied_by_every_cached_policy(tmp_path, path):
    # No route matches an empty segment, but IAM's `*` matches the empty string.
    text = root_rules("GET /orders/{id}", "token == 'user'", "ANY /{proxy+}", "token == 'user'")
    auth = authorizer(tmp_path, text)
    assert auth.authorize(event("GET", path, "user")).decision.reason == "no_route"
    for asked in ("/orders/1", "/a/b/c"):
        cached = auth.authorize(event("GET", asked, "user")).response
        assert iam_outcome(cached, arn_of("GET", "/orders/1")) == "allow"
        assert iam_outcome(cached, arn_of("GET", path)) != "allow", (asked, path)


@pytest.mark.parametrize("mode", ["identity", "route", "disabled"])
def test_a_method_arn_with_a_double_slash_is_decided_as_api_gateway_matches_it(tmp_path, mode):
    text = root_rules("GET /admin", "token == 'admin'", "ANY /{proxy+}", "token in ['admin', 'user']")
    auth = authorizer(tmp_path, text, mode)
    for token in ("admin", "user"):
        request = event("GET", "//admin", token)
        assert request["methodArn"].endswith("/GET//admin")
        result = auth.authorize(request)
        assert result.decision.reason == "no_route"  # `//admin` is not `/admin`
        assert result.gateway_outcome == iam_outcome(result.response, request["methodArn"]) != "allow"
        cached = auth.authorize(event("GET", "/x", token)).response
        assert iam_outcome(cached, request["methodArn"]) != "allow"


FAILING_PRINCIPAL = """
version: 1
token: {header: Authorization}
cache: {mode: MODE, sources: {headers: [Authorization, X-User]}}
principal: "request.headers['x-user']"
rules:
  - name: admin
    route: GET /admin/{x}
    auth: token
    allow: token == 'admin'
  - name: orders
    route: GET /orders/{id}
    auth: token
    allow: token in ['admin', 'user']
"""


@pytest.mark.parametrize("user", ["u" * 300, None], ids=["300 characters", "no header"])
@pytest.mark.parametrize("mode", ["identity", "route"])
def test_a_failing_principal_denies_every_route_in_the_cached_copy_as_when_asked_directly(tmp_path, user, mode):
    auth = authorizer(tmp_path, FAILING_PRINCIPAL, mode)
    headers = {"Authorization": "user", **({"X-User": user} if user else {})}

    def ask(path):
        return auth.authorize(build_event("rest-request", "GET", path, headers=headers))

    assert ask("/orders/1").decision.reason == "principal_error"
    denied = ask("/admin/x")
    assert denied.decision.outcome == "deny"
    assert iam_outcome(denied.response, arn_of("GET", "/orders/1")) != "allow"
    assert iam_outcome(ask("/orders/1").response, arn_of("GET", "/orders/2")) != "allow"


COARSE = """
version: 1
token: {header: Authorization}
cache: {mode: route, sources: {headers: [Authorization]}}
rules:
  - name: files
    route: GET /files/{name}
    auth: token
    allow: token in ['admin', 'user']
  - name: secrets
    route: GET /files/{name}/secret
    auth: token
    allow: token == 'admin'
"""


def coarse_event(kind: str, path: str, token: str) -> dict:
    """A request as API Gateway sends it when the API's one route is coarser than the rules'."""
    headers = {"Authorization": token}
    if kind == "rest /{proxy+}":
        request = build_event("rest-request", "GET", path, headers=headers)
        request["resource"] = request["requestContext"]["resourcePath"] = "/{proxy+}"
        return request
    request = build_event("http-2.0", "GET", path, headers=headers)
    request["routeKey"] = request["requestContext"]["routeKey"] = (
        "$default" if kind == "http $default" else "ANY /{proxy+}"
    )
    return request


@pytest.mark.parametrize("kind", ["http $default", "http ANY /{proxy+}", "rest /{proxy+}"])
def test_route_mode_under_a_coarse_api_route_answers_every_rule_route_under_it(tmp_path, kind):
    auth = authorizer(tmp_path, COARSE)
    result = auth.authorize(coarse_event(kind, "/files/x", "user"))
    assert result.decision.outcome == "allow"
    cached = result.response  # API Gateway reuses it for every path under the API's route
    assert iam_outcome(cached, arn_of("GET", "/files/y")) == "allow"
    for other in ("/files/x/secret", "/files/x/y/z", "/elsewhere", "/files/", "/"):
        assert iam_outcome(cached, arn_of("GET", other)) != "allow", other
    admin = auth.authorize(coarse_event(kind, "/files/x", "admin")).response
    assert iam_outcome(admin, arn_of("GET", "/files/x/secret")) == "allow"
    denied = auth.authorize(coarse_event(kind, "/files/x/secret", "user")).response
    assert iam_outcome(denied, arn_of("GET", "/files/y")) == "allow"


@pytest.mark.parametrize("kind", ["http $default", "http ANY /{proxy+}", "rest /{proxy+}"])
def test_a_context_that_names_the_rule_route_is_never_cached_for_another_rule_route(tmp_path, kind):
    # Under a coarse API route one cached response serves every rule route below it, but a
    # context computed from request.route differs between them: such a response allows only
    # the asked ARN, so no other route is served the asked route's context.
    text = COARSE.replace("rules:", "context: {route: request.route}\nrules:", 1)
    auth = authorizer(tmp_path, text, "route")
    result = auth.authorize(coarse_event(kind, "/files/x", "user"))
    assert result.decision.outcome == "allow"
    assert result.response["context"]["route"] == "GET /files/{name}"
    assert iam_outcome(result.response, arn_of("GET", "/files/x")) == "allow"
    for other in ("/files/y", "/files/x/secret", "/elsewhere"):
        assert iam_outcome(result.response, arn_of("GET", other)) != "allow", other


USAGE_KEY = FAILING_PRINCIPAL.replace("principal: \"request.headers['x-user']\"", "usage_identifier_key: \"'key-1'\"")


@pytest.mark.parametrize("event_type", ["rest-request", "rest-token"])
@pytest.mark.parametrize("mode", ["identity", "route"])
def test_a_response_that_allows_anything_carries_the_usage_identifier_key(tmp_path, event_type, mode):
    auth = authorizer(tmp_path, USAGE_KEY, mode)
    denied = auth.authorize(build_event(event_type, "GET", "/admin/x", headers={"Authorization": "user"}))
    assert denied.decision.outcome == "deny"
    # Identity mode, and route mode without a known API route (the events here have none),
    # answer for the caller's other routes too.
    assert iam_outcome(denied.response, arn_of("GET", "/orders/1")) == "allow"
    assert denied.response["usageIdentifierKey"] == "key-1"
    allowed = auth.authorize(build_event(event_type, "GET", "/orders/1", headers={"Authorization": "user"}))
    assert allowed.response["usageIdentifierKey"] == "key-1"
    nothing = auth.authorize(build_event(event_type, "GET", "/admin/x", headers={"Authorization": "x"}))
    assert "usageIdentifierKey" not in nothing.response  # it allows nothing


def test_the_longest_legal_arn_against_the_deepest_legal_table_is_decided(tmp_path):
    # Was a regex backtracking for minutes (bench/run.py measures it); here only the outcome.
    from ruleauth.policy.response_check import MAX_RESOURCE_CHARS
    from ruleauth.policy.synthesis import PREFIX_ESTIMATE

    # The loader refuses routes whose resource ARN exceeds 512 characters: that bounds depth.
    depth = (MAX_RESOURCE_CHARS - PREFIX_ESTIMATE - len("OPTIONS/export")) // 2
    deep = "/".join(f"{{p{i}}}" for i in range(depth)) + "/export"
    text = f"""
version: 1
token: {{header: Authorization}}
cache: {{mode: identity, sources: {{headers: [Authorization]}}}}
rules:
  - name: export
    route: GET /{deep}
    auth: token
    allow: token == 'admin'
  - name: static
    route: GET /static/{{path+}}
    auth: token
    allow: "true"
"""
    auth = authorizer(tmp_path, text)
    prefix = arn_of("GET", "/static/")
    pairs = (1600 - len(prefix) - 1) // 2
    path = "/static/" + "a/" * pairs + "b" * (1600 - len(prefix) - 2 * pairs)
    request = event("GET", path, "admin")
    assert len(request["methodArn"]) == 1600
    result = auth.authorize(request)
    assert result.decision.outcome == "allow" and result.status == 200


def test_route_mode_under_the_rules_own_route_key_still_denies_a_more_specific_rule_route(tmp_path):
    # The API has GET /files/{name} but no GET /files/secret: both paths share its route key.
    text = COARSE.replace("GET /files/{name}/secret", "GET /files/secret")
    auth = authorizer(tmp_path, text)
    request = build_event("http-2.0", "GET", "/files/x", headers={"Authorization": "user"})
    request["routeKey"] = request["requestContext"]["routeKey"] = "GET /files/{name}"
    cached = auth.authorize(request).response
    assert iam_outcome(cached, arn_of("GET", "/files/y")) == "allow"
    assert iam_outcome(cached, arn_of("GET", "/files/secret")) != "allow"
    # Under its own route key, the more specific route's answer is its pattern alone.
    request = build_event("http-2.0", "GET", "/files/secret", headers={"Authorization": "admin"})
    request["routeKey"] = request["requestContext"]["routeKey"] = "GET /files/secret"
    assert resources_of(auth.authorize(request).response) == [arn_of("GET", "/files/secret")]


def test_route_mode_remembers_the_scope_of_every_api_route_of_a_large_table(tmp_path, monkeypatch):
    """More API routes than SCOPE_MEMO (each rule route its own API route): the second round
    of requests analyses no API route again (the memo grows with the table, not LRU churn)."""
    from ruleauth.runtime import decision as decision_module

    routes = [f"/svc{k}/{{id}}/res{j}" for k in range(40) for j in range(10)]
    assert len(routes) > decision_module.SCOPE_MEMO
    rules = "version: 1\ntoken: {header: Authorization}\ncache: {mode: MODE, sources: {headers: [Authorization]}}\n"
    rules += "rules:\n" + "".join(
        f"  - name: r{i}\n    route: GET {route}\n    auth: token\n    allow: token == 'yes'\n"
        for i, route in enumerate(routes)
    )
    cached = authorizer(tmp_path, rules, "route")
    calls = []
    real = decision_module.api_route_is_the_rules
    monkeypatch.setattr(decision_module, "api_route_is_the_rules", lambda *args: calls.append(1) or real(*args))
    for round_ in range(2):
        for route in routes:
            request = event("GET", route.replace("{id}", "7"), "yes")
            request["resource"] = route
            assert cached.authorize(request).status == 200
        if round_ == 0:
            assert len(calls) == len(routes)
            calls.clear()
    assert calls == []


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(data=st.data(), routes=route_tables())
def test_a_tables_own_reduction_keeps_exactly_what_reduce_patterns_keeps(tmp_path_factory, data, routes):
    """The table reduces from an index of what covers each pattern it can emit: for any set of
    those patterns (and so any caller's Allows and Denies) it keeps what reduce_patterns keeps."""
    from ruleauth.policy.synthesis import build_table, reduce_patterns

    folder = tmp_path_factory.mktemp("reduce")
    (folder / "rules.yaml").write_text(rules_text(routes, "route"))
    table = build_table(rules_loader.load(folder / "rules.yaml"))
    emittable = sorted(
        {e.pattern for e in table.entries}
        | set(EMPTY_SEGMENT_DENIES)
        | {pattern for gaps in table.gaps for candidates in gaps for pattern, _ in candidates}
    )
    for _ in range(5):
        chosen = data.draw(st.lists(st.sampled_from(emittable), max_size=len(emittable)))
        assert table._reduce(chosen) == reduce_patterns(chosen)
    allowed = data.draw(st.lists(st.booleans(), min_size=len(table.entries), max_size=len(table.entries)))
    allows, denies = table.synthesise(allowed, None)
    assert (allows, denies) == (reduce_patterns(allows), reduce_patterns(denies))
