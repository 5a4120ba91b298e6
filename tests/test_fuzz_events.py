"""A11: whatever a request contains, the handler answers with a valid response or `Unauthorized`.

Random and malformed events (missing keys, nulls, non-string values, wrong types, odd ARNs,
mutations of every real fixture) go through the handler's own code path: Authorizer.authorize
and the handler's `raise Exception("Unauthorized")`. A rules file that denies everything never
yields an Allow.
"""

import copy
import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ruleauth.policy import response_check
from ruleauth.runtime.authorizer import Authorizer
from tests.fixtures import EVENTS as EVENTS_DIR

FIXTURES = EVENTS_DIR
EVENTS = {
    p.name: json.loads(p.read_text())
    for p in sorted(FIXTURES.glob("*.json"))
    if not p.name.startswith(("backend-", "response-"))
}

DENY_ALL = """\
version: 1
cache: {mode: disabled}
token: {header: Authorization, scheme: Bearer}
rules:
  - {name: root, route: ANY /, auth: none, allow: false}
  - {name: all, route: 'ANY /{p+}', auth: optional, allow: "token == 'never' && false"}
  - {name: ws, route: $connect, auth: none, allow: "request.headers['x'] == 'y' && false"}
"""

BUSY = """\
version: 1
cache: {mode: disabled}
token: {header: Authorization, scheme: Bearer}
principal: "'p-' + request.method"
context:
  ua: "request.headers['user-agent']"
  q: request.query
  n: size(request.headers)
rules:
  - {name: root, route: ANY /, auth: optional, allow: true}
  - {name: all, route: 'ANY /{p+}', auth: optional, allow: "request.params.p.startsWith('l') || token != ''"}
  - {name: ws, route: $connect, auth: none, allow: "'x' in request.headers"}
"""

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def authorizers(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "deny.yaml").write_text(DENY_ALL)
    (folder / "busy.yaml").write_text(BUSY)
    # Only the engine knobs of this process (dev.py's passes), no other RULEAUTH_* setting.
    knobs = {k: os.environ[k] for k in ("RULEAUTH_ENGINE", "RULEAUTH_CEL_INTERPRETER") if k in os.environ}
    return Authorizer.load(folder / "deny.yaml", environ=knobs), Authorizer.load(folder / "busy.yaml", environ=knobs)


def handle(authorizer, event):
    """The Lambda handler's body, minus the module-level load."""
    result = authorizer.authorize(event)
    if result.response is None:
        raise Exception("Unauthorized")
    return result.response


def check(authorizers, event):
    deny, busy = authorizers
    for auth in (deny, busy):
        snapshot = copy.deepcopy(event)
        try:
            response = handle(auth, event)
        except Exception as exc:
            assert type(exc) is Exception and exc.args == ("Unauthorized",), repr(exc)
            continue
        assert response_check.problems(response) == [], response
        if auth is deny:
            assert response.get("isAuthorized") is not True
            effects = [s["Effect"] for s in response["policyDocument"]["Statement"]]
            assert "Allow" not in effects, response
        assert event == snapshot or _has_nan(snapshot)  # the handler never mutates its input


def _has_nan(value):
    return "NaN" in json.dumps(value, default=str)


scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30), st.binary(max_size=10))
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=12,
)

KEYS = [
    "type",
    "version",
    "methodArn",
    "routeArn",
    "authorizationToken",
    "headers",
    "multiValueHeaders",
    "queryStringParameters",
    "multiValueQueryStringParameters",
    "rawQueryString",
    "cookies",
    "stageVariables",
    "requestContext",
    "resource",
    "routeKey",
    "path",
    "httpMethod",
    "identitySource",
    "pathParameters",
]

arn_parts = st.one_of(
    st.just("arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET/x"),
    st.builds(
        lambda p, r, a, i, s, v, path: f"arn:{p}:execute-api:{r}:{a}:{i}/{s}/{v}/{path}",
        st.sampled_from(["aws", "aws-cn", "aws-us-gov", "AWS", "", "aws:x"]),
        st.sampled_from(["us-east-1", "", "eu-west-1", "x" * 40, "us:east"]),
        st.sampled_from(["123456789012", "1234", "", "abcdefghijkl"]),
        st.sampled_from(["abc123", "", "a/b", "*", "x" * 40]),
        st.sampled_from(["prod", "*", "null", "$default", "", "st age", "x" * 200]),
        st.sampled_from(["GET", "get", "*", "ANY", "$connect", "", "POST", "FETCH"]),
        st.text(alphabet=st.sampled_from("ab/*?:.%{}$ \n\x00é"), max_size=40),
    ),
    st.text(max_size=60),
    st.just("arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET/" + "a/" * 900),
)


@SETTINGS
@given(event=json_values)
def test_A11_random_json_values_as_events(authorizers, event):
    check(authorizers, event)


@SETTINGS
@given(
    event=st.dictionaries(st.sampled_from(KEYS), json_values, max_size=8),
    kind=st.sampled_from(["TOKEN", "REQUEST", None, 7]),
    version=st.sampled_from(["1.0", "2.0", None, 2.0]),
    arn=arn_parts,
)
def test_A11_event_shaped_dicts_with_junk_everywhere(authorizers, event, kind, version, arn):
    event = dict(event)
    event["type"], event["methodArn"], event["routeArn"] = kind, arn, arn
    if version is not None:
        event["version"] = version
    check(authorizers, event)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


FIXTURE_PATHS = [(name, path) for name, event in EVENTS.items() for path in _paths(event) if path]


@SETTINGS
@given(target=st.sampled_from(FIXTURE_PATHS), junk=json_values, delete=st.booleans())
def test_A11_every_real_fixture_with_one_field_mutated_or_removed(authorizers, target, junk, delete):
    name, path = target
    event = copy.deepcopy(EVENTS[name])
    parent = event
    for step in path[:-1]:
        parent = parent[step]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = junk
    check(authorizers, event)


@SETTINGS
@given(
    name=st.sampled_from(sorted(EVENTS)),
    arn=arn_parts,
    headers=st.dictionaries(st.text(max_size=20), st.one_of(st.text(max_size=50), json_values), max_size=8),
    token=st.one_of(st.none(), st.text(max_size=40), st.just("Bearer " + "a" * 9000), json_values),
)
def test_A11_real_fixtures_with_odd_arns_headers_and_tokens(authorizers, name, arn, headers, token):
    event = copy.deepcopy(EVENTS[name])
    event["methodArn" if "methodArn" in event else "routeArn"] = arn
    event["headers"] = headers
    event["multiValueHeaders"] = {k: [v, v] for k, v in headers.items()}
    event["authorizationToken"] = token
    check(authorizers, event)


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_A11_each_real_fixture_unmodified_is_answered_validly(authorizers, name):
    check(authorizers, copy.deepcopy(EVENTS[name]))


def test_A11_an_unexpected_internal_error_is_unauthorized_never_an_allow(authorizers, monkeypatch):
    deny, busy = authorizers

    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(busy.decider, "decide", explode)
    result = busy.authorize(EVENTS["rest-request.json"])
    assert result.response is None and result.decision.reason == "internal_error"
    assert result.internal_error == "RuntimeError"
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        handle(busy, EVENTS["rest-request.json"])
