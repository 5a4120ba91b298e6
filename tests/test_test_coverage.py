"""`ruleauth test --coverage` and `--min-coverage N`, through the real command."""

from __future__ import annotations

import pytest

from tests.cli_support import no_traceback, run_cli, write

RULES = """
version: 1
token: {header: Authorization, scheme: Bearer}
cache: {mode: identity, sources: {headers: [Authorization]}}
jwt:
  issuer: https://idp.example.test
  audience: [https://api.example.test]
rules:
  - name: public
    route: GET /health
    auth: none
    allow: true
  - name: reports
    route: [GET /reports, POST /reports]
    allow: "'staff' in claims.groups || 'auditor' in claims.groups"
  - name: exports
    route: GET /exports
    allow: "'exports' in scopes && int(claims.level) >= 2"
  - name: watched
    route: GET /watched
    mode: shadow
    allow: "false"
tests:
  - name: health
    request: {method: GET, path: /health, headers: {Authorization: Bearer x}}
    expect: allow
  - name: staff read reports
    request: {method: GET, path: /reports}
    claims: {sub: u1, groups: [staff]}
    expect: allow
  - name: others cannot
    request: {method: GET, path: /reports}
    claims: {sub: u2, groups: [guest]}
    expect: deny
  - name: exporters need a level
    request: {method: GET, path: /exports}
    claims: {sub: u3, scope: exports, level: "1"}
    expect: deny
  - name: a level that is no number fails
    request: {method: GET, path: /exports}
    claims: {sub: u4, scope: exports, level: high}
    expect: {decision: deny, reason: rule_error}
"""

MORE_TESTS = """
  - name: auditors write reports
    request: {method: POST, path: /reports}
    claims: {sub: u5, groups: [auditor]}
    expect: allow
  - name: a high level exports
    request: {method: GET, path: /exports}
    claims: {sub: u6, scope: exports, level: "3"}
    expect: allow
  - name: no scope no export
    request: {method: GET, path: /exports}
    claims: {sub: u7, level: "3"}
    expect: deny
"""


def coverage_run(tmp_path, text, *args):
    path = write(tmp_path / "rules.yaml", text)
    done = run_cli("test", str(path), *args)
    no_traceback(done)
    return path, done


def test_coverage_counts_routes_outcomes_and_deciding_operands_of_each_enforced_rule(tmp_path):
    path, done = coverage_run(tmp_path, RULES, "--coverage")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    # routes 3/4 (POST /reports unasked); outcomes 4/5 (`allow: true` can only allow; exports
    # never allowed); operands 2/4 ('auditor' never the first true one of its ||, the scope
    # never the first false one of its &&). The shadow rule is never enforced: no items.
    assert "coverage: 9 of 13 items, 69.2% (routes 3/4, outcomes 4/5, operands 2/4)" in lines
    exports = next(line for line in lines if line.startswith("  rule 'exports':"))
    assert exports.startswith("  rule 'exports': allow 0, deny 1, error 1; operands decided 1/2")
    assert not any("watched" in line for line in lines)
    missing = lines[lines.index("not reached by any test (4):") + 1 :]
    reports_at, exports_at = f"{path}:12:5", f"{path}:15:5"
    assert missing == [
        f"  {reports_at}: rule 'reports': no test asks route POST /reports",
        (
            f"  {reports_at}: rule 'reports': no test makes operand `'auditor' in claims.groups` "
            "(of the || in `'staff' in claims.groups || 'auditor' in claims.groups`) decide"
        ),
        f"  {exports_at}: rule 'exports': no test makes it allow",
        (
            f"  {exports_at}: rule 'exports': no test makes operand `'exports' in scopes` "
            "(of the && in `'exports' in scopes && int(claims.level) >= 2`) decide"
        ),
    ]


def test_tests_that_reach_every_item_are_full_coverage(tmp_path):
    _path, done = coverage_run(tmp_path, RULES + MORE_TESTS, "--min-coverage", "100")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "coverage: 13 of 13 items, 100.0% (routes 4/4, outcomes 5/5, operands 4/4)" in done.stdout
    assert "not reached by any test" not in done.stdout


@pytest.mark.parametrize(("minimum", "status"), [("69", 0), ("69.2", 0), ("69.3", 1), ("100", 1)])
def test_min_coverage_fails_exactly_under_the_given_percentage(tmp_path, minimum, status):
    _path, done = coverage_run(tmp_path, RULES, "--min-coverage", minimum)
    assert done.returncode == status, done.stdout + done.stderr
    assert "coverage: 9 of 13 items" in done.stdout  # --min-coverage implies --coverage
    if status:
        assert f"coverage 69.2% is under --min-coverage {float(minimum):g}%" in done.stderr


def test_failing_cases_fail_the_run_whatever_the_coverage(tmp_path):
    text = RULES.replace("expect: {decision: deny, reason: rule_error}", "expect: allow")
    _path, done = coverage_run(tmp_path, text, "--min-coverage", "0")
    assert done.returncode == 1
    assert "4 passed, 1 failed" in done.stdout and "coverage:" in done.stdout


def test_without_coverage_flags_no_coverage_is_computed_or_shown(tmp_path):
    _path, done = coverage_run(tmp_path, RULES)
    assert done.returncode == 0
    assert "coverage" not in done.stdout


@pytest.mark.parametrize("minimum", ["-1", "101", "lots"])
def test_a_min_coverage_that_is_no_percentage_is_a_usage_error(tmp_path, minimum):
    _path, done = coverage_run(tmp_path, RULES, "--min-coverage", minimum)
    assert done.returncode == 2


def test_an_any_route_is_one_item_and_shows_the_methods_asked(tmp_path):
    text = """
version: 1
rules:
  - name: admin
    route: ANY /admin/{proxy+}
    allow: "request.method == 'GET' || request.headers['x-admin'] == 'yes'"
tests:
  - name: read
    request: {method: GET, path: /admin/a, headers: {Authorization: x}}
    expect: allow
  - name: delete
    request: {method: DELETE, path: /admin/b, headers: {Authorization: x, X-Admin: "yes"}}
    expect: allow
  - name: refused
    request: {method: PUT, path: /admin/c, headers: {Authorization: x, X-Admin: "no"}}
    expect: deny
"""
    _path, done = coverage_run(
        tmp_path, text.replace("version: 1", "version: 1\ncache: {mode: disabled}"), "--coverage"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "routes ANY /admin/{proxy+} (DELETE, GET, PUT)" in done.stdout
    assert "coverage: 5 of 5 items, 100.0% (routes 1/1, outcomes 2/2, operands 2/2)" in done.stdout


REFUSED = RULES.replace(
    """  - name: health
    request: {method: GET, path: /health, headers: {Authorization: Bearer x}}
    expect: allow
""",
    """  - name: health without a token
    request: {method: GET, path: /health}
    expect: {decision: unauthorized, reason: identity_source_missing}
""",
)


def test_a_case_api_gateway_refuses_itself_reaches_no_route_and_is_named_as_the_reason(tmp_path):
    path, done = coverage_run(tmp_path, REFUSED, "--coverage")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    # The refused case asks GET /health, but API Gateway answers 401 before the rule: the
    # route and the rule's one outcome (allow) are not reached: 2 items fewer than RULES.
    assert "coverage: 7 of 13 items, 53.8% (routes 2/4, outcomes 3/5, operands 2/4)" in lines
    public = next(line for line in lines if line.startswith("  rule 'public':"))
    assert public == "  rule 'public': allow 0, deny 0, error 0; operands decided 0/0; routes GET /health (-)"
    missing = lines[lines.index("not reached by any test (6):") + 1 :]
    lines_of = REFUSED.splitlines()  # from the blank first line, which write() drops
    rule_at = f"{path}:{lines_of.index('  - name: public')}:5"
    case_at = f"{path}:{lines_of.index('  - name: health without a token')}:5"
    assert missing[:2] == [
        (
            f"  {rule_at}: rule 'public': no test reaches route GET /health; refused by API Gateway: "
            f"test 'health without a token' ({case_at}): identity source missing "
            "(header Authorization): API Gateway answers 401 without calling the authorizer"
        ),
        f"  {rule_at}: rule 'public': no test makes it allow",
    ]


def test_a_case_api_gateway_passes_to_the_authorizer_without_the_source_still_reaches_its_route(tmp_path):
    # A REST REQUEST authorizer without caching is called even without the header.
    uncached = REFUSED.replace(
        "cache: {mode: identity, sources: {headers: [Authorization]}}", "cache: {mode: disabled}"
    )
    _path, done = coverage_run(
        tmp_path, uncached.replace("{decision: unauthorized, reason: identity_source_missing}", "allow"), "--coverage"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "coverage: 9 of 13 items, 69.2% (routes 3/4, outcomes 4/5, operands 2/4)" in done.stdout
    assert "refused by API Gateway" not in done.stdout
