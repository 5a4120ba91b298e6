"""validate on cached policies: shadowed routes, the policy size, and API routes under a wildcard."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from ruleauth.rules.loader import load

ROOT = Path(__file__).resolve().parents[1]


def validate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruleauth.tools.cli", "validate", *args], capture_output=True, text=True, cwd=ROOT
    )


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


ORDERS = """\
    version: 1
    token: {header: Authorization}
    rules:
      - name: read orders
        route: GET /orders/{id}
        auth: token
        allow: token == 'reader'
"""


def test_an_any_route_whose_every_method_has_its_own_rule_is_reported_as_shadowed(tmp_path):
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    rules = (
        "version: 1\ntoken: {header: Authorization}\nrules:\n"
        + "".join(f"  - name: {m.lower()}\n    route: {m} /x\n    auth: token\n    allow: 'true'\n" for m in methods)
        + "  - name: catch all\n    route: ANY /x\n    auth: token\n    allow: 'true'\n"
    )
    done = validate(str(write(tmp_path, "rules.yaml", rules)))
    assert "rule 'catch all': route ANY /x is shadowed" in done.stdout
    assert done.returncode == 0
    assert validate(str(tmp_path / "rules.yaml"), "--strict").returncode == 1


def test_validate_reports_the_worst_case_cached_policy_size(tmp_path):
    done = validate(str(write(tmp_path, "rules.yaml", ORDERS)), "--json")
    report = json.loads(done.stdout)["policy_size"]
    assert 0 < report["all_allowed"] <= report["worst_case"] and report["limit"] == 8192
    assert "cached policy (cache.mode identity): about" in validate(str(tmp_path / "rules.yaml")).stdout


def test_an_api_route_without_a_rule_under_another_rules_wildcard_is_reported(tmp_path):
    rules = write(tmp_path, "rules.yaml", ORDERS)
    template = write(
        tmp_path,
        "openapi.yaml",
        """\
        openapi: 3.0.1
        info: {title: orders, version: "1"}
        paths:
          /orders/{id}:
            get: {security: [{ruleauth: []}]}
          /orders/{id}/secret:
            get: {security: [{ruleauth: []}]}
        components:
          securitySchemes:
            ruleauth:
              type: apiKey
              name: Authorization
              in: header
              x-amazon-apigateway-authorizer:
                type: request
                identitySource: method.request.header.Authorization
                authorizerResultTtlInSeconds: 300
    """,
    )
    done = validate(str(rules), "--template", str(template))
    assert "API route GET /orders/{id}/secret has no rule, but the cached Allow of rule 'read orders'" in done.stdout
    assert validate(str(rules), "--template", str(template), "--strict").returncode == 1


def test_validate_names_each_rule_no_test_reaches_and_the_loader_keeps_quiet_about_it(tmp_path):
    rules = (
        ORDERS
        + """\
      - name: write orders
        route: POST /orders
        auth: token
        allow: token == 'writer'
    tests:
      - name: reader reads
        request: {method: GET, path: /orders/1, token: reader}
        expect: allow
"""
    )
    path = write(tmp_path, "rules.yaml", rules)
    done = validate(str(path))
    assert f"{path}:8:5: warning: rule 'write orders': no test in `tests:` reaches this rule" in done.stdout
    assert "read orders': no test" not in done.stdout and "1 warning" in done.stdout.splitlines()[-2]
    # A cold start loads the same rules without routing their tests.
    assert load(path).warnings == []


def test_a_rule_whose_only_test_api_gateway_refuses_itself_is_reached_by_no_test_and_says_why(tmp_path):
    rules = (
        ORDERS
        + """\
      - name: health
        route: GET /health
        auth: none
        allow: true
    tests:
      - name: reader reads
        request: {method: GET, path: /orders/1, token: reader}
        expect: allow
      - name: health without a token
        request: {method: GET, path: /health}
        expect: {decision: unauthorized, reason: identity_source_missing}
"""
    )
    path = write(tmp_path, "rules.yaml", rules)
    done = validate(str(path))
    assert (
        f"{path}:8:5: warning: rule 'health': no test in `tests:` reaches this rule; refused by API Gateway: "
        f"test 'health without a token' ({path}:16:5): identity source missing (header Authorization): "
        "API Gateway answers 401 without calling the authorizer"
    ) in done.stdout, done.stdout
    # With the header, API Gateway calls the authorizer and the case reaches the rule.
    sent = rules.replace("request: {method: GET, path: /health}", "request: {method: GET, path: /health, token: x}")
    done = validate(str(write(tmp_path, "sent.yaml", sent)))
    assert "no test" not in done.stdout, done.stdout
