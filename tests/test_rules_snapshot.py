"""Rules snapshots: saved at build time, read at cold start, and never trusted when stale.

A snapshot stands in for a full load only when the rules files, ruleauth's code, Python and
the engine settings are those it was made from; then it decides every request exactly as
the full load would, without importing PyYAML or lark.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ruleauth.cel.compiler import CEL_EXPR_PYTHON, CLOSURES, INTERPRETER
from ruleauth.errors import RulesError
from ruleauth.rules import loader as rules_loader
from ruleauth.rules import snapshot as rules_snapshot
from ruleauth.runtime.authorizer import Authorizer
from ruleauth.tools.synthetic_events import build_event
from tests.cli_support import run_cli
from tests.jwt_support import AUDIENCE, ISSUER, NOW, jwks_bytes, public_jwk, rsa_key, token

REPO = Path(__file__).resolve().parent.parent

RULES = f"""\
version: 1
token: {{header: Authorization, scheme: Bearer}}
cache:
  mode: identity
  sources: {{headers: [Authorization]}}
jwt:
  - name: corp
    issuer: {ISSUER}
    audience: [{AUDIENCE}]
    algorithms: [RS256]
    jwks_file: jwks.json
define:
  is_admin: "has(claims.groups) && 'admin' in claims.groups"
  reader: "'read:orders' in scopes || is_admin"
principal: claims.sub
context:
  tenant: "has(claims.tenant) ? claims.tenant : 'none'"
  admin: is_admin
rules:
  - name: read orders
    route:
      - GET /orders
      - GET /orders/{{id}}
    allow: reader
  - name: write orders
    route: POST /orders
    allow: "is_admin || ('write:orders' in scopes && claims.sub.matches('^user-[0-9]+$'))"
  - name: reports during the day
    route: GET /reports/{{proxy+}}
    # a uint: this one runs on cel-python's interpreter
    allow: "reader && now.getHours('UTC') >= 0 && [1u].size() == 1"
  - name: tenants
    route: ANY /tenants/{{tenant}}/{{proxy+}}
    allow: "has(claims.tenant) && claims.tenant == 'acme' && request.method in ['GET', 'PUT']"
"""

CALLERS = {
    "reader": {"scope": "read:orders", "tenant": "acme"},
    "writer": {"scope": "write:orders", "sub": "user-42"},
    "admin": {"scope": "", "groups": ["staff", "admin"], "sub": "root"},
    "nobody": {"scope": "profile"},
}
REQUESTS = [
    ("GET", "/orders"),
    ("GET", "/orders/7"),
    ("POST", "/orders"),
    ("DELETE", "/orders/7"),
    ("GET", "/reports/2026/q1"),
    ("PUT", "/tenants/acme/x"),
    ("GET", "/tenants/other/y"),
    ("GET", "/nowhere"),
]


@pytest.fixture(scope="module")
def key():
    return rsa_key()


@pytest.fixture
def rules_dir(tmp_path: Path, key) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "api.yaml").write_text(RULES)
    (folder / "jwks.json").write_bytes(jwks_bytes(public_jwk(key, "k1")))
    return folder


def answers(authorizer: Authorizer, key) -> list[tuple]:
    found = []
    for caller, claims in CALLERS.items():
        bearer = token(key, **claims)
        for method, path in REQUESTS:
            event = build_event("rest-request", method, path, headers={"Authorization": f"Bearer {bearer}"})
            result = authorizer.authorize(event, now=NOW)
            decision = result.decision
            found.append(
                (
                    caller,
                    method,
                    path,
                    decision.outcome,
                    decision.reason,
                    decision.rule,
                    json.dumps(result.response, sort_keys=True),
                )
            )
    return found


def snapshot(rules: Path) -> Path:
    return rules_snapshot.save(rules_loader.load(rules), rules)


@pytest.fixture
def full_loads(monkeypatch) -> list[Path]:
    """The paths rules_loader.load is called with from here on: a snapshot read calls it never."""
    calls: list[Path] = []
    load = rules_loader.load
    monkeypatch.setattr(rules_loader, "load", lambda path, *a, **k: calls.append(Path(path)) or load(path, *a, **k))
    return calls


def test_a_snapshot_decides_every_request_as_the_full_load_does(rules_dir: Path, key) -> None:
    full = Authorizer.load(rules_dir)
    snapshot(rules_dir)
    read = Authorizer(rules_snapshot.read(rules_dir))
    decided = answers(read, key)
    assert decided == answers(full, key)
    allowed = {(c, m, p) for c, m, p, outcome, *_ in decided if outcome == "allow"}
    assert ("reader", "GET", "/orders/7") in allowed and ("nobody", "GET", "/orders/7") not in allowed


def test_closures_are_rebuilt_and_other_expressions_compiled_again(rules_dir: Path) -> None:
    snapshot(rules_dir)
    ruleset = rules_snapshot.read(rules_dir)
    rules = {rule.name: rule.allow for rule in ruleset.rules}
    assert rules["read orders"].runs_on == CLOSURES and rules["read orders"].closure is not None
    assert rules["reports during the day"].runs_on == INTERPRETER
    # One compiler for the whole set, made for the interpreter's expression alone.
    recompilers = {id(c.origin.recompiler) for c in [*rules.values(), *ruleset.context.values()]}
    assert len(recompilers) == 1 and rules["read orders"].origin.recompiler.has_compiler


def test_a_read_rule_still_explains_itself_with_source_positions(rules_dir: Path) -> None:
    original = rules_loader.load(rules_dir).rules[1].allow
    snapshot(rules_dir)
    read = rules_snapshot.read(rules_dir).rules[1].allow
    assert read.tree == original.tree
    assert read.tree.meta.line == 1


def test_the_fast_engine_is_compiled_again_by_cel_cpp_from_the_inlined_text(rules_dir: Path, key) -> None:
    pytest.importorskip("cel_expr_python")
    text = (rules_dir / "api.yaml").read_text().replace("version: 1\n", "version: 1\nengine: cel-expr-python\n")
    (rules_dir / "api.yaml").write_text(text)
    full = Authorizer.load(rules_dir)
    snapshot(rules_dir)
    read = Authorizer(rules_snapshot.read(rules_dir))
    assert {rule.allow.runs_on for rule in read.ruleset.rules} == {CEL_EXPR_PYTHON}
    assert not read.ruleset.rules[0].allow.origin.recompiler.has_compiler  # nothing parsed
    assert answers(read, key) == answers(full, key)


def test_a_snapshot_moved_with_its_rules_reads_their_key_file_from_the_new_place(
    rules_dir: Path, tmp_path: Path, key, full_loads: list[Path]
) -> None:
    """`sam build` makes the snapshot in the build directory; Lambda runs it from /var/task."""
    snapshot(rules_dir)
    moved = tmp_path / "var" / "task" / "rules"
    shutil.copytree(rules_dir, moved)
    shutil.rmtree(rules_dir)
    full_loads.clear()
    authorizer = Authorizer.load(moved, environ={}, snapshot=True)
    assert full_loads == []  # read, not loaded
    assert authorizer.ruleset.providers[0].jwks_file == str(moved / "jwks.json")
    event = build_event(
        "rest-request", "GET", "/orders", headers={"Authorization": f"Bearer {token(key, scope='read:orders')}"}
    )
    assert authorizer.authorize(event, now=NOW).decision.outcome == "allow"


def test_no_snapshot_reads_as_none(rules_dir: Path) -> None:
    assert rules_snapshot.read(rules_dir) is None


@pytest.mark.parametrize(
    "change, named",
    [
        (
            lambda d: (d / "api.yaml").write_text(RULES.replace("GET /orders/{id}", "GET /orders/{order}")),
            "rules file api.yaml",
        ),
        (lambda d: (d / "more.yaml").write_text("version: 1\nrules: []\n"), "rules file more.yaml"),
        (lambda d: (d / "api.yaml").rename(d / "api.yml"), "rules file api.yml"),
    ],
)
def test_a_changed_added_or_renamed_rules_file_makes_the_snapshot_stale(rules_dir: Path, change, named) -> None:
    snapshot(rules_dir)
    change(rules_dir)
    with pytest.raises(rules_snapshot.SnapshotUnusable, match=f"stale: .*{named}"):
        rules_snapshot.read(rules_dir)


@pytest.mark.parametrize("setting, value", [("RULEAUTH_ENGINE", "cel-expr-python"), ("RULEAUTH_CEL_INTERPRETER", "1")])
def test_an_engine_setting_other_than_at_build_makes_it_stale(rules_dir: Path, setting: str, value: str) -> None:
    snapshot(rules_dir)
    with pytest.raises(rules_snapshot.SnapshotUnusable, match=f"setting {setting}"):
        rules_snapshot.read(rules_dir, environ={setting: value})


def test_a_stale_snapshot_is_reported_and_the_rules_loaded_in_full(rules_dir: Path, capsys, key) -> None:
    snapshot(rules_dir)
    (rules_dir / "api.yaml").write_text(RULES.replace("allow: reader", "allow: is_admin"))
    authorizer = Authorizer.load(rules_dir, environ={}, snapshot=True)
    assert "rules snapshot not used" in capsys.readouterr().out
    reader = token(key, scope="read:orders")
    event = build_event("rest-request", "GET", "/orders", headers={"Authorization": f"Bearer {reader}"})
    assert authorizer.authorize(event, now=NOW).decision.outcome == "deny"  # the edited rule


def test_a_broken_rules_file_fails_the_cold_start_whatever_the_snapshot(rules_dir: Path) -> None:
    snapshot(rules_dir)
    (rules_dir / "api.yaml").write_text(RULES.replace("allow: reader", "allow: reeder"))
    with pytest.raises(RulesError) as caught:
        Authorizer.load(rules_dir, environ={}, snapshot=True)
    assert "api.yaml" in str(caught.value) and "reeder" in str(caught.value)


def test_a_damaged_snapshot_is_ignored(rules_dir: Path, capsys) -> None:
    path = snapshot(rules_dir)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(rules_snapshot.SnapshotUnusable):
        rules_snapshot.read(rules_dir)
    path.write_bytes(b"not a pickle")
    with pytest.raises(rules_snapshot.SnapshotUnusable, match="damaged"):
        rules_snapshot.read(rules_dir)
    assert Authorizer.load(rules_dir, environ={}, snapshot=True).ruleset.rules
    assert "rules snapshot not used" in capsys.readouterr().out


def test_RULEAUTH_SNAPSHOT_0_ignores_a_snapshot(rules_dir: Path, full_loads: list[Path]) -> None:
    snapshot(rules_dir)
    Authorizer.load(rules_dir, environ={}, snapshot=True)
    assert full_loads == [rules_dir]  # the snapshot's own making
    Authorizer.load(rules_dir, environ={"RULEAUTH_SNAPSHOT": "0"}, snapshot=True)
    assert full_loads == [rules_dir, rules_dir]


def test_a_single_rules_file_keeps_its_snapshot_beside_it(rules_dir: Path) -> None:
    path = snapshot(rules_dir / "api.yaml")
    assert path == rules_dir / ".api.yaml.ruleauth-snapshot"
    assert rules_snapshot.read(rules_dir / "api.yaml") is not None
    assert rules_snapshot.read(rules_dir) is None  # the directory's own snapshot is another file


def test_the_cold_start_from_a_snapshot_imports_neither_yaml_nor_lark(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(REPO / "rules", rules)
    snapshot(rules)
    probe = "import sys, ruleauth.handler as h; print(sorted(m for m in ('yaml', 'lark', 'celpy') if m in sys.modules))"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RULEAUTH_")}
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env={**env, "RULEAUTH_RULES": str(rules)},
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=True,
    )
    assert done.stdout.strip().splitlines()[-1] == "[]"  # after the cold-start line


def test_the_snapshot_command_saves_loadable_rules(rules_dir: Path) -> None:
    result = run_cli("snapshot", str(rules_dir))
    assert result.returncode == 0, result.stderr
    assert "saved" in result.stdout and "4 rules" in result.stdout
    assert rules_snapshot.read(rules_dir) is not None


def test_the_snapshot_command_refuses_rules_that_do_not_load(rules_dir: Path) -> None:
    (rules_dir / "api.yaml").write_text(RULES.replace("allow: reader", "allow: reeder"))
    result = run_cli("snapshot", str(rules_dir))
    assert result.returncode == 3
    assert "api.yaml:" in result.stderr and "reeder" in result.stderr
    assert not rules_snapshot.snapshot_path(rules_dir).exists()
