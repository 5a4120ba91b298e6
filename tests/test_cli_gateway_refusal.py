"""`ruleauth test`, `dry-run` and `serve` answer as API Gateway does when an identity source is missing.

API Gateway answers 401 itself, without calling the authorizer, when a configured identity
source is missing (docs/apigw-facts.md "What the client gets"): a REST TOKEN authorizer's
header, an HTTP API's identity sources, a REST REQUEST authorizer's with caching on. A rule
for such a request never runs, so a test expecting its answer would pass offline and fail
deployed.
"""

from __future__ import annotations

import json

import pytest

from ruleauth.runtime.authorizer import Authorizer
from ruleauth.tools.local_gateway import LocalGateway
from tests.cli_support import no_traceback, run_cli, run_json, write

PUBLIC = """\
version: 1
token:
  header: Authorization
rules:
  - name: health
    route: GET /health
    auth: none
    allow: true
tests:
  - name: health without a token
    request: {{method: GET, path: /health}}
    {event_type}expect: {expect}
"""


def rules_with(tmp_path, expect: str, event_type: str = "", extra: str = ""):
    text = PUBLIC.format(expect=expect, event_type=f"event_type: {event_type}\n    " if event_type else "")
    return write(tmp_path / "rules.yaml", text + extra)


@pytest.mark.parametrize("event_type", ["", "rest-token", "http-2.0", "http-1.0", "websocket"])
def test_a_test_without_the_identity_source_gets_api_gateways_401(tmp_path, event_type):
    rules = rules_with(tmp_path, "allow", event_type)
    done = run_cli("test", str(rules))
    no_traceback(done)
    assert done.returncode == 1
    assert "expected allow, got unauthorized (reason identity_source_missing, status 401)" in done.stdout
    assert "API Gateway answers 401 without calling the authorizer" in done.stdout
    assert "header Authorization" in done.stdout


def test_a_test_expecting_api_gateways_401_passes(tmp_path):
    rules = rules_with(tmp_path, "{decision: unauthorized, reason: identity_source_missing, status: 401}")
    done = run_cli("test", str(rules))
    assert done.returncode == 0, done.stdout
    assert "1 passed, 0 failed" in done.stdout


def test_without_caching_a_rest_request_authorizer_is_called_and_the_rule_decides(tmp_path):
    rules = write(
        tmp_path / "rules.yaml",
        PUBLIC.format(expect="{decision: allow, rule: health}", event_type="").replace(
            "rules:", "cache:\n  mode: disabled\nrules:"
        ),
    )
    done = run_cli("test", str(rules))
    assert done.returncode == 0, done.stdout
    assert "1 passed, 0 failed" in done.stdout


def test_a_query_identity_source_missing_is_api_gateways_401(tmp_path):
    text = PUBLIC.format(expect="allow", event_type="").replace("header: Authorization", "query: access_token")
    done = run_cli("test", str(write(tmp_path / "rules.yaml", text)))
    assert done.returncode == 1
    assert "query parameter access_token" in done.stdout


def test_a_test_with_the_identity_source_reaches_the_rule(tmp_path):
    text = PUBLIC.format(expect="{decision: allow, rule: health}", event_type="").replace(
        "path: /health}", "path: /health, headers: {Authorization: anything}}"
    )
    done = run_cli("test", str(write(tmp_path / "rules.yaml", text)))
    assert done.returncode == 0, done.stdout


def test_dry_run_without_the_identity_source_says_api_gateway_answered(tmp_path):
    rules = rules_with(tmp_path, "allow")
    code, report = run_json("dry-run", str(rules), "--method", "GET", "--path", "/health")
    assert code == 0
    assert (report["decision"], report["reason"], report["status"]) == ("unauthorized", "identity_source_missing", 401)
    assert report["body"] == {"message": "Unauthorized"}
    assert report["authorizer_called"] is False and report["rule"] is None and report["response"] is None
    assert "without calling the authorizer" in report["detail"]
    human = run_cli("dry-run", str(rules), "--method", "GET", "--path", "/health", "--expect", "allow")
    assert human.returncode == 1
    assert "API Gateway answered without calling the authorizer" in human.stdout
    assert "HTTP 401" in human.stdout
    assert "expected allow, got unauthorized (reason identity_source_missing)" in human.stderr


def test_dry_run_with_the_identity_source_calls_the_authorizer(tmp_path):
    rules = rules_with(tmp_path, "allow")
    code, report = run_json("dry-run", str(rules), "--method", "GET", "--path", "/health", "-H", "Authorization: x")
    assert report["decision"] == "allow" and report["authorizer_called"] is True


def test_dry_run_of_an_event_file_without_the_identity_source_is_api_gateways_401(tmp_path):
    rules = rules_with(tmp_path, "allow", "rest-token")
    event = tmp_path / "event.json"
    event.write_text('{"type": "TOKEN", "methodArn": "arn:aws:execute-api:us-east-1:123456789012:a/prod/GET/health"}')
    code, report = run_json("dry-run", str(rules), "--event", str(event))
    assert (report["decision"], report["reason"]) == ("unauthorized", "identity_source_missing")


def test_serve_test_and_dry_run_give_the_same_answer(tmp_path):
    rules = rules_with(tmp_path, "{decision: unauthorized, reason: identity_source_missing}")
    assert run_cli("test", str(rules)).returncode == 0
    _, report = run_json("dry-run", str(rules), "--method", "GET", "--path", "/health")
    answer = LocalGateway(Authorizer.load(rules)).handle("GET", "/health", [], b"", "127.0.0.1")
    assert answer.status == report["status"] == 401
    assert "without calling the authorizer" in answer.log and "without calling the authorizer" in report["detail"]


CERT_RULES = """\
version: 1
token:
  header: Authorization
cache:
  mode: identity
  sources:
    headers: [Authorization]
    context: [identity.clientCert.clientCertPem]
rules:
  - name: health
    route: GET /health
    auth: none
    allow: true
"""


def test_dry_run_without_a_client_certificate_identity_source_is_api_gateways_401(tmp_path):
    from tests.test_client_cert import ALICE

    rules = write(tmp_path / "rules.yaml", CERT_RULES)
    (tmp_path / "alice.pem").write_text(ALICE)
    ask = ("dry-run", str(rules), "--method", "GET", "--path", "/health", "-H", "Authorization: x")
    _, report = run_json(*ask)
    assert (report["decision"], report["reason"]) == ("unauthorized", "identity_source_missing")
    assert "context identity.clientCert.clientCertPem" in report["detail"]
    _, report = run_json(*ask, "--client-cert", str(tmp_path / "alice.pem"))
    assert (report["decision"], report["authorizer_called"]) == ("allow", True)


SOURCES = """\
version: 1
token:
  header: Authorization
cache:
  mode: identity
  sources: {{headers: [Authorization{header}]{query}}}
rules:
  - name: health
    route: GET /health
    auth: none
    allow: true
"""


@pytest.mark.parametrize(
    ("header", "query", "variable", "missing"),
    [
        (", X-Tenant", "", "request.headers['x-tenant']", "header X-Tenant"),
        ("", ", query: [tenant]", "request.query['tenant']", "query parameter tenant"),
    ],
)
def test_diff_dry_run_and_serve_give_the_same_401_for_a_new_identity_source(tmp_path, header, query, variable, missing):
    old = write(tmp_path / "old.yaml", SOURCES.format(header="", query=""))
    new = write(tmp_path / "new.yaml", SOURCES.format(header=header, query=query))
    done = run_cli("diff", str(old), str(new), "--json", "--exit-code")
    no_traceback(done)
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    revoked = [c for r in report["routes"] for c in r["changes"]]
    assert [(c["kind"], c["path"], c["variables"][variable]) for c in revoked] == [("revoke", "/health", "missing")]
    _, dry = run_json("dry-run", str(new), "--method", "GET", "--path", "/health", "-H", "Authorization: x")
    assert (
        (dry["decision"], dry["reason"], dry["status"])
        == tuple(revoked[0]["new"][k] for k in ("decision", "reason", "status"))
        == ("unauthorized", "identity_source_missing", 401)
    )
    assert missing in dry["detail"] and dry["authorizer_called"] is False
    answer = LocalGateway(Authorizer.load(new)).handle("GET", "/health", [("Authorization", "x")], b"", "127.0.0.1")
    assert answer.status == 401 and missing in answer.log
