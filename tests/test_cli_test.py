"""`ruleauth test`: the tests: cases of a rules file, run through the real command."""

from __future__ import annotations

import json

from tests.cli_support import DEMO, no_traceback, run_cli, write

RULES = """
version: 1
token: {header: Authorization, scheme: Bearer}
cache: {mode: identity, sources: {headers: [Authorization]}}
jwt:
  issuer: https://idp.example.test
  audience: [https://api.example.test]
principal: claims.sub
context:
  tenant: claims.tenant
  admin: "'admin' in claims.groups"
rules:
  - name: admins
    route: ANY /admin/{proxy+}
    allow: "'admin' in claims.groups"
  - name: fresh tokens
    route: GET /fresh
    allow: "int(claims.exp) > now_unix"
tests:
  - name: admins by claims
    request: {method: DELETE, path: /admin/users/7}
    claims: {sub: u1, tenant: t1, groups: [admin]}
    expect: {decision: allow, rule: admins, status: 200, principal: u1, context: {tenant: t1, admin: true}}
  - name: users are denied
    request: {method: GET, path: /admin/x}
    claims: {sub: u2, groups: [user]}
    expect: {decision: deny, reason: rule_false, status: 403}
  - name: before expiry
    request: {method: GET, path: /fresh}
    claims: {sub: u3, exp: 1800000000}
    now: "2026-01-01T00:00:00Z"
    expect: allow
  - name: after expiry
    request: {method: GET, path: /fresh}
    claims: {sub: u3, exp: 1800000000}
    now: "2030-01-01T00:00:00Z"
    expect: deny
  - name: http api events too
    request: {method: GET, path: /admin/y}
    event_type: http-2.0
    claims: {sub: u1, groups: [admin]}
    expect: allow
  - name: no token at all
    request: {method: GET, path: /admin/x}
    expect: unauthorized
"""


def test_demo_passes():
    done = run_cli("test", str(DEMO))
    assert done.returncode == 0, done.stdout
    assert done.stdout.splitlines()[-1] == "5 passed, 0 failed"


def test_claims_now_context_and_event_types(tmp_path):
    rules = write(tmp_path / "rules.yaml", RULES)
    done = run_cli("test", str(rules), "-v")
    assert done.returncode == 0, done.stdout
    assert done.stdout.splitlines()[-1] == "6 passed, 0 failed"
    assert done.stdout.count("PASS ") == 6


FAILING = """
version: 1
token: {header: Authorization}
rules:
  - name: odd numbers only
    route: GET /hello
    auth: token
    allow: int(token) % 2 == 1
tests:
  - name: right
    request: {method: GET, path: /hello, headers: {Authorization: "17"}}
    expect: allow
  - name: wrong decision
    request: {method: GET, path: /hello, headers: {Authorization: "SECRET-42"}}
    expect: {decision: allow, reason: rule_true, status: 200}
  - name: wrong context
    request: {method: GET, path: /hello, headers: {Authorization: "3"}}
    expect: {decision: allow, principal: someone, context: {tenant: t1}}
"""


def test_failures_one_line_each_with_explanation_and_exit_1(tmp_path):
    rules = write(tmp_path / "rules.yaml", FAILING)
    done = run_cli("test", str(rules))
    no_traceback(done)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[-1] == "1 passed, 2 failed"
    fails = [line for line in lines if line.startswith("FAIL ")]
    assert len(fails) == 2
    assert fails[0].startswith(f"FAIL {rules}:12:5: wrong decision: expected allow, got deny (reason rule_error")
    assert "expected status 200, got 403" in fails[0]
    assert "fails at int(token)" in done.stdout  # the explanation follows the failure
    assert "SECRET" not in done.stdout + done.stderr
    assert "expected principal 'someone', got 'anonymous'" in fails[1]
    assert 'expected context.tenant = "t1", but the key is absent' in fails[1]


def test_event_file_cases(tmp_path):
    event = {
        "type": "TOKEN",
        "authorizationToken": "7",
        "methodArn": "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET/hello",
    }
    (tmp_path / "event.json").write_text(json.dumps(event))
    write(
        tmp_path / "rules.yaml",
        """
        version: 1
        rules:
          - name: odd numbers only
            route: GET /hello
            auth: token
            allow: int(token) % 2 == 1
        tests:
          - name: from a captured event
            event: event.json
            expect: {decision: allow, rule: odd numbers only}
    """,
    )
    done = run_cli("test", str(tmp_path / "rules.yaml"))
    assert done.returncode == 0 and done.stdout.splitlines()[-1] == "1 passed, 0 failed"
    (tmp_path / "event.json").write_text("{broken")
    done = run_cli("test", str(tmp_path / "rules.yaml"))
    no_traceback(done)
    assert done.returncode == 1 and "cannot read event file" in done.stdout
    assert done.stdout.splitlines()[-1] == "0 passed, 1 failed"


def test_no_tests_passes_with_a_note(tmp_path):
    rules = write(tmp_path / "rules.yaml", "version: 1\nrules:\n  - {name: a, route: GET /, allow: true}\n")
    done = run_cli("test", str(rules))
    assert done.returncode == 0 and done.stdout.splitlines()[-1] == "0 passed, 0 failed"
    assert "no `tests:`" in done.stderr


def test_bad_input(tmp_path):
    done = run_cli("test", str(tmp_path / "missing.yaml"))
    no_traceback(done)
    assert done.returncode == 2 and "does not exist" in done.stderr
    done = run_cli("test", str(DEMO), "--nope")
    assert done.returncode == 2 and "unrecognized arguments: --nope" in done.stderr
    broken = write(tmp_path / "broken.yaml", "version: 1\nrules: {}\n")
    done = run_cli("test", str(broken))
    no_traceback(done)
    assert done.returncode == 3 and "rules must be a list" in done.stderr
