"""Responses: the IAM policy shape, principal and context rules (A8, A9), usageIdentifierKey,
simple responses, the size limit, and the self-check against API Gateway's rules."""

import json

import pytest

from ruleauth.errors import RulesError
from ruleauth.policy import response_check
from ruleauth.tools.synthetic_events import build_event
from tests.fixtures import EVENTS as EVENTS_DIR

NOW = 1_800_000_000.0
FIXTURES = EVENTS_DIR

BASE = """\
version: 1
cache: {{mode: disabled}}
{top}
rules:
  - name: r
    route: GET /r/{{id}}
    allow: {allow}
"""


def run(auth, event_type="rest-request", headers=None, path="/r/7", **kwargs):
    headers = {"Authorization": "tok-123", **(headers or {})}
    return auth.authorize(build_event(event_type, "GET", path, headers=headers, **kwargs), now=NOW)


def test_an_allow_is_an_iam_policy_for_the_asked_arn(authorizer):
    result = run(authorizer(BASE.format(top="", allow="true")))
    assert result.response == {
        "principalId": "anonymous",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Action": "execute-api:Invoke",
                    "Effect": "Allow",
                    "Resource": "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET/r/7",
                }
            ],
        },
    }
    assert response_check.problems(result.response) == []


def test_a_deny_is_an_explicit_deny_for_the_asked_arn(authorizer):
    result = run(authorizer(BASE.format(top="", allow="false")))
    statement = result.response["policyDocument"]["Statement"]
    assert statement == [
        {
            "Action": "execute-api:Invoke",
            "Effect": "Deny",
            "Resource": "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET/r/7",
        }
    ]
    assert result.status == 403 and "explicit deny" in result.body["Message"]


def test_A07_stage_region_account_and_api_are_copied_from_the_incoming_arn(authorizer):
    auth = authorizer(BASE.format(top="", allow="true"))
    event = build_event(
        "rest-request",
        "GET",
        "/r/7",
        headers={"Authorization": "t"},
        api={"region": "eu-central-1", "account_id": "999999999999", "api_id": "zzz9", "stage": "dev"},
    )
    event["methodArn"] = event["methodArn"].replace("arn:aws:", "arn:aws-cn:")
    resource = auth.authorize(event, now=NOW).response["policyDocument"]["Statement"][0]["Resource"]
    assert resource == "arn:aws-cn:execute-api:eu-central-1:999999999999:zzz9/dev/GET/r/7"


def test_A03_a_wildcard_in_the_request_path_never_widens_the_policy(authorizer):
    auth = authorizer(BASE.format(top="", allow="true"))
    event = build_event("rest-request", "GET", "/r/7", headers={"Authorization": "t"})
    event["methodArn"] = event["methodArn"].replace("/r/7", "/r/*")
    result = auth.authorize(event, now=NOW)
    resource = result.response["policyDocument"]["Statement"][0]["Resource"]
    assert "*" not in resource.split(":", 5)[5] and resource.endswith("/GET/r/?")


def test_A09_the_principal_defaults_to_anonymous_never_the_token(authorizer):
    result = run(authorizer(BASE.format(top="", allow="true")))
    assert result.response["principalId"] == "anonymous"
    assert "tok-123" not in json.dumps(result.response)


def test_the_principal_comes_from_the_principal_expression(authorizer):
    auth = authorizer(BASE.format(top="principal: \"'user-' + request.params.id\"", allow="true"))
    assert run(auth).response["principalId"] == "user-7"


@pytest.mark.parametrize(
    "principal", ["\"''\"", "'1'", "\"request.headers['x-missing']\"", "'null'", "\"request.headers['x-long']\""]
)
def test_a_principal_that_is_not_a_short_non_empty_string_turns_an_allow_into_principal_error(authorizer, principal):
    auth = authorizer(BASE.format(top=f"principal: {principal}", allow="true"))
    result = run(auth, headers={"X-Long": "p" * 257})
    assert (result.decision.outcome, result.decision.reason, result.status) == ("deny", "principal_error", 403)
    assert response_check.problems(result.response) == []


def test_a_principal_of_256_characters_is_fine(authorizer):
    auth = authorizer(BASE.format(top="principal: \"request.headers['x-long']\"", allow="true"))
    assert run(auth, headers={"X-Long": "p" * 256}).response["principalId"] == "p" * 256


def test_a_principal_error_on_a_deny_keeps_the_original_reason(authorizer):
    auth = authorizer(BASE.format(top="principal: \"''\"", allow="false"))
    result = run(auth)
    assert result.decision.reason == "rule_false" and result.response["principalId"] == "anonymous"


CONTEXT = """\
context:
  text: "'hello'"
  number: "42"
  real: "1.5"
  flag: "true"
  items: "['a', 1, true]"
  nested: "{'b': [1, 2], 'a': 'x'}"
  nan: "double('NaN')"
  inf: "double('Infinity')"
  missing: "request.headers['x-missing']"
  null_value: "null"
  from_header: "request.headers['x-tenant']"
"""


def test_context_values_become_primitives_lists_and_maps_compact_json_and_null_nan_left_out(authorizer):
    result = run(authorizer(BASE.format(top=CONTEXT, allow="true")), headers={"X-Tenant": "acme"})
    assert result.response["context"] == {
        "text": "hello",
        "number": 42,
        "real": 1.5,
        "flag": True,
        "items": '["a",1,true]',
        "nested": '{"a":"x","b":[1,2]}',
        "from_header": "acme",
    }
    assert {key for key, _ in result.decision.omitted_context} == {"nan", "inf", "missing", "null_value"}
    assert response_check.problems(result.response) == []


def test_context_is_sent_on_deny_too(authorizer):
    result = run(authorizer(BASE.format(top="context:\n  who: \"'x'\"", allow="false")))
    assert result.response["context"] == {"who": "x"}


def test_A08_the_context_never_holds_the_raw_token(authorizer):
    result = run(authorizer(BASE.format(top=CONTEXT, allow="true")), headers={"X-Tenant": "acme"})
    assert "tok-123" not in json.dumps(result.response)


def test_usage_identifier_key_is_sent_only_on_rest_allows(authorizer):
    auth = authorizer(
        BASE.format(top="usage_identifier_key: \"'key-' + request.params.id\"", allow="request.params.id == '7'")
    )
    assert run(auth, "rest-request").response["usageIdentifierKey"] == "key-7"
    assert run(auth, "rest-token").response["usageIdentifierKey"] == "key-7"
    assert "usageIdentifierKey" not in run(auth, "rest-request", path="/r/8").response
    for event_type in ("http-1.0", "http-2.0"):
        assert "usageIdentifierKey" not in run(auth, event_type).response


def test_simple_responses_only_for_http_2_0_events_when_configured(authorizer):
    auth = authorizer(BASE.format(top="response: simple\ncontext:\n  who: \"'x'\"", allow="true"))
    assert run(auth, "http-2.0").response == {"isAuthorized": True, "context": {"who": "x"}}
    for event_type in ("rest-request", "rest-token", "http-1.0"):
        assert "policyDocument" in run(auth, event_type).response
    denied = authorizer(BASE.format(top="response: simple", allow="false"))
    result = run(denied, "http-2.0")
    assert result.response == {"isAuthorized": False, "context": {}} and result.status == 403


def test_ruleauth_response_env_overrides_the_rules_file(authorizer):
    text = BASE.format(top="response: iam", allow="true")
    assert run(authorizer(text, {"RULEAUTH_RESPONSE": "simple"}), "http-2.0").response["isAuthorized"] is True
    simple = BASE.format(top="response: simple", allow="true")
    assert "policyDocument" in run(authorizer(simple, {"RULEAUTH_RESPONSE": "iam"}), "http-2.0").response
    assert "policyDocument" in run(authorizer(text), "http-2.0").response
    with pytest.raises(RulesError, match="RULEAUTH_RESPONSE must be iam or simple"):
        authorizer(text, {"RULEAUTH_RESPONSE": "json"})


def test_a_response_over_8_kb_is_403_response_too_large(authorizer):
    top = "context:\n  a: \"request.headers['x-a']\"\n  b: \"request.headers['x-b']\""
    result = run(authorizer(BASE.format(top=top, allow="true")), headers={"X-A": "a" * 5000, "X-B": "b" * 5000})
    assert (result.decision.outcome, result.decision.reason, result.status) == ("deny", "response_too_large", 403)
    assert response_check.problems(result.response) == [] and "context" not in result.response


def test_real_aws_responses_pass_the_check():
    for name in ("response-rest-deny-docs.json", "response-http-simple.json"):
        assert response_check.problems(json.loads((FIXTURES / name).read_text())) == [], name


GOOD = {
    "principalId": "p",
    "policyDocument": {
        "Version": "2012-10-17",
        "Statement": [
            {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": "arn:aws:execute-api:r:1:a/s/GET/x"}
        ],
    },
}


def mutate(change):
    response = json.loads(json.dumps(GOOD))
    change(response)
    return response


@pytest.mark.parametrize(
    "bad",
    [
        None,
        [],
        "Allow",
        mutate(lambda r: r.pop("principalId")),
        mutate(lambda r: r.update(principalId="")),
        mutate(lambda r: r.update(principalId=7)),
        mutate(lambda r: r.update(principalId="p" * 257)),
        mutate(lambda r: r.pop("policyDocument")),
        mutate(lambda r: r["policyDocument"].update(Version="2008-10-17")),
        mutate(lambda r: r["policyDocument"].update(Statement=[])),
        mutate(lambda r: r["policyDocument"].update(Statement={"Effect": "Allow"})),
        mutate(lambda r: r["policyDocument"]["Statement"].append("x")),
        mutate(lambda r: r["policyDocument"]["Statement"][0].update(Effect="allow")),
        mutate(lambda r: r["policyDocument"]["Statement"][0].update(Action="execute-api:*x")),
        mutate(lambda r: r["policyDocument"]["Statement"][0].update(Resource=[])),
        mutate(lambda r: r["policyDocument"]["Statement"][0].update(Resource="not-an-arn")),
        mutate(lambda r: r["policyDocument"]["Statement"][0].update(Resource="arn:" + "x" * 600)),
        mutate(lambda r: r["policyDocument"]["Statement"][0].pop("Resource")),
        mutate(lambda r: r.update(context={"a": {"nested": 1}})),
        mutate(lambda r: r.update(context={"a": [1]})),
        mutate(lambda r: r.update(context={"a": None})),
        mutate(lambda r: r.update(context={"a": float("nan")})),
        mutate(lambda r: r.update(context={"principalId": "x"})),
        mutate(lambda r: r.update(context={"bad-key": "x"})),
        mutate(lambda r: r.update(context=[])),
        mutate(lambda r: r.update(usageIdentifierKey=5)),
        mutate(lambda r: r.update(statusCode=200)),
        mutate(lambda r: r.update(context={f"k{i}": "v" * 100 for i in range(90)})),
        {"isAuthorized": "true"},
        {"isAuthorized": True, "context": {"a": {"b": 1}}},
        {"isAuthorized": True, "principalId": "p"},
    ],
)
def test_response_check_rejects_each_malformed_shape(bad):
    assert response_check.problems(bad) != []


def test_response_check_accepts_the_good_shapes():
    assert response_check.problems(GOOD) == []
    assert response_check.problems(mutate(lambda r: r.update(context={"a": "x", "b": 1, "c": 1.5, "d": False}))) == []
    assert response_check.problems(mutate(lambda r: r.update(usageIdentifierKey="k"))) == []
    assert response_check.problems({"isAuthorized": False}) == []
