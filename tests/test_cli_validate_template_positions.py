"""`ruleauth validate --template`: findings at the template's own line and column, and rules
for routes API Gateway serves without the authorizer (SAM `Auth: {Authorizer: NONE}`,
OpenAPI `security: []`), which are never consulted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.cli_support import no_traceback, run_cli, run_json, write

RULES = """\
version: 1
token:
  header: Authorization
rules:
  - name: hello
    route: GET /hello
    allow: token == 'x'
  - name: health
    route: GET /health
    auth: none
    allow: true
"""

SAM = """\
Transform: AWS::Serverless-2016-10-31
Resources:
  Api:
    Type: AWS::Serverless::Api
    Properties:
      StageName: prod
      Auth:
        DefaultAuthorizer: Ruleauth
        Authorizers:
          Ruleauth:
            FunctionArn: arn:aws:lambda:us-east-1:123456789012:function:ruleauth
            FunctionPayloadType: REQUEST
            Identity:
              Headers: [X-Other]
              ReauthorizeEvery: 300
  Backend:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: python3.12
      Handler: app.handler
      Events:
        Hello:
          Type: Api
          Properties:
            RestApiId: !Ref Api
            Path: /hello
            Method: get
        Health:
          Type: Api
          Properties:
            RestApiId: !Ref Api
            Path: /health
            Method: get
            Auth: {Authorizer: NONE}
        Orders:
          Type: Api
          Properties:
            RestApiId: !Ref Api
            Path: /orders
            Method: get
"""


def validate(tmp_path: Path, template_text: str, name: str = "template.yaml") -> list[dict[str, Any]]:
    rules = write(tmp_path / "rules.yaml", RULES)
    template = tmp_path / name
    template.write_text(template_text, encoding="utf-8")
    code, report = run_json("validate", str(rules), "--template", str(template))
    assert report["errors"] == 0, report
    return [p for p in report["problems"] if p["file"] == str(template) or "consult" in p["message"]]


def line_of(text: str, fragment: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if fragment in line)


def test_an_uncovered_route_points_at_its_event_in_the_template(tmp_path):
    problems = validate(tmp_path, SAM)
    (orders,) = [p for p in problems if "API route GET /orders has no rule" in p["message"]]
    # The first line of the event's Properties mapping, three below the event's name.
    assert (orders["line"], orders["col"]) == (line_of(SAM, "Orders:") + 3, 13)
    assert SAM.splitlines()[orders["line"] - 1].strip() == "RestApiId: !Ref Api"


def test_an_authorizer_finding_points_at_the_authorizer(tmp_path):
    problems = validate(tmp_path, SAM)
    (sources,) = [p for p in problems if "identity source headers" in p["message"]]
    assert sources["line"] == line_of(SAM, "FunctionArn:")


def test_a_rule_for_an_authorizer_none_route_is_never_consulted_and_the_fix_is_in_sam_terms(tmp_path):
    problems = validate(tmp_path, SAM)
    (health,) = [p for p in problems if "never consults" in p["message"]]
    assert health["rule"] == "health"
    assert (health["line"], health["col"]) == (line_of(SAM, "Auth: {Authorizer: NONE}"), 19)
    assert "Auth: {Authorizer: NONE}" in health["message"]
    assert "remove `Authorizer: NONE` from the event's Auth" in health["message"]
    assert not any("never consults" in p["message"] and p["rule"] == "hello" for p in problems)


def test_the_text_output_shows_the_template_line_under_the_finding(tmp_path):
    rules = write(tmp_path / "rules.yaml", RULES)
    template = tmp_path / "template.yaml"
    template.write_text(SAM, encoding="utf-8")
    done = run_cli("validate", str(rules), "--template", str(template))
    no_traceback(done)
    lines = done.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if "never consults" in line)
    assert lines[at].startswith(f"{template}:{line_of(SAM, 'Auth: {Authorizer: NONE}')}:19: warning:")
    assert lines[at + 1].strip() == "Auth: {Authorizer: NONE}"


OPENAPI = {
    "openapi": "3.0.1",
    "info": {"title": "t", "version": "1"},
    "components": {
        "securitySchemes": {
            "ruleauth": {
                "type": "apiKey",
                "name": "Authorization",
                "in": "header",
                "x-amazon-apigateway-authorizer": {
                    "type": "request",
                    "identitySource": "method.request.header.Authorization",
                    "authorizerUri": "arn:aws:apigateway:us-east-1:lambda:path/x",
                },
            }
        }
    },
    "security": [{"ruleauth": []}],
    "paths": {
        "/hello": {"get": {"responses": {}}},
        "/health": {"get": {"security": [], "responses": {}}},
    },
}


def test_a_rule_for_an_openapi_security_none_operation_is_never_consulted(tmp_path):
    text = json.dumps(OPENAPI, indent=2)
    problems = validate(tmp_path, text, "openapi.json")
    (health,) = [p for p in problems if "never consults" in p["message"]]
    assert health["rule"] == "health" and "security: []" in health["message"]
    assert "remove `security: []` from the operation" in health["message"]
    # The operation's own line in the JSON file, just below its path.
    assert health["line"] == line_of(text, '"/health"') + 1
    assert text.splitlines()[health["line"] - 1].strip() == '"get": {'


def test_a_template_that_is_yaml_only_in_part_still_reads_as_json(tmp_path):
    """JSON that YAML 1.1 cannot read (a tab before a value) still loads, without positions."""
    text = json.dumps(OPENAPI).replace('"3.0.1"', '\t"3.0.1"')
    problems = validate(tmp_path, text, "openapi.json")
    assert any("never consults" in p["message"] for p in problems)
