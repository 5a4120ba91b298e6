"""`ruleauth dry-run` through the real command: decisions, statuses, the explanation, redaction."""

from __future__ import annotations

import json

import pytest

from tests.cli_support import DEMO, no_traceback, run_cli, run_json, write

JWT_RULES = """
version: 1
token: {header: Authorization, scheme: Bearer}
cache: {mode: identity, sources: {headers: [Authorization]}}
jwt:
  issuer: https://idp.example.test
  audience: [https://api.example.test]
define:
  is_admin: "'admin' in claims.groups"
principal: claims.sub
context:
  tenant: claims.tenant
rules:
  - name: read orders
    route: GET /orders/{id}
    allow: "'read:orders' in scopes && int(claims.exp) > now_unix"
  - name: admins
    route: ANY /admin/{proxy+}
    allow: is_admin
  - name: new admin check
    route: ANY /admin/{proxy+}
    mode: shadow
    allow: "is_admin || claims.tenant == 't1'"
"""
CLAIMS = json.dumps({"sub": "u1", "tenant": "t1", "scope": "read:orders", "exp": 1800000000, "groups": ["user"]})
SECRET = "SECRET-TOKEN-4242"


@pytest.fixture
def jwt_rules(tmp_path):
    return str(write(tmp_path / "jwt.yaml", JWT_RULES))


def dry(*args: str, **kwargs):
    return run_json("dry-run", *args, **kwargs)


@pytest.mark.parametrize(
    "token, decision, status, body",
    [
        ("17", "allow", 200, None),
        ("2", "deny", 403, {"Message": "User is not authorized to access this resource with an explicit deny"}),
        ("abc", "deny", 403, {"Message": "User is not authorized to access this resource with an explicit deny"}),
    ],
)
def test_demo_decisions_status_and_body(token, decision, status, body):
    code, report = dry(str(DEMO), "--method", "GET", "--path", "/hello", "--token", token)
    assert code == 0
    assert (report["decision"], report["status"], report["body"]) == (decision, status, body)
    assert report["rule"] == "odd numbers only" and report["route"] == "GET /hello"
    for key in ("reason", "principal", "context", "response", "verified", "policy_grants", "explanation", "shadow"):
        assert key in report
    assert report["verified"] is False
    assert report["policy_grants"] == (["GET /hello"] if decision == "allow" else [])


def test_no_credential_is_401_and_the_lambda_raises():
    # Without caching, a REST REQUEST authorizer is called even when its identity source is
    # missing (docs/apigw-facts.md "What the client gets"); the rules then answer 401.
    code, report = dry(str(DEMO), "--method", "GET", "--path", "/hello", "--cache-mode", "disabled")
    assert code == 0
    assert report["decision"] == "unauthorized" and report["status"] == 401
    assert report["body"] == {"message": "Unauthorized"} and report["response"] is None
    assert report["raises"] == "Unauthorized" and report["policy_grants"] == []
    human = run_cli("dry-run", str(DEMO), "--method", "GET", "--path", "/hello", "--cache-mode", "disabled")
    assert "raises Exception('Unauthorized')" in human.stdout and "401" in human.stdout


def test_explanation_names_the_failing_part_without_the_token():
    code, report = dry(str(DEMO), "--method", "GET", "--path", "/hello", "--token", SECRET)
    assert report["reason"] == "rule_error"
    steps = report["explanation"]["steps"]
    assert steps[0]["expr"] == "int(token) % 2 == 1" and steps[0]["result"] == "error (ValueError)"
    assert steps[0]["values"]["fails at int(token)"] == "error (ValueError)"
    assert "hidden" in steps[0]["values"]["token"]
    for args in (["--token", SECRET], ["-H", f"Authorization: {SECRET}"]):
        for extra in ([], ["--json"]):
            done = run_cli("dry-run", str(DEMO), "--method", "GET", "--path", "/hello", *args, *extra)
            assert SECRET not in done.stdout + done.stderr
            assert "SECRET" not in done.stdout + done.stderr


STRICTER = """
version: 1
token: {header: Authorization}
cache: {mode: disabled}
rules:
  - name: no field x
    route: GET /hello
    auth: token
    allow: "!has(token.x)"
"""


def test_the_explanation_agrees_with_the_decision_where_cel_pythons_interpreter_would_not(tmp_path):
    # has() on a string: the compiled rule fails (and denies) where cel-python's interpreter
    # says false (so `!` would allow). The steps are run the way the rule was decided.
    rules = str(write(tmp_path / "stricter.yaml", STRICTER))
    code, report = dry(rules, "--method", "GET", "--path", "/hello", "--token", "7")
    assert (report["decision"], report["reason"]) == ("deny", "rule_error")
    assert report["explanation"]["summary"].startswith("rule 'no field x': allow failed")
    assert report["explanation"]["steps"][0]["result"].startswith("error")


def test_human_output_has_every_part():
    done = run_cli("dry-run", str(DEMO), "--method", "GET", "--path", "/hello", "--token", "2")
    out = done.stdout
    for label in ("decision", "gateway", "rule", "why", "principal", "context", "identity", "cached", "response"):
        assert any(line.startswith(label) for line in out.splitlines()), label
    assert "HTTP 403" in out and "explicit deny" in out
    assert "int(token) % 2 == 1  → false" in out
    assert '"Effect": "Deny"' in out


def test_claims_are_unverified_and_said_so(jwt_rules):
    args = ("--method", "GET", "--path", "/orders/7", "--claims", CLAIMS, "--now", "2026-01-01T00:00:00Z")
    code, report = dry(jwt_rules, *args)
    assert code == 0 and report["decision"] == "allow", report["explanation"]
    assert report["verified"] is False
    assert report["principal"] == "u1" and report["context"] == {"tenant": "t1"}
    assert "GET /orders/{id}" in report["policy_grants"]
    assert not any(grant.endswith("/admin/{proxy+}") for grant in report["policy_grants"])
    human = run_cli("dry-run", jwt_rules, *args)
    assert "NOT verified" in human.stdout and "signature" in human.stdout


def test_now_sets_the_decision_time(jwt_rules):
    code, report = dry(
        jwt_rules,
        "--method",
        "GET",
        "--path",
        "/orders/7",
        "--claims",
        CLAIMS,
        "--now",
        "2030-01-01T00:00:00Z",
        "--expect",
        "deny",
    )
    assert code == 0 and report["decision"] == "deny" and report["reason"] == "rule_false"
    steps = report["explanation"]["steps"]
    failing = next(s for s in steps if s["expr"] == "int(claims.exp) > now_unix")
    assert failing["result"] == "false"
    assert failing["values"]["claims.exp"] == "1800000000"
    assert next(s for s in steps if s["expr"] == "'read:orders' in scopes")["result"] == "true"


def test_defines_and_shadow_rules_are_explained(jwt_rules):
    code, report = dry(jwt_rules, "--method", "DELETE", "--path", "/admin/users/7", "--claims", CLAIMS)
    assert report["decision"] == "deny" and report["rule"] == "admins"
    step = report["explanation"]["steps"][0]
    assert step["expr"] == "is_admin" and step["result"] == "false"
    assert step["values"]["claims.groups"] == '["user"]'
    assert report["shadow"] == [
        {"rule": "new admin check", "route": "ANY /admin/{proxy+}", "decision": "allow", "reason": "rule_true"}
    ]


def test_expect_mismatch_is_exit_1():
    assert (
        run_cli(
            "dry-run", str(DEMO), "--method", "GET", "--path", "/hello", "--token", "17", "--expect", "allow"
        ).returncode
        == 0
    )
    done = run_cli("dry-run", str(DEMO), "--method", "GET", "--path", "/hello", "--token", "17", "--expect", "deny")
    assert done.returncode == 1 and "expected deny, got allow" in done.stderr


def test_event_file_and_stdin(tmp_path):
    token_event = {
        "type": "TOKEN",
        "authorizationToken": "17",
        "methodArn": "arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/GET/hello",
    }
    path = tmp_path / "event.json"
    path.write_text(json.dumps(token_event))
    code, report = dry(str(DEMO), "--event", str(path))
    assert report["decision"] == "allow" and report["event_type"] == "rest-token"
    assert report["response"]["policyDocument"]["Statement"][0]["Resource"].startswith(
        "arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/"
    )
    http_event = {
        "version": "2.0",
        "type": "REQUEST",
        "routeKey": "GET /hello",
        "rawPath": "/hello",
        "routeArn": "arn:aws:execute-api:us-east-1:123456789012:abc123/$default/GET/hello",
        "identitySource": ["3"],
        "headers": {"authorization": "3"},
        "requestContext": {},
    }
    done = run_cli("dry-run", str(DEMO), "--event", "-", "--json", stdin=json.dumps(http_event))
    assert json.loads(done.stdout)["decision"] == "allow"


@pytest.mark.parametrize(
    "args, stdin, message",
    [
        (["--event", "-"], "{not json", "not valid JSON"),
        (["--event", "-"], '{"hello": "world"}', "not an API Gateway authorizer event"),
        (["--event", "-"], "[1, 2]", "not an API Gateway authorizer event"),
        (["--event", "/no/such/event.json"], None, "does not exist"),
        (["--event", "-", "--method", "GET"], "{}", "cannot be combined"),
        (["--path", "/hello"], None, "--method and --path"),
        (["--method", "FETCH", "--path", "/hello"], None, "FETCH"),
        (["--method", "GET", "--path", "hello"], None, "must start with /"),
        (["--method", "GET", "--path", "/hello", "-H", "NoColonHere"], None, "Name: value"),
        (["--method", "GET", "--path", "/hello", "--query", "novalue"], None, "name=value"),
        (["--method", "GET", "--path", "/hello", "--claims", "{bad"], None, "not valid JSON"),
        (["--method", "GET", "--path", "/hello", "--claims", "[1]"], None, "JSON object"),
        (["--method", "GET", "--path", "/hello", "--now", "yesterday"], None, "RFC 3339"),
        (["--method", "GET", "--path", "/hello", "--now", "2026-01-01T00:00:00"], None, "time zone"),
        (["--method", "GET", "--path", "/hello", "--event-type", "soap"], None, "invalid choice"),
        (["--method", "GET", "--path", "/hello", "--frobnicate"], None, "unrecognized arguments"),
    ],
)
def test_bad_input_is_exit_2(args, stdin, message):
    done = run_cli("dry-run", str(DEMO), *args, stdin=stdin)
    no_traceback(done)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) <= 2


def test_missing_rules_is_2_and_broken_rules_are_3(tmp_path):
    done = run_cli("dry-run", str(tmp_path / "none.yaml"), "--method", "GET", "--path", "/")
    assert done.returncode == 2 and "does not exist" in done.stderr
    broken = write(tmp_path / "broken.yaml", "version: 1\nrules:\n  - name: a\n    route: GET /\n")
    done = run_cli("dry-run", str(broken), "--method", "GET", "--path", "/")
    no_traceback(done)
    assert done.returncode == 3
    assert f"{broken}:3:5: error: rule 'a': rule needs an `allow`" in done.stderr
    assert "failed to load" in done.stderr


@pytest.mark.parametrize("event_type", ["rest-token", "rest-request", "http-1.0", "http-2.0"])
def test_event_types(event_type):
    code, report = dry(str(DEMO), "--method", "GET", "--path", "/hello", "--token", "5", "--event-type", event_type)
    assert report["decision"] == "allow" and report["event_type"] == event_type
