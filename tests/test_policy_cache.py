"""Policies stay right when API Gateway caches them (SPEC "Caching", issue 4).

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
from pathlib import Path

import pytest
import hypothesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ruleauth import policy_eval, rules_loader
from ruleauth.authorizer import Authorizer
from ruleauth.errors import RulesError
from ruleauth.model import METHODS
from ruleauth.policy_synthesis import EMPTY_SEGMENT_DENIES, size_report
from ruleauth.synthetic_events import build_event

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

@functools.lru_cache(maxsize=None)
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
    return [r for s in response["policyDocument"]["Statement"]
            for r in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])]


def test_A03_a_wildcard_in_the_request_path_never_becomes_a_wildcard_in_the_policy(tmp_path):
    prefix = "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/"
    cached = authorizer(tmp_path, ROLES, "identity")
    templates = {e.pattern for e in cached.ruleset.table.entries} | {
        pattern for gaps in cached.ruleset.table.gaps for candidates in gaps for pattern, _ in candidates
    } | set(EMPTY_SEGMENT_DENIES)
    for mode in ("identity", "route"):
        response = authorizer(tmp_path, ROLES, mode).authorize(event("GET", "/files/*", "reader:1")).response
        assert {r[len(prefix):] for r in resources_of(response)} <= templates
        assert policy_eval.evaluate_response(response, arn_of("GET", "/user/1/sensitive")) != "allow"
    # Without caching the asked ARN is used, with each * or ? pinned to one character.
    disabled = authorizer(tmp_path, ROLES, "disabled").authorize(event("GET", "/files/a*", "reader:1")).response
    assert resources_of(disabled) == [prefix + "GET/files/a?"]
    assert policy_eval.evaluate_response(disabled, arn_of("GET", "/files/a*")) == "allow"
    assert policy_eval.evaluate_response(disabled, arn_of("GET", "/files/abc")) != "allow"


@pytest.mark.parametrize("mode", ["identity", "route", "disabled"])
def test_A07_policies_pin_partition_region_account_api_and_stage(tmp_path, mode):
    request = build_event("rest-request", "GET", "/public", headers={"Authorization": "admin:1"},
                          api={"region": "cn-north-1", "account_id": "210987654321", "api_id": "zz9", "stage": "prod"})
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
    assert response["policyDocument"]["Statement"] == [{
        "Action": "execute-api:Invoke", "Effect": "Allow",
        "Resource": "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET/user/*",
    }]


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
    ("examples/jwt-api", [{"Authorization": "Bearer t"}], [
        {"iss": "https://login.example.com", "sub": "u1", "scope": "orders:read", "tenant": "acme"},
        {"iss": "https://login.example.com", "sub": "u2", "groups": ["admin"]},
        {"iss": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Example", "sub": "p", "scope": "orders/read"},
        {"iss": "https://login.example.com", "sub": "u3"},
    ]),
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


_ORACLES: dict[int, Authorizer] = {}


def _rule_decision(cached: Authorizer, method: str, path: str, headers: dict, claims) -> str:
    """The rules' own answer for one request: the same rule set decided without caching."""
    import dataclasses

    key = id(cached)
    if key not in _ORACLES:
        ruleset = dataclasses.replace(cached.ruleset, cache=dataclasses.replace(cached.ruleset.cache, mode="disabled"),
                                      table=None)
        _ORACLES[key] = Authorizer(ruleset, verifier=cached.verifier)
    return _ORACLES[key].authorize(build_event("rest-request", method, path, headers=headers), claims=claims).decision.outcome


# -- the property: random route tables, rules and callers ---------------------------------

SEGMENTS = st.sampled_from(["a", "b", "c", "{id}", "{key}"])


@st.composite
def route_tables(draw):
    count = draw(st.integers(min_value=1, max_value=7))
    routes, seen = [], set()
    for _ in range(count):
        depth = draw(st.integers(min_value=1, max_value=3))
        parts = [draw(SEGMENTS) for _ in range(depth)]
        if draw(st.booleans()) and draw(st.booleans()):
            parts[-1] = "{rest+}"
        # parameter names must be unique within a path
        names = iter(f"p{i}" for i in range(10))
        parts = [f"{{{next(names)}}}" if p == "{id}" or p == "{key}" else
                 (f"{{{next(names)}+}}" if p == "{rest+}" else p) for p in parts]
        method = draw(st.sampled_from(["GET", "POST", "ANY"]))
        path = "/" + "/".join(parts)
        shape = (method, re.sub(r"\{[^}]+\}", "{}", path))
        if shape in seen:
            continue
        seen.add(shape)
        allowed_roles = draw(st.sets(st.sampled_from(["r1", "r2", "r3"]), max_size=3))
        routes.append((method, path, sorted(allowed_roles)))
    return routes


def rules_text(routes, mode: str) -> str:
    lines = ["version: 1", "token: {header: Authorization}",
             f"cache: {{mode: {mode}, sources: {{headers: [Authorization]}}}}", "rules:"]
    for index, (method, path, roles) in enumerate(routes):
        lines += [f"  - name: rule {index}", f"    route: '{method} {path}'", "    auth: token",
                  "    allow: \"token in [" + ", ".join(f"'{r}'" for r in roles) + "]\""]
    return "\n".join(lines) + "\n"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(routes=route_tables(), asked_role=st.sampled_from(["r1", "r2", "r3", "r4"]))
def test_property_a_cached_response_answers_every_other_route_as_the_rules_do(tmp_path_factory, routes, asked_role):
    folder = tmp_path_factory.mktemp("property")
    (folder / "identity.yaml").write_text(rules_text(routes, "identity"))
    (folder / "disabled.yaml").write_text(rules_text(routes, "disabled"))
    oracle = Authorizer.load(folder / "disabled.yaml")
    try:
        cached = Authorizer.load(folder / "identity.yaml")
    except RulesError as exc:
        # Only rule sets a policy cannot express exactly may be refused, and validate says why.
        assert "cannot express these rules exactly" in str(exc)
        hypothesis.event("refused: not expressible")
        return
    hypothesis.event("loaded")
    requests = table_requests(cached.ruleset)
    expected = {r: oracle.authorize(event(*r, asked_role)).decision.outcome for r in requests}
    for asked in requests:
        response = cached.authorize(event(*asked, asked_role)).response
        assert response is not None
        for other in requests:
            got = policy_eval.evaluate_response(response, arn_of(*other))
            if expected[other] != "allow":
                assert got != "allow", (asked, other)  # never an over-grant
            assert (got == "allow") == (expected[other] == "allow"), (asked, other)


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
        lines += [f"  - name: r{index}", f"    route: GET {path}", "    auth: token",
                  f"    allow: token == 'role{index % 3}'"]
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
    from ruleauth.expressions import Compiler

    # Context takes most of the 8 KB: the table no longer fits, the asked route alone does.
    padded = dataclasses.replace(ruleset, context={
        f"pad{i}": Compiler().compile("'" + "y" * 1900 + "'") for i in range(4)})
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


# -- issue 13 §2: each cached copy answers every other route as the rules do ---------------

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
    return (ROOT_RULES.replace("ROOT_ROUTE", root).replace("ROOT_ALLOW", root_allow)
            .replace("PROXY_ROUTE", proxy).replace("PROXY_ALLOW", proxy_allow))


def fixture_arn(name: str) -> str:
    from tests.fixtures import EVENTS

    return json.loads((EVENTS / name).read_text())["methodArn"]


def test_the_roots_arn_ends_in_the_method_and_a_slash():
    # The real event for GET / (tests/fixtures/events): what a `*` after `GET/` also matches.
    assert fixture_arn("rest-token-wildcard-stage.json").endswith("/GET/")


def test_a_policy_cached_from_a_proxy_route_denies_the_root_the_rules_deny(tmp_path):
    from ruleauth.cli import policy_grants

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
        "$default" if kind == "http $default" else "ANY /{proxy+}")
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


USAGE_KEY = """
version: 1
token: {header: Authorization}
cache: {mode: MODE, sources: {headers: [Authorization, X-Api-Key]}}
usage_identifier_key: "request.headers['x-api-key']"
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


@pytest.mark.parametrize("event_type", ["rest-request", "rest-token"])
def test_a_response_that_allows_anything_carries_the_usage_identifier_key(tmp_path, event_type):
    auth = authorizer(tmp_path, USAGE_KEY)
    headers = {"Authorization": "user", "X-Api-Key": "key-1"}
    denied = auth.authorize(build_event(event_type, "GET", "/admin/x", headers=headers))
    assert denied.decision.outcome == "deny"
    if event_type == "rest-request":
        assert iam_outcome(denied.response, arn_of("GET", "/orders/1")) == "allow"
        assert denied.response["usageIdentifierKey"] == "key-1"
    nothing = auth.authorize(build_event(event_type, "GET", "/admin/x", headers={**headers, "Authorization": "x"}))
    assert "usageIdentifierKey" not in nothing.response  # allows nothing


def test_the_longest_legal_arn_against_the_deepest_legal_table_is_decided(tmp_path):
    # Was a regex backtracking for minutes (bench/run.py measures it); here only the outcome.
    deep = "/".join(f"{{p{i}}}" for i in range(4)) + "/export"
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
    path = "/static/" + "a/" * ((1600 - len(prefix) - 1) // 2) + "b"
    request = event("GET", path, "user")
    assert len(request["methodArn"]) <= 1600
    result = auth.authorize(request)
    assert result.decision.outcome == "allow" and result.status == 200
