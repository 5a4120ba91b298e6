"""The article's demo, end to end through the Lambda handler in a fresh process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import json, sys
from ruleauth.handler import handler
event = json.loads(sys.stdin.read())
try:
    print(json.dumps({"response": handler(event, None)}))
except Exception as exc:
    print(json.dumps({"raised": str(exc)}))
"""


def run_handler(event: dict, rules: Path) -> dict:
    env = {**os.environ, "RULEAUTH_RULES": str(rules), "RULEAUTH_LOG_LEVEL": "ERROR"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        input=json.dumps(event),
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def hello_event(authorization: str | None) -> dict:
    headers = {"Authorization": authorization} if authorization is not None else {}
    return {
        "type": "REQUEST",
        "methodArn": "arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/GET/hello",
        "resource": "/hello",
        "path": "/hello",
        "httpMethod": "GET",
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "requestContext": {"requestId": "r1"},
    }


@pytest.mark.parametrize("rules", ["rules", "rules/demo.yaml"], ids=["directory", "file"])
def test_odd_number_is_allowed_even_and_junk_denied_missing_is_401(rules):
    allowed = run_handler(hello_event("17"), ROOT / rules)["response"]
    assert allowed["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    assert allowed["policyDocument"]["Statement"][0]["Resource"].endswith("/prod/GET/hello")
    for junk in ("2", "abc"):
        denied = run_handler(hello_event(junk), ROOT / rules)["response"]
        assert [s["Effect"] for s in denied["policyDocument"]["Statement"]] == ["Deny"]
    assert run_handler(hello_event(None), ROOT / rules) == {"raised": "Unauthorized"}
