"""Routing: segment-by-segment specificity, the winner decides alone (Y10), and A6 path variants."""

import pytest

from ruleauth.rules.routes import Router, parse_route
from ruleauth.tools.synthetic_events import build_event

NOW = 1_800_000_000.0


def router(*routes):
    return Router([(parse_route(r), r) for r in routes])


def winner(table, method, path):
    match = table.find(method, path)
    return (match.target, dict(match.params)) if match else None


def test_literal_beats_param_beats_greedy():
    table = router("GET /a/{x+}", "GET /a/{id}", "GET /a/b")
    assert winner(table, "GET", "/a/b") == ("GET /a/b", {})
    assert winner(table, "GET", "/a/c") == ("GET /a/{id}", {"id": "c"})
    assert winner(table, "GET", "/a/c/d") == ("GET /a/{x+}", {"x": "c/d"})


def test_segments_are_compared_left_to_right():
    table = router("GET /{a}/b", "GET /x/{b}")
    assert winner(table, "GET", "/x/b") == ("GET /x/{b}", {"b": "b"})


def test_explicit_method_beats_any_only_after_the_path():
    table = router("ANY /a/b", "GET /a/{id}")
    assert winner(table, "GET", "/a/b")[0] == "ANY /a/b"  # a more specific path wins first
    table = router("ANY /a/{id}", "GET /a/{id2}")
    assert winner(table, "GET", "/a/1")[0] == "GET /a/{id2}"
    assert winner(table, "POST", "/a/1")[0] == "ANY /a/{id}"


def test_param_needs_one_non_empty_segment_and_greedy_one_or_more():
    table = router("GET /a/{id}", "GET /g/{p+}")
    assert winner(table, "GET", "/a/") is None
    assert winner(table, "GET", "/a") is None
    assert winner(table, "GET", "/a/1/2") is None
    assert winner(table, "GET", "/g") is None
    assert winner(table, "GET", "/g/") is None
    assert winner(table, "GET", "/g/1//2") is None
    assert winner(table, "GET", "/g/1/2/3") == ("GET /g/{p+}", {"p": "1/2/3"})


def test_literals_match_exactly_and_case_sensitively():
    table = router("GET /Admin")
    assert winner(table, "GET", "/Admin") is not None
    assert winner(table, "GET", "/admin") is None


def test_root_route_matches_only_the_root():
    table = router("GET /")
    assert winner(table, "GET", "/") == ("GET /", {})
    assert winner(table, "GET", "/x") is None


def test_websocket_connect_matches_only_websocket_requests():
    table = router("$connect", "ANY /{p+}")
    assert winner(table, "", "$connect") == ("$connect", {})
    assert winner(table, "GET", "/$connect")[0] == "ANY /{p+}"


def test_the_router_lists_every_candidate_most_specific_first():
    table = router("ANY /{p+}", "GET /a/{id}", "GET /a/b", "ANY /a/b")
    assert [m.target for m in table.candidates("GET", "/a/b")] == ["GET /a/b", "ANY /a/b", "GET /a/{id}", "ANY /{p+}"]


# --- through the authorizer ----------------------------------------------------------

LAYERED = """\
version: 1
cache: {mode: disabled}
rules:
  - name: public catch-all
    route: ANY /{proxy+}
    auth: none
    allow: true
  - name: admin only
    route: GET /admin/{page}
    auth: none
    allow: "request.headers['x-role'] == 'admin'"
  - name: health
    route: GET /health
    auth: none
    allow: true
  - name: ws
    route: $connect
    auth: none
    allow: "request.query.room == 'lobby'"
"""


def decide(auth, event_type, method, path, **kwargs):
    return auth.authorize(build_event(event_type, method, path, **kwargs), now=NOW)


def test_Y10_the_winner_decides_alone_a_broader_allow_never_rescues_a_narrower_deny(authorizer):
    auth = authorizer(LAYERED)
    denied = decide(auth, "rest-request", "GET", "/admin/users", headers={"X-Role": "user"})
    assert (denied.decision.rule, denied.decision.outcome, denied.status) == ("admin only", "deny", 403)
    allowed = decide(auth, "rest-request", "GET", "/admin/users", headers={"X-Role": "admin"})
    assert (allowed.decision.rule, allowed.decision.outcome) == ("admin only", "allow")
    other = decide(auth, "rest-request", "POST", "/admin/users")
    assert (other.decision.rule, other.decision.outcome) == ("public catch-all", "allow")


def test_no_route_is_403_no_route(authorizer):
    auth = authorizer(LAYERED.replace("ANY /{proxy+}", "ANY /public/{proxy+}"))
    result = decide(auth, "rest-request", "GET", "/elsewhere")
    assert (result.decision.outcome, result.decision.reason, result.status) == ("deny", "no_route", 403)
    assert result.decision.rule is None
    assert [s["Effect"] for s in result.response["policyDocument"]["Statement"]] == ["Deny"]


def test_websocket_connect_routes_to_the_connect_rule(authorizer):
    auth = authorizer(LAYERED)
    allowed = decide(auth, "websocket", "GET", "$connect", query={"room": "lobby"})
    assert (allowed.decision.rule, allowed.decision.outcome) == ("ws", "allow")
    assert allowed.response["policyDocument"]["Statement"][0]["Resource"].endswith("/prod/$connect")
    denied = decide(auth, "websocket", "GET", "$connect", query={"room": "vip"})
    assert (denied.decision.rule, denied.decision.outcome) == ("ws", "deny")


@pytest.mark.parametrize("event_type", ["rest-token", "rest-request", "http-1.0", "http-2.0"])
def test_every_event_type_routes_by_its_arn(authorizer, event_type):
    auth = authorizer(LAYERED)
    result = decide(auth, event_type, "GET", "/health")
    assert (result.decision.rule, result.decision.outcome, result.decision.route) == ("health", "allow", "GET /health")


def test_token_events_route_by_their_method_arn(authorizer):
    auth = authorizer(LAYERED)
    event = {
        "type": "TOKEN",
        "authorizationToken": "x",
        "methodArn": "arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/GET/admin/users",
    }
    result = auth.authorize(event, now=NOW)
    assert (result.decision.rule, result.decision.reason) == ("admin only", "rule_error")  # no headers in TOKEN events
    assert result.decision.params == {"page": "users"}


def test_the_arn_not_the_event_path_decides_the_route(authorizer):
    auth = authorizer(LAYERED)
    event = build_event("rest-request", "GET", "/health")
    event.update(path="/admin/users", httpMethod="POST", resource="/admin/{page}")
    result = auth.authorize(event, now=NOW)
    assert result.decision.rule == "health"


def test_route_mismatch_is_a_warning_when_api_gateways_own_route_differs(authorizer):
    auth = authorizer(LAYERED)
    event = build_event("rest-request", "GET", "/admin/users", headers={"X-Role": "admin"})
    event["resource"] = "/admin/{page}"
    assert decide_event(auth, event).decision.warnings == []
    event["resource"] = "/{proxy+}"
    result = decide_event(auth, event)
    assert result.decision.warnings == ["route_mismatch"] and result.decision.outcome == "allow"


def test_route_mismatch_from_an_http_api_route_key(authorizer):
    auth = authorizer(LAYERED)
    event = build_event("http-2.0", "GET", "/health")
    event["routeKey"] = "GET /{proxy+}"
    assert decide_event(auth, event).decision.warnings == ["route_mismatch"]
    event["routeKey"] = "$default"
    assert decide_event(auth, event).decision.warnings == []


def decide_event(auth, event):
    return auth.authorize(event, now=NOW)


STRICT = """\
version: 1
cache: {mode: disabled}
rules:
  - name: admin
    route: ANY /admin
    auth: none
    allow: false
  - name: public
    route: GET /public/{file}
    auth: none
    allow: true
"""


@pytest.mark.parametrize(
    "path",
    [
        "/admin/",
        "/ADMIN",
        "//admin",
        "/a/../admin",
        "/%61dmin",
        "/admin%2F..",
        "/./admin",
        "/admin/.",
        "/public/../admin",
        "/public/x/../../admin",
        "/public/",
        "/public//x",
        "/public/a/b",
        "/PUBLIC/x",
    ],
)
def test_A06_path_normalisation_variants_are_denied_unless_they_match_a_route_exactly(authorizer, path):
    auth = authorizer(STRICT)
    event = build_event("rest-request", "GET", "/x")
    # The ARN carries the path exactly as sent (build_event would strip leading slashes).
    event["methodArn"] = "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET" + path
    event["path"] = path
    result = auth.authorize(event, now=NOW)
    assert result.decision.request.path == path
    if result.decision.rule is not None:
        # Matching a route exactly: only the literal `public/{file}` segment shape can do it.
        assert result.decision.rule == "public" and result.decision.params["file"] not in ("", "..")
        assert path.count("/") == 2 and path.startswith("/public/")
    else:
        assert (result.decision.outcome, result.decision.reason, result.status) == ("deny", "no_route", 403)


def test_A06_a_dot_segment_is_an_ordinary_parameter_value_never_a_traversal(authorizer):
    auth = authorizer(STRICT)
    result = decide(auth, "rest-request", "GET", "/public/..")
    assert result.decision.rule == "public" and result.decision.params == {"file": ".."}
    # ...and the emitted policy names exactly that path, so it cannot cover /admin.
    assert result.response["policyDocument"]["Statement"][0]["Resource"].endswith("/prod/GET/public/..")


def test_A06_the_exact_route_still_works(authorizer):
    auth = authorizer(STRICT)
    assert decide(auth, "rest-request", "GET", "/public/readme").decision.outcome == "allow"
    assert decide(auth, "rest-request", "GET", "/admin").decision.rule == "admin"


def test_shadow_rules_never_decide(authorizer):
    auth = authorizer(
        STRICT + "  - name: shadow admin\n    route: ANY /admin\n    mode: shadow\n    auth: none\n    allow: true\n"
    )
    result = decide(auth, "rest-request", "GET", "/admin")
    assert (result.decision.rule, result.decision.outcome) == ("admin", "deny")
    assert [(s.rule, s.decision) for s in result.decision.shadows] == [("shadow admin", "allow")]
