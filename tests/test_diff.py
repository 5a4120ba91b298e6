"""`ruleauth diff OLD NEW`: what a rules change grants and revokes, through the real command."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.cli_support import cli_env, no_traceback, run_cli, write

CORP = "https://login.example.test"
PARTNERS = "https://partners.example.test"

HEAD = f"""
version: 1
token: {{header: Authorization, scheme: Bearer}}
cache: {{mode: identity, sources: {{headers: [Authorization]}}}}
jwt:
  - name: corp
    issuer: {CORP}
    audience: [https://api.example.test]
  - name: partners
    issuer: {PARTNERS}
    audience: [https://api.example.test]
principal: claims.sub
"""

ORDERS = (
    HEAD
    + """
rules:
  - name: read orders
    route: GET /orders/{id}
    allow: "'orders:read' in scopes"
  - name: delete orders
    route: DELETE /orders/{id}
    auth: {jwt: [corp]}
    allow: "'orders:delete' in scopes"
  - name: admin console
    route: ANY /admin/{proxy+}
    auth: {jwt: [corp]}
    allow: "'admin' in claims.groups"
  - name: health
    route: GET /health
    auth: none
    allow: true
"""
)


def rules(tmp_path: Path, name: str, text: str) -> Path:
    return write(tmp_path / name, text)


def diff_json(*args: str, cwd: Path | None = None) -> tuple[int, dict[str, Any]]:
    done = run_cli("diff", *args, "--json", "--exit-code", cwd=cwd)
    no_traceback(done)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def changes(report: dict[str, Any], method: str, path: str) -> list[dict[str, Any]]:
    found = [r for r in report["routes"] if r["method"] == method and r["path"] == path]
    return found[0]["changes"] if found else []


def kinds(report: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    return {(r["method"], r["path"]): {c["kind"] for c in r["changes"]} for r in report["routes"]}


def test_a_widened_scope_is_a_grant_for_exactly_the_callers_holding_the_new_scope(tmp_path):
    old = rules(tmp_path, "old.yaml", ORDERS)
    new = rules(
        tmp_path,
        "new.yaml",
        ORDERS.replace(
            "allow: \"'orders:read' in scopes\"", "allow: \"'orders:read' in scopes || 'orders:admin' in scopes\""
        ),
    )
    status, report = diff_json(str(old), str(new))
    assert status == 1 and report["access_changed"] is True
    assert kinds(report) == {("GET", "/orders/id"): {"grant"}}
    granted = changes(report, "GET", "/orders/id")
    # Both issuers (the rule accepts every provider), holding orders:admin but not orders:read.
    assert {c["variables"]["identity"] for c in granted} == {f"JWT from {CORP}", f"JWT from {PARTNERS}"}
    for change in granted:
        assert change["variables"]["scopes"] == "has 'orders:admin' lacks 'orders:read'"
        # A token without `sub` has no principal (principal: claims.sub): denied both times.
        assert change["variables"]["claims.sub"] == "'other'"
        assert change["old"]["decision"] == "deny" and change["old"]["reason"] == "rule_false"
        assert change["new"] == {**change["new"], "decision": "allow", "status": 200, "rule": "read orders"}
    assert report["counts"]["revoke"] == 0


def test_a_removed_route_revokes_what_it_allowed_and_names_no_route_after(tmp_path):
    old = rules(tmp_path, "old.yaml", ORDERS)
    removed = ORDERS.replace(
        """  - name: delete orders
    route: DELETE /orders/{id}
    auth: {jwt: [corp]}
    allow: "'orders:delete' in scopes"
""",
        "",
    )
    new = rules(tmp_path, "new.yaml", removed)
    status, report = diff_json(str(old), str(new))
    assert status == 1
    route = next(r for r in report["routes"] if r["method"] == "DELETE" and r["path"] == "/orders/id")
    assert route["old"] == {"route": "DELETE /orders/{id}", "rule": "delete orders"}
    assert route["new"] == {"route": None, "rule": None}
    revoked = [c for c in route["changes"] if c["kind"] == "revoke"]
    assert [c["variables"]["identity"] for c in revoked] == [f"JWT from {CORP}"]
    assert revoked[0]["variables"]["scopes"].startswith("has 'orders:delete'")
    assert revoked[0]["new"]["reason"] == "no_route" and revoked[0]["new"]["status"] == 403
    # Callers refused before are refused after, only in another form (401 → 403): not access.
    assert {c["kind"] for c in route["changes"]} == {"revoke", "refusal"}
    assert {k for k, v in kinds(report).items() if v} == {("DELETE", "/orders/id")}


def test_an_any_route_split_into_methods_revokes_every_method_left_out(tmp_path):
    old = rules(tmp_path, "old.yaml", ORDERS)
    new = rules(
        tmp_path,
        "new.yaml",
        ORDERS.replace("route: ANY /admin/{proxy+}", "route: ['GET /admin/{proxy+}', 'POST /admin/{proxy+}']"),
    )
    status, report = diff_json(str(old), str(new))
    assert status == 1
    revoked = {m for (m, p), k in kinds(report).items() if p == "/admin/proxy/y" and "revoke" in k}
    assert revoked == {"PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}
    assert not changes(report, "GET", "/admin/proxy/y")
    assert not changes(report, "POST", "/admin/proxy/y")
    for change in changes(report, "PUT", "/admin/proxy/y"):
        if change["kind"] == "revoke":
            assert change["variables"]["claims.groups"].startswith("has 'admin'")
            assert change["old"]["route"] == "ANY /admin/{proxy+}"


def test_a_define_changed_under_several_rules_changes_each_of_their_routes(tmp_path):
    shared = (
        HEAD
        + """
define:
  is_staff: "'staff' in claims.groups"
rules:
  - name: reports
    route: GET /reports
    allow: is_staff
  - name: exports
    route: POST /exports
    allow: is_staff && 'exports' in scopes
  - name: public
    route: GET /public
    allow: true
"""
    )
    old = rules(tmp_path, "old.yaml", shared)
    new = rules(
        tmp_path,
        "new.yaml",
        shared.replace(
            """"'staff' in claims.groups\"""", """"'staff' in claims.groups || 'contractor' in claims.groups\""""
        ),
    )
    status, report = diff_json(str(old), str(new))
    assert status == 1
    assert kinds(report) == {("GET", "/reports"): {"grant"}, ("POST", "/exports"): {"grant"}}
    for change in changes(report, "GET", "/reports") + changes(report, "POST", "/exports"):
        assert change["variables"]["claims.groups"] == "has 'contractor' lacks 'staff'"
    assert all(c["variables"]["scopes"].startswith("has 'exports'") for c in changes(report, "POST", "/exports"))


def test_a_narrowed_provider_revokes_the_other_issuers_tokens_with_a_401(tmp_path):
    old = rules(tmp_path, "old.yaml", ORDERS)
    new = rules(
        tmp_path,
        "new.yaml",
        ORDERS.replace(
            """    route: GET /orders/{id}
    allow""",
            """    route: GET /orders/{id}
    auth: {jwt: [corp]}
    allow""",
        ),
    )
    status, report = diff_json(str(old), str(new))
    assert status == 1
    assert kinds(report) == {("GET", "/orders/id"): {"revoke", "refusal"}}
    revoked = [c for c in changes(report, "GET", "/orders/id") if c["kind"] == "revoke"]
    assert [c["variables"]["identity"] for c in revoked] == [f"JWT from {PARTNERS}"]
    assert revoked[0]["new"]["decision"] == "unauthorized" and revoked[0]["new"]["status"] == 401


def test_an_unchanged_meaning_exits_0_with_exit_code_and_says_so(tmp_path):
    old = rules(tmp_path, "old.yaml", ORDERS)
    # Reformatted, reordered and commented: the same access.
    rewritten = ORDERS.replace("allow: \"'orders:read' in scopes\"", "allow: \"('orders:read' in scopes)\"  # read")
    new = rules(tmp_path, "new.yaml", rewritten)
    done = run_cli("diff", str(old), str(new), "--exit-code")
    no_traceback(done)
    assert done.returncode == 0, done.stdout
    assert "no access changes" in done.stdout
    assert "caller classes explored" in done.stdout
    status, report = diff_json(str(old), str(new))
    assert status == 0 and report["routes"] == [] and report["access_changed"] is False


def test_without_exit_code_a_change_still_exits_0(tmp_path):
    old = rules(tmp_path, "old.yaml", ORDERS)
    new = rules(tmp_path, "new.yaml", ORDERS.replace("'admin' in claims.groups", "true"))
    done = run_cli("diff", str(old), str(new))
    assert done.returncode == 0
    assert "+ grant" in done.stdout


def test_a_changed_principal_and_context_are_reported_for_callers_allowed_both_times(tmp_path):
    base = ORDERS.replace("principal: claims.sub\n", "principal: claims.sub\ncontext:\n  tier: \"'gold'\"\n")
    old = rules(tmp_path, "old.yaml", base)
    new = rules(tmp_path, "new.yaml", base.replace("principal: claims.sub", "principal: \"'svc-' + claims.sub\""))
    status, report = diff_json(str(old), str(new))
    assert status == 1
    principal = [c for c in changes(report, "GET", "/health") if c["kind"] == "principal"]
    # Under cache.mode identity a public route's response names the caller too.
    assert principal and all(c["new"]["principal"] == "svc-" + c["old"]["principal"] for c in principal)
    read = [c for c in changes(report, "GET", "/orders/id") if c["kind"] == "principal"]
    assert read and all(c["new"]["principal"] == "svc-" + c["old"]["principal"] for c in read)
    newer = rules(tmp_path, "newer.yaml", base.replace("'gold'", "'silver'"))
    status, report = diff_json(str(old), str(newer))
    context = [c for c in changes(report, "GET", "/orders/id") if c["kind"] == "context"]
    assert status == 1 and context
    assert all(c["old"]["context"]["tier"] == "gold" and c["new"]["context"]["tier"] == "silver" for c in context)


def test_header_and_claim_values_the_rules_compare_become_caller_classes(tmp_path):
    base = (
        HEAD.replace("headers: [Authorization]", "headers: [Authorization, X-Tenant]")
        + """
rules:
  - name: tenant api
    route: GET /tenant
    auth: {jwt: [corp]}
    allow: "request.headers['x-tenant'] == 'acme' && claims.level >= 3"
"""
    )
    old = rules(tmp_path, "old.yaml", base)
    new = rules(tmp_path, "new.yaml", base.replace("== 'acme'", "in ['acme', 'globex']"))
    status, report = diff_json(str(old), str(new))
    assert status == 1
    granted = changes(report, "GET", "/tenant")
    assert granted and all(c["kind"] == "grant" for c in granted)
    assert {c["variables"]["request.headers['x-tenant']"] for c in granted} == {"'globex'"}
    assert {c["variables"]["claims.level"] for c in granted} == {"3", "4"}


def test_the_tests_requests_of_both_versions_are_asked_too(tmp_path):
    tests = (
        """
tests:
  - name: a partner reads an order
    request: {method: GET, path: /orders/7, headers: {Authorization: Bearer x}}
    claims: {iss: "%s", sub: p1, scope: "orders:read"}
    expect: allow
"""
        % PARTNERS
    )
    old = rules(tmp_path, "old.yaml", ORDERS + tests)
    new = rules(
        tmp_path,
        "new.yaml",
        ORDERS.replace("route: GET /orders/{id}", "route: GET /orders/{id}\n    auth: {jwt: [corp]}"),
    )
    status, report = diff_json(str(old), str(new))
    assert status == 1
    tested = [c for c in changes(report, "GET", "/orders/7") if c["test"]]
    assert len(tested) == 1 and tested[0]["kind"] == "revoke"
    assert "a partner reads an order" in tested[0]["test"] and "old.yaml:" in tested[0]["test"]


def test_the_text_table_groups_by_route_and_marks_grants_and_revokes(tmp_path):
    old = rules(tmp_path, "old.yaml", ORDERS)
    new = rules(
        tmp_path,
        "new.yaml",
        ORDERS.replace("route: ANY /admin/{proxy+}", "route: GET /admin/{proxy+}").replace(
            "'orders:read' in scopes", "'orders:read' in scopes || 'orders:admin' in scopes"
        ),
    )
    done = run_cli("diff", str(old), str(new))
    no_traceback(done)
    lines = done.stdout.splitlines()
    assert lines[0] == f"ruleauth diff {old} → {new}"
    header = next(i for i, line in enumerate(lines) if line.startswith("GET /orders/id "))
    assert "old: GET /orders/{id} (rule 'read orders')" in lines[header]
    assert lines[header + 1].startswith("  + grant ")
    put = next(i for i, line in enumerate(lines) if line.startswith("PUT /admin/proxy/y "))
    assert "new: no route" in lines[put] and lines[put + 1].startswith("  - revoke ")
    assert "caller classes explored" in lines[-1] and "grant" in lines[-1] and "revoke" in lines[-1]


def test_the_json_report_has_its_documented_shape(tmp_path):
    old = rules(tmp_path, "old.yaml", ORDERS)
    new = rules(tmp_path, "new.yaml", ORDERS.replace("'admin' in claims.groups", "'root' in claims.groups"))
    _status, report = diff_json(str(old), str(new))
    assert set(report) == {
        "old",
        "new",
        "access_changed",
        "routes_explored",
        "classes_explored",
        "cap",
        "capped",
        "counts",
        "routes",
    }
    assert set(report["counts"]) == {"grant", "revoke", "principal", "context", "refusal"}
    assert report["classes_explored"] >= report["routes_explored"] > 0
    for route in report["routes"]:
        assert set(route) == {"method", "path", "old", "new", "classes_explored", "classes_total", "changes"}
        for change in route["changes"]:
            assert set(change) == {"method", "path", "kind", "caller", "variables", "test", "classes", "old", "new"}
            for side in ("old", "new"):
                assert set(change[side]) == {"decision", "reason", "status", "rule", "route", "principal", "context"}


def test_a_process_substitution_input_is_read_once_and_its_problems_point_at_lines(tmp_path):
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("needs bash for <(...)")
    old = rules(tmp_path, "old.yaml", ORDERS)
    new = rules(tmp_path, "new.yaml", ORDERS.replace("'admin' in claims.groups", "true"))
    command = f'"$PY" -m ruleauth.tools.cli diff <(cat {old}) {new} --exit-code'
    import sys

    env = cli_env(PY=sys.executable)
    done = subprocess.run([bash, "-c", command], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "/dev/fd/" in done.stdout.splitlines()[0] and "+ grant" in done.stdout
    broken = rules(tmp_path, "broken.yaml", ORDERS.replace("'orders:read' in scopes", "'orders:read' in scopes &&"))
    done = subprocess.run(
        [bash, "-c", f'"$PY" -m ruleauth.tools.cli diff <(cat {broken}) {new}'],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 3
    first = done.stderr.splitlines()[0]
    line = next(n for n, text in enumerate(broken.read_text().splitlines(), 1) if "in scopes &&" in text)
    assert first.startswith("/dev/fd/") and f":{line}:" in first, done.stderr
    assert "'orders:read' in scopes &&" in done.stderr  # the line itself, with its caret
    assert "ruleauth-diff-" not in done.stderr  # never the temporary copy's name


def test_git_rev_compares_the_committed_rules_with_the_working_tree(tmp_path):
    git = shutil.which("git")
    if git is None:
        pytest.skip("needs git")
    repo = tmp_path / "repo"
    (repo / "rules").mkdir(parents=True)
    case = f"""
tests:
  - name: deleters delete
    request: {{method: DELETE, path: /orders/7, headers: {{Authorization: Bearer x}}}}
    claims: {{iss: "{CORP}", sub: u1, scope: "orders:delete"}}
    expect: allow
"""
    rules(repo / "rules", "api.yaml", ORDERS + case)
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.test", "GIT_COMMITTER_NAME": "t"}
    env |= {"GIT_COMMITTER_EMAIL": "t@example.test", "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "rules"]):
        subprocess.run([git, *args], cwd=repo, check=True, env=env, capture_output=True)
    rules(repo / "rules", "api.yaml", ORDERS.replace("'orders:delete' in scopes", "false") + case)
    status, report = diff_json("--git", "HEAD", "rules", cwd=repo)
    assert status == 1
    assert report["old"] == "HEAD:rules" and report["new"] == "rules"
    assert kinds(report) == {("DELETE", "/orders/id"): {"revoke"}, ("DELETE", "/orders/7"): {"revoke"}}
    tested = changes(report, "DELETE", "/orders/7")
    assert len(tested) == 1 and tested[0]["test"].startswith("test 'deleters delete' (HEAD:rules/api.yaml:")
    done = run_cli("diff", "--git", "HEAD", "rules/api.yaml", "--exit-code", cwd=repo)
    assert done.returncode == 1 and done.stdout.startswith("ruleauth diff HEAD:rules/api.yaml → rules/api.yaml")
    done = run_cli("diff", "--git", "no-such-rev", "rules", cwd=repo)
    assert done.returncode == 2 and "git ls-tree failed" in done.stderr
    # A load error in the committed version points at the revision's file and line.
    rules(repo / "rules", "api.yaml", ORDERS.replace("allow: true", "allow: tru"))
    subprocess.run([git, "commit", "-qam", "typo"], cwd=repo, check=True, env=env, capture_output=True)
    done = run_cli("diff", "--git", "HEAD", "rules", cwd=repo)
    assert done.returncode == 3 and done.stderr.startswith("HEAD:rules/api.yaml:"), done.stderr


def test_a_product_over_the_cap_is_sampled_and_says_so(tmp_path):
    old = rules(tmp_path, "old.yaml", ORDERS)
    new = rules(tmp_path, "new.yaml", ORDERS.replace("'admin' in claims.groups", "'root' in claims.groups"))
    done = run_cli("diff", str(old), str(new), "--max-classes", "5")
    no_traceback(done)
    assert "more than the cap of 5" in done.stdout and "raise --max-classes" in done.stdout
    status, report = diff_json(str(old), str(new), "--max-classes", "5")
    assert report["cap"] == 5 and "GET /admin/proxy/y" in report["capped"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give OLD and NEW"),
        (("a.yaml",), "give OLD and NEW"),
        (("--git", "HEAD", "a", "b"), "at most one RULES path"),
        (("no-such-old.yaml", "no-such-new.yaml"), "does not exist"),
    ],
)
def test_bad_arguments_are_usage_errors(args, message):
    done = run_cli("diff", *args)
    assert done.returncode == 2 and message in done.stderr
    no_traceback(done)


def test_values_read_through_string_functions_become_caller_classes(tmp_path):
    base = (
        HEAD.replace("headers: [Authorization]", "headers: [Authorization, X-Flags]")
        + """
rules:
  - name: roles
    route: GET /roles
    allow: "claims.role.lowerAscii() == 'admin'"
  - name: flags
    route: GET /flags
    allow: "'beta' in request.headers['x-flags'].split(',')"
  - name: mail
    route: GET /mail
    allow: "claims.email.endsWith('@corp.test')"
"""
    )
    old = rules(tmp_path, "old.yaml", base)
    new = rules(
        tmp_path,
        "new.yaml",
        base.replace("== 'admin'", "== 'editor'")
        .replace("'beta' in", "'gamma' in")
        .replace("'@corp.test'", "'@staff.corp.test'"),
    )
    status, report = diff_json(str(old), str(new))
    assert status == 1

    def by_kind(method_path: str, variable: str) -> dict[str, set[str]]:
        method, path = method_path.split(" ")
        found: dict[str, set[str]] = {}
        for change in changes(report, method, path):
            found.setdefault(change["kind"], set()).add(change["variables"][variable])
        return found

    assert by_kind("GET /roles", "claims.role") == {"grant": {"'editor'"}, "revoke": {"'admin'"}}
    assert by_kind("GET /flags", "request.headers['x-flags']") == {"grant": {"'gamma'"}, "revoke": {"'beta'"}}
    assert by_kind("GET /mail", "claims.email") == {"grant": {"'@staff.corp.test'"}, "revoke": {"'@corp.test'"}}


def test_a_case_both_versions_share_is_asked_once_event_files_included(tmp_path):
    shutil.copy(Path(__file__).parent / "fixtures" / "events" / "rest-request.json", tmp_path / "rest-request.json")
    text = """
version: 1
cache: {mode: disabled}
rules:
  - name: lambda request
    route: POST /lambda-request
    auth: token
    allow: true
tests:
  - name: the sample event
    event: rest-request.json
    expect: allow
"""
    old = rules(tmp_path, "old.yaml", text)
    new = rules(tmp_path, "new.yaml", text.replace("allow: true", "allow: false"))
    status, report = diff_json(str(old), str(new))
    assert status == 1
    tested = [c for c in changes(report, "POST", "/lambda-request") if c["test"]]
    assert len(tested) == 1 and tested[0]["kind"] == "revoke"
    assert tested[0]["test"].startswith("test 'the sample event' (") and "old.yaml:" in tested[0]["test"]


def test_a_refusal_that_only_changes_form_is_shown_but_is_no_access_change(tmp_path):
    closed = (
        ORDERS
        + """
  - name: closed
    route: GET /closed
    allow: "false"
"""
    )
    old = rules(tmp_path, "old.yaml", closed)
    new = rules(tmp_path, "new.yaml", ORDERS)  # the route that allowed no one is gone: no_route
    status, report = diff_json(str(old), str(new))
    assert status == 0 and report["access_changed"] is False
    assert kinds(report) == {("GET", "/closed"): {"refusal"}}
    refused = changes(report, "GET", "/closed")
    assert {(c["old"]["status"], c["new"]["status"]) for c in refused} == {(401, 403)}
    done = run_cli("diff", str(old), str(new))
    assert "  ~ refusal " in done.stdout and "refusal" in done.stdout.splitlines()[-1]


def test_a_new_identity_source_revokes_access_for_every_caller_without_it(tmp_path):
    old = rules(tmp_path, "old.yaml", ORDERS)
    new = rules(tmp_path, "new.yaml", ORDERS.replace("headers: [Authorization]", "headers: [Authorization, X-Tenant]"))
    status, report = diff_json(str(old), str(new))
    assert status == 1 and report["counts"]["grant"] == 0
    tenant = "request.headers['x-tenant']"
    revoked = [c for c in report["routes"] for c in c["changes"] if c["kind"] == "revoke"]
    # Every route that allowed someone: API Gateway now answers 401 itself to whoever lacks X-Tenant.
    assert {(c["method"], c["path"]) for c in revoked} >= {("GET", "/health"), ("GET", "/orders/id")}
    for change in revoked:
        assert change["variables"][tenant] == "missing"
        assert change["new"] == {
            "decision": "unauthorized",
            "reason": "identity_source_missing",
            "status": 401,
            "rule": None,
            "route": None,
            "principal": None,
            "context": None,
        }
    # Callers that send it keep what they had.
    every = [c for r in report["routes"] for c in r["changes"]]
    assert all(c["variables"][tenant] == "missing" for c in every)
    done = run_cli("diff", str(old), str(new))
    assert "  - revoke " in done.stdout and "unauthorized (identity_source_missing, 401)" in done.stdout


def test_a_caller_without_the_identity_source_is_never_shown_allowed_on_a_public_route(tmp_path):
    public = ORDERS.replace("principal: claims.sub\n", "")  # a caller without a token has a principal too
    closed = public.replace("    auth: none\n    allow: true", "    auth: none\n    allow: false")
    old = rules(tmp_path, "old.yaml", closed)
    new = rules(tmp_path, "new.yaml", public)
    status, report = diff_json(str(old), str(new))
    assert status == 1
    granted = changes(report, "GET", "/health")
    # Whoever sends an Authorization header reaches `auth: none` and gains access...
    assert {c["variables"]["identity"] for c in granted} == {
        "a credential that is no JWT",
        f"JWT from {CORP}",
        f"JWT from {PARTNERS}",
        "JWT from an issuer neither version trusts",
    }
    assert all(c["kind"] == "grant" for c in granted)
    # ...but without it API Gateway answers 401 before any rule, in both versions: no change.
    assert not any(c["variables"]["identity"] == "no credential" for r in report["routes"] for c in r["changes"])
    done = run_cli("diff", str(old), str(new))
    grants = [line for line in done.stdout.splitlines() if line.startswith("  + grant ")]
    assert grants and not any("identity=no credential" in line for line in grants)
    # Where API Gateway calls the authorizer without it (REST REQUEST, no caching), the rule decides.
    uncached = ("cache: {mode: identity, sources: {headers: [Authorization]}}", "cache: {mode: disabled}")
    old = rules(tmp_path, "old-uncached.yaml", closed.replace(*uncached))
    new = rules(tmp_path, "new-uncached.yaml", public.replace(*uncached))
    status, report = diff_json(str(old), str(new))
    assert status == 1
    # Every identity, no credential included, merges into one row.
    granted = changes(report, "GET", "/health")
    assert [(c["kind"], c["variables"]["identity"]) for c in granted] == [("grant", "*")]
