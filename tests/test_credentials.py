"""Credentials: strict scheme parsing (J17), duplicates, the size cap, removal, and auth modes."""

import pytest

from ruleauth.errors import CredentialError
from ruleauth.rules.ruleset import TokenConfig
from ruleauth.runtime.credentials import MAX_TOKEN_BYTES, extract, without_credential
from ruleauth.runtime.events import parse_event
from ruleauth.tools.synthetic_events import build_event

NOW = 1_800_000_000.0

BEARER = """\
version: 1
cache: {{mode: disabled}}
token: {{header: Authorization, scheme: Bearer}}
rules:
  - name: r
    route: GET /r
    auth: {auth}
    allow: {allow}
"""


def rest_event(headers=None, multi=None, query=None, cookies=None):
    event = build_event("rest-request", "GET", "/r", headers=headers or {}, query=query or {}, cookies=cookies)
    if multi is not None:
        event["multiValueHeaders"] = multi
    return event


def outcome(auth, event):
    result = auth.authorize(event, now=NOW)
    return result.decision.outcome, result.decision.reason, result.status


@pytest.fixture
def bearer(authorizer):
    return authorizer(BEARER.format(auth="token", allow="\"token == 'abc'\""))


@pytest.mark.parametrize("value", ["Bearer abc", "bearer abc", "BEARER abc", "bEaReR abc"])
def test_J17_the_scheme_matches_in_any_case(bearer, value):
    assert outcome(bearer, rest_event({"Authorization": value})) == ("allow", "rule_true", 200)


@pytest.mark.parametrize(
    "value",
    [
        "Bearer  abc",  # two spaces
        "Bearer",  # the scheme alone
        "Bearer ",  # nothing after the space
        "Basic YWJjOmRlZg==",
        "abc",  # no scheme
        "Bearer abc def",  # whitespace inside the credential
        "Bearer\tabc",
        " Bearer abc",
        "Bearerabc",
        "Bearer abc\n",
    ],
)
def test_J17_anything_but_scheme_space_credential_is_no_credential_and_401(bearer, value):
    assert outcome(bearer, rest_event({"Authorization": value})) == ("unauthorized", "missing_credential", 401)


def test_J17_two_authorization_values_are_401(bearer):
    event = rest_event(multi={"Authorization": ["Bearer abc", "Bearer xyz"]})
    assert outcome(bearer, event) == ("unauthorized", "bad_credential", 401)


def test_J17_two_identical_authorization_values_are_still_401(bearer):
    event = rest_event(multi={"Authorization": ["Bearer abc", "Bearer abc"]})
    assert outcome(bearer, event)[2] == 401


def test_J17_authorization_headers_differing_only_in_case_are_duplicates(bearer):
    event = rest_event(multi={"Authorization": ["Bearer abc"], "authorization": ["Bearer xyz"]})
    assert outcome(bearer, event) == ("unauthorized", "bad_credential", 401)


def test_J17_a_token_in_the_query_string_is_not_the_header_token(bearer):
    event = rest_event(query={"access_token": "abc", "Authorization": "Bearer abc"})
    assert outcome(bearer, event) == ("unauthorized", "missing_credential", 401)


def test_J18_tokens_over_8_kib_are_401_before_any_decoding(authorizer):
    auth = authorizer(BEARER.format(auth="token", allow="true"))
    fits = "a" * (MAX_TOKEN_BYTES - len("Bearer "))
    assert outcome(auth, rest_event({"Authorization": "Bearer " + fits}))[0] == "allow"
    assert outcome(auth, rest_event({"Authorization": "Bearer " + fits + "a"})) == (
        "unauthorized",
        "bad_credential",
        401,
    )
    assert outcome(auth, rest_event({"Authorization": "Bearer " + "a" * 64 * 1024})) == (
        "unauthorized",
        "bad_credential",
        401,
    )


def test_the_size_cap_counts_bytes_not_characters():
    config = TokenConfig(header="Authorization")
    request = parse_event(rest_event({"Authorization": "é" * (MAX_TOKEN_BYTES // 2 + 1)}))
    with pytest.raises(CredentialError) as caught:
        extract(config, request)
    assert caught.value.reason == "bad_credential"


def test_the_credential_is_removed_from_headers_so_a_rule_cannot_read_it_back(authorizer):
    auth = authorizer(BEARER.format(auth="token", allow="\"!('authorization' in request.headers)\""))
    assert outcome(auth, rest_event({"Authorization": "Bearer abc", "X-Other": "1"}))[0] == "allow"


def test_the_credential_is_removed_from_the_query(authorizer):
    auth = authorizer(
        "version: 1\ncache: {mode: disabled}\ntoken: {query: access_token}\nrules:\n"
        "  - {name: r, route: GET /r, allow: \"token == 'abc' && !('access_token' in request.query) && request.query.x == '1'\"}\n"
    )
    assert outcome(auth, rest_event(query={"access_token": "abc", "x": "1"}))[0] == "allow"


def test_several_query_tokens_are_401(authorizer):
    auth = authorizer(
        "version: 1\ncache: {mode: disabled}\ntoken: {query: access_token}\nrules:\n"
        "  - {name: r, route: GET /r, allow: true}\n"
    )
    event = rest_event()
    event["multiValueQueryStringParameters"] = {"access_token": ["a", "b"]}
    assert outcome(auth, event) == ("unauthorized", "bad_credential", 401)
    v2 = build_event("http-2.0", "GET", "/r")
    v2["rawQueryString"] = "access_token=a&access_token=b"
    v2["queryStringParameters"] = {"access_token": "a,b"}
    assert outcome(auth, v2) == ("unauthorized", "bad_credential", 401)


COOKIE = (
    "version: 1\ncache: {mode: disabled}\ntoken: {cookie: session}\nrules:\n"
    "  - {name: r, route: GET /r, allow: \"token == 'abc' && !('session' in request.cookies)"
    " && !('cookie' in request.headers) && request.cookies.theme == 'dark'\"}\n"
)


@pytest.mark.parametrize("event_type", ["rest-request", "http-1.0", "http-2.0", "websocket"])
def test_the_credential_cookie_is_removed_from_cookies_and_the_cookie_header(authorizer, event_type):
    auth = authorizer(COOKIE.replace("GET /r", "$connect") if event_type == "websocket" else COOKIE)
    event = build_event(
        event_type,
        "GET",
        "$connect" if event_type == "websocket" else "/r",
        cookies={"session": "abc", "theme": "dark"},
    )
    assert outcome(auth, event)[0] == "allow"


def test_several_session_cookies_are_401(authorizer):
    auth = authorizer(COOKIE)
    event = rest_event({"Cookie": "session=abc; session=xyz"})
    assert outcome(auth, event) == ("unauthorized", "bad_credential", 401)


def test_token_events_read_authorization_token(authorizer):
    auth = authorizer(BEARER.format(auth="token", allow="\"token == 'abc'\""))
    event = {
        "type": "TOKEN",
        "authorizationToken": "Bearer abc",
        "methodArn": "arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/GET/r",
    }
    assert outcome(auth, event) == ("allow", "rule_true", 200)
    event["authorizationToken"] = "Bearer  abc"
    assert outcome(auth, event) == ("unauthorized", "missing_credential", 401)
    del event["authorizationToken"]
    assert outcome(auth, event) == ("unauthorized", "missing_credential", 401)


def test_token_events_with_a_non_string_token_are_401(authorizer):
    auth = authorizer(BEARER.format(auth="token", allow="true"))
    event = {
        "type": "TOKEN",
        "authorizationToken": ["Bearer abc"],
        "methodArn": "arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/GET/r",
    }
    assert outcome(auth, event)[2] == 401


def test_http_v1_authorization_token_is_the_joined_identity_sources_not_a_token(authorizer):
    auth = authorizer(BEARER.format(auth="token", allow="true"))
    event = build_event("http-1.0", "GET", "/r")
    event["authorizationToken"] = "Bearer abc"
    event["identitySource"] = "Bearer abc"
    assert outcome(auth, event) == ("unauthorized", "missing_credential", 401)
    event["headers"]["Authorization"] = "Bearer abc"
    event["multiValueHeaders"]["Authorization"] = ["Bearer abc"]
    assert outcome(auth, event)[0] == "allow"


def test_auth_token_needs_a_non_empty_credential(authorizer):
    auth = authorizer("version: 1\ncache: {mode: disabled}\nrules:\n  - {name: r, route: GET /r, allow: true}\n")
    assert outcome(auth, rest_event({"Authorization": ""})) == ("unauthorized", "missing_credential", 401)
    assert outcome(auth, rest_event()) == ("unauthorized", "missing_credential", 401)
    assert outcome(auth, rest_event({"Authorization": "x"}))[0] == "allow"


def test_auth_optional_accepts_no_credential_with_an_empty_token(authorizer):
    auth = authorizer(BEARER.format(auth="optional", allow="\"token == ''\""))
    assert outcome(auth, rest_event()) == ("allow", "rule_true", 200)
    assert outcome(auth, rest_event({"Authorization": "Bearer abc"})) == ("deny", "rule_false", 403)


def test_auth_optional_still_refuses_a_present_but_unusable_credential(authorizer):
    auth = authorizer(BEARER.format(auth="optional", allow="true"))
    event = rest_event(multi={"Authorization": ["Bearer a", "Bearer b"]})
    assert outcome(auth, event) == ("unauthorized", "bad_credential", 401)
    assert outcome(auth, rest_event({"Authorization": "Bearer " + "a" * 9000}))[2] == 401


def test_auth_none_never_reads_the_credential(authorizer):
    auth = authorizer(BEARER.format(auth="none", allow="true"))
    # Even a credential that would be refused elsewhere is simply not looked at.
    assert outcome(auth, rest_event(multi={"Authorization": ["x", "y"]})) == ("allow", "rule_true", 200)
    assert outcome(auth, rest_event({"Authorization": "Bearer " + "a" * 9000}))[0] == "allow"


def test_without_credential_leaves_other_inputs_alone():
    config = TokenConfig(header="X-Key")
    request = parse_event(rest_event({"X-Key": "k", "X-Other": "o"}, query={"q": "1"}))
    visible = without_credential(config, request)
    assert dict(visible.headers) == {"x-other": "o"} and dict(visible.query) == {"q": "1"}
