"""Events: every real API Gateway input in the shared fixtures, normalised and decided end to end."""

import json
from pathlib import Path

import pytest

from ruleauth.errors import BadEvent
from ruleauth.policy import response_check
from ruleauth.runtime.events import parse_event
from ruleauth.tools.synthetic_events import build_event
from tests.fixtures import EVENTS as EVENTS_DIR

FIXTURES = EVENTS_DIR
NOW = 1_800_000_000.0


def fixture(name):
    return json.loads((FIXTURES / name).read_text())


INPUTS = sorted(p.name for p in FIXTURES.glob("*.json") if not p.name.startswith(("backend-", "response-")))


def test_every_input_fixture_is_covered():
    # The fixtures live in the repository, so a clone anywhere finds every one of them.
    assert FIXTURES.is_relative_to(Path(__file__).resolve().parent)
    assert sorted(EXPECTED) == INPUTS


# name: (event type, method, path, resource, a header it carries, source ip, stage)
EXPECTED = {
    "rest-token.json": ("rest-token", "POST", "/lambda-token", "", None, "", "prod"),
    "rest-token-wildcard-stage.json": ("rest-token", "GET", "/", "", None, "", "*"),
    "rest-request.json": (
        "rest-request",
        "POST",
        "/lambda-request",
        "/lambda-request",
        ("user-agent", "HTTPie/3.2.2"),
        "15.248.3.126",
        "prod",
    ),
    "rest-request-multivalue.json": (
        "rest-request",
        "GET",
        "/request",
        "/request",
        ("headerauth1", "headerValue1"),
        "...",
        "test",
    ),
    "http-v1-request.json": ("http-1.0", "GET", "/request", "/request", ("headerauth1", "headerValue1"), "...", "test"),
    "http-v1-request-multivalue.json": (
        "http-1.0",
        "GET",
        "/request",
        "/request",
        ("header2", "value1,value2"),
        "test-invoke-source-ip",
        "test",
    ),
    "http-v2-request.json": (
        "http-2.0",
        "POST",
        "/lambda",
        "/lambda",
        ("authorization", "Bearer foo"),
        "15.248.3.126",
        "$default",
    ),
    "http-v2-request-docs.json": ("http-2.0", "GET", "/request", "", ("header1", "value1"), "IP", "test"),
    "http-v2-request-routekey.json": (
        "http-2.0",
        "GET",
        "/request",
        "/merchants",
        ("authorization", "value"),
        "10.10.10.10",
        "test",
    ),
    "websocket-connect.json": (
        "websocket",
        "",
        "$connect",
        "$connect",
        ("upgrade", "websocket"),
        "192.0.2.1",
        "default",
    ),
    "websocket-connect-docs.json": (
        "websocket",
        "",
        "$connect",
        "$connect",
        ("headerauth1", "headerValue1"),
        "...",
        "default",
    ),
}


@pytest.mark.parametrize("name", INPUTS)
def test_each_fixture_parses_into_the_right_type_method_path_and_fields(name):
    kind, method, path, resource, header, source_ip, stage = EXPECTED[name]
    request = parse_event(fixture(name))
    assert (request.event_type, request.method, request.path, request.resource) == (kind, method, path, resource)
    assert (request.source_ip, request.arn.stage) == (source_ip, stage)
    assert all(k == k.lower() for k in request.headers)
    if header:
        assert request.headers[header[0]] == header[1]
    if kind == "rest-token":
        assert request.headers == {} and request.token_field == fixture(name)["authorizationToken"]
    else:
        assert request.token_field is None


def test_rest_request_headers_keep_every_value_lower_cased():
    request = parse_event(fixture("rest-request-multivalue.json"))
    assert request.headers["cache-control"] == "no-cache"
    assert request.headers["x-amz-date"] == "20170718T062915Z"
    assert request.query == {"QueryString1": "queryValue1"}
    assert request.stage_variables == {"StageVar1": "stageValue1"}
    assert request.arn.api_id == "s4x3opwd6i" and request.arn.region == "us-east-1"


def test_http_v1_multi_value_headers_are_joined_in_arrival_order_and_single_ones_kept():
    request = parse_event(fixture("http-v1-request-multivalue.json"))
    assert request.headers["header2"] == "value1,value2"
    assert request.header_values["header2"] == ("value1", "value2")
    assert request.headers["origin"] == "https://aws.amazon.com"
    assert request.headers["accept"] == "*/*"  # only in `headers`


def test_http_v2_query_cookies_and_stage_variables():
    request = parse_event(fixture("http-v2-request-docs.json"))
    assert request.query == {"parameter1": "value1,value2", "parameter2": "value"}
    assert request.query_values["parameter1"] == ("value1", "value2")
    assert request.stage_variables == {"stageVariable1": "value1", "stageVariable2": "value2"}
    assert request.cookies == {}  # the docs' cookies are bare words without '='
    assert request.request_id == "id"


def test_http_v2_cookies_list_is_parsed():
    event = build_event("http-2.0", "GET", "/x")
    event["cookies"] = ["a=1", 'b="two"', "a=3", "junk", "=x"]
    request = parse_event(event)
    assert request.cookies == {"a": "1,3", "b": "two"} and request.cookie_values["a"] == ("1", "3")


def test_cookie_header_is_parsed_for_rest_events():
    request = parse_event(build_event("rest-request", "GET", "/x", headers={"Cookie": "a=1; b=2"}))
    assert request.cookies == {"a": "1", "b": "2"}


def test_http_v2_absent_maps_are_empty():
    request = parse_event(fixture("http-v2-request.json"))
    assert (request.query, request.cookies, request.stage_variables) == ({}, {}, {})


def test_A04_differing_duplicate_headers_are_kept_apart_and_joined():
    event = build_event("rest-request", "GET", "/x")
    event["multiValueHeaders"] = {"X-Tenant": ["a"], "x-tenant": ["b"]}
    event["headers"] = {"X-Tenant": "a", "x-tenant": "b"}
    request = parse_event(event)
    assert request.header_values["x-tenant"] == ("a", "b") and request.headers["x-tenant"] == "a,b"


def test_A04_a_rule_comparing_a_duplicated_header_does_not_match_either_value(authorizer):
    auth = authorizer(
        "version: 1\ncache: {mode: disabled}\nrules:\n  - name: r\n    route: GET /x\n    auth: none\n"
        "    allow: \"request.headers['x-tenant'] == 'b'\"\n"
    )
    event = build_event("rest-request", "GET", "/x")
    event["multiValueHeaders"] = {"X-Tenant": ["a"], "x-tenant": ["b"]}
    assert auth.authorize(event, now=NOW).decision.outcome == "deny"
    v2 = build_event("http-2.0", "GET", "/x", headers={"x-tenant": "a,b"})
    assert auth.authorize(v2, now=NOW).decision.outcome == "deny"


def test_A05_duplicate_query_parameters_are_joined_and_kept_apart():
    event = build_event("rest-request", "GET", "/x")
    event["multiValueQueryStringParameters"] = {"role": ["user", "admin"]}
    event["queryStringParameters"] = {"role": "admin"}
    request = parse_event(event)
    assert request.query["role"] == "user,admin" and request.query_values["role"] == ("user", "admin")
    v2 = build_event("http-2.0", "GET", "/x")
    v2["rawQueryString"] = "role=user&role=admin"
    v2["queryStringParameters"] = {"role": "user,admin"}
    assert parse_event(v2).query_values["role"] == ("user", "admin")


@pytest.mark.parametrize(
    "key",
    [
        "headers",
        "multiValueHeaders",
        "queryStringParameters",
        "multiValueQueryStringParameters",
        "stageVariables",
        "requestContext",
        "pathParameters",
    ],
)
@pytest.mark.parametrize("value", [None, "junk", 7, []])
def test_missing_null_or_junk_maps_are_empty(key, value):
    event = fixture("rest-request.json")
    event[key] = value
    request = parse_event(event)
    assert request.method == "POST"
    del event[key]
    parse_event(event)


def test_non_string_header_values_and_names_are_ignored():
    event = build_event("rest-request", "GET", "/x")
    event["headers"] = {"a": 1, "b": None, "c": ["x"], "d": "ok"}
    event["multiValueHeaders"] = {"e": [1, "two", None], "f": "not-a-list"}
    request = parse_event(event)
    assert request.headers == {"d": "ok", "e": "two"}


def test_more_than_100_headers_is_a_bad_event():
    event = build_event("rest-request", "GET", "/x", headers={f"h{i}": "v" for i in range(101)})
    with pytest.raises(BadEvent):
        parse_event(event)


@pytest.mark.parametrize(
    "arn",
    [
        None,
        "",
        7,
        "arn:aws:lambda:us-east-1:123456789012:function/x",
        "arn:aws:execute-api:us-east-1:123:abc/prod/GET/x",
        "arn:aws:execute-api:us-east-1:123456789012:abc/prod",
        "arn:aws:execute-api:us-east-1:123456789012:abc/prod/FETCH/x",
        "arn:aws:execute-api:us-east-1:123456789012:a-b/prod/GET/x",
        "arn:aws:execute-api:us-east-1:123456789012:abc/p r/GET/x",
        "arn:aws:execute-api:us-east-1:123456789012:abc/prod/GET/" + "x" * 1600,
    ],
)
def test_a_missing_or_bad_arn_is_a_bad_event(arn):
    event = build_event("rest-request", "GET", "/x")
    event["methodArn"] = arn
    with pytest.raises(BadEvent):
        parse_event(event)


def test_paths_may_contain_colons():
    event = build_event("rest-request", "GET", "/x")
    event["methodArn"] = "arn:aws:execute-api:us-east-1:123456789012:abc/prod/GET/a:b/c"
    assert parse_event(event).path == "/a:b/c"


@pytest.mark.parametrize("event", [None, [], "x", {}, {"type": "OTHER"}, {"version": "3.0"}])
def test_unknown_shapes_are_bad_events(event):
    with pytest.raises(BadEvent):
        parse_event(event)


@pytest.mark.parametrize(
    "event, kind",
    [
        ({"type": "TOKEN"}, "rest-token"),
        ({"type": "REQUEST", "version": "2.0"}, "http-2.0"),
        ({"type": "REQUEST", "version": "1.0"}, "http-1.0"),
        ({"type": "REQUEST", "requestContext": {"eventType": "CONNECT"}}, "websocket"),
        ({"type": "REQUEST"}, "rest-request"),
    ],
)
def test_dispatch_follows_the_contract(event, kind):
    from ruleauth.runtime.events import event_type

    assert event_type(event) == kind


# --- every fixture decided end to end ------------------------------------------------

# name: (route, auth, allow): a small rules file for that event, allowing on something it carries.
DECIDE = {
    "rest-token.json": ("POST /lambda-token", "token", "token == 'foo'"),
    "rest-token-wildcard-stage.json": ("GET /", "token", "token == 'allow' && request.stage == '*'"),
    "rest-request.json": (
        "POST /lambda-request",
        "token",
        "token == 'foo' && request.headers['user-agent'] == 'HTTPie/3.2.2'",
    ),
    "rest-request-multivalue.json": (
        "GET /request",
        "none",
        "request.headers['headerauth1'] == 'headerValue1' && request.query.QueryString1 == 'queryValue1'",
    ),
    "http-v1-request.json": ("GET /request", "none", "request.stage_variables.StageVar1 == 'stageValue1'"),
    "http-v1-request-multivalue.json": ("GET /request", "none", "request.headers['header2'] == 'value1,value2'"),
    "http-v2-request.json": ("POST /lambda", "token", "token == 'foo' && request.source_ip == '15.248.3.126'"),
    "http-v2-request-docs.json": ("GET /request", "none", "request.query.parameter2 == 'value'"),
    "http-v2-request-routekey.json": ("GET /request", "none", "request.headers['header1'] == 'value1'"),
    "websocket-connect.json": ("$connect", "none", "request.query.QueryString1 == 'queryValue1'"),
    "websocket-connect-docs.json": ("$connect", "none", "request.headers['headerauth1'] == 'headerValue1'"),
}


@pytest.mark.parametrize("name", INPUTS)
@pytest.mark.parametrize("response", ["iam", "simple"])
def test_each_fixture_is_decided_end_to_end_into_a_valid_response(authorizer, name, response):
    route, auth, allow = DECIDE[name]
    text = (
        f"version: 1\ncache: {{mode: disabled}}\nresponse: {response}\n"
        f"token: {{header: Authorization, scheme: Bearer}}\n"
        if name != "rest-token-wildcard-stage.json"
        else f"version: 1\ncache: {{mode: disabled}}\nresponse: {response}\n"
    )
    text += f"rules:\n  - name: r\n    route: '{route}'\n    auth: {auth}\n    allow: \"{allow}\"\n"
    result = authorizer(text).authorize(fixture(name), now=NOW)
    assert (result.decision.outcome, result.decision.reason, result.status) == ("allow", "rule_true", 200), (
        result.decision
    )
    assert response_check.problems(result.response) == []
    if response == "simple" and EXPECTED[name][0] == "http-2.0":
        assert result.response == {"isAuthorized": True, "context": {}}
    else:
        statement = result.response["policyDocument"]["Statement"]
        arn = fixture(name).get("routeArn") or fixture(name)["methodArn"]
        assert statement == [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": arn}]


@pytest.mark.parametrize("name", INPUTS)
def test_each_fixture_is_denied_by_a_rules_file_that_denies(authorizer, name):
    route, _, _ = DECIDE[name]
    result = authorizer(
        f"version: 1\ncache: {{mode: disabled}}\nrules:\n  - {{name: r, route: '{route}', auth: none, allow: false}}\n"
    ).authorize(fixture(name), now=NOW)
    assert (result.decision.outcome, result.status) == ("deny", 403)
    assert response_check.problems(result.response) == []


def test_the_route_key_fixture_warns_about_the_route_mismatch(authorizer):
    route, auth, allow = DECIDE["http-v2-request-routekey.json"]
    auth_ = authorizer(
        f"version: 1\ncache: {{mode: disabled}}\nrules:\n  - {{name: r, route: '{route}', auth: none, allow: true}}\n"
    )
    assert auth_.authorize(fixture("http-v2-request-routekey.json"), now=NOW).decision.warnings == ["route_mismatch"]


@pytest.mark.parametrize(
    "route_key, method", [("GET /merchants", "GET"), ("ANY /merchants", ""), ("$default", ""), ("", "")]
)
def test_an_http_api_route_key_names_its_method_only_when_it_has_one(route_key, method):
    # Route caching's key is the route key: "GET /a" holds the method, "ANY /a" and $default do not.
    event = fixture("http-v2-request-routekey.json")
    event["routeKey"] = event["requestContext"]["routeKey"] = route_key
    assert parse_event(event).resource_method == method


@pytest.mark.parametrize("kind", ["rest-request", "http-1.0", "http-2.0"])
def test_a_quoted_cookie_value_is_read_unquoted_from_every_event_kind(kind):
    cookies = ['a="x\\"y"', 'b="plain"', 'c="open']
    if kind == "http-2.0":
        event = build_event(kind, "GET", "/x")
        event["cookies"] = cookies
    else:
        event = build_event(kind, "GET", "/x", headers={"Cookie": "; ".join(cookies)})
    request = parse_event(event)
    assert request.cookies == {"a": 'x"y', "b": "plain", "c": '"open'}
