"""Rules snapshots: saved at build time, read at cold start, and never trusted when stale.

A snapshot stands in for a full load only when the rules files, ruleauth's code, the CEL
grammar and the engine settings are those it was made from; then it decides every request
exactly as the full load would, without importing PyYAML or lark. It is JSON: reading it runs
and imports nothing, on any Python, and anything else in its place is ignored in one line.
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
    path.write_bytes(b"not a snapshot")
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


# The cold start of a jwt provider with a key file, then real signed tokens decided: the
# signatures are checked without PyJWT, and nothing fetches, so no HTTP client is imported;
# no rule reads a client certificate and no cookie is quoted, so neither parser is imported.
KEY_FILE_PROBE = r"""
import json, sys
import ruleauth.handler
from pathlib import Path
from ruleauth.runtime.authorizer import Authorizer
authorizer = Authorizer.load(Path(sys.argv[1]), {}, snapshot=True)
outcomes = [authorizer.authorize(e, now=float(sys.argv[2])).decision.outcome for e in json.load(sys.stdin)]
print(json.dumps({"outcomes": sorted(set(outcomes)),
                  "modules": sorted(m for m in ("jwt", "http.client", "ssl") if m in sys.modules),
                  "unused": sorted(m for m in ("ruleauth.runtime.client_cert", "http.cookies") if m in sys.modules)}))
"""


@pytest.mark.parametrize("from_snapshot", [True, False], ids=["from a snapshot", "in full"])
def test_a_cold_start_with_a_key_file_imports_neither_pyjwt_nor_an_http_client_nor_unused_parsers(
    rules_dir: Path, key, from_snapshot: bool
) -> None:
    if from_snapshot:
        snapshot(rules_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RULEAUTH_", "PYTHON"))}
    done = subprocess.run(
        [sys.executable, "-c", KEY_FILE_PROBE, str(rules_dir), str(NOW)],
        input=json.dumps(request_events(key)),
        env={**env, "RULEAUTH_RULES": str(rules_dir), **({} if from_snapshot else {"RULEAUTH_SNAPSHOT": "0"})},
        capture_output=True,
        text=True,
        cwd=rules_dir.parent,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["outcomes"] == ["allow", "deny"]  # the tokens verified, and the rules decided
    assert found["modules"] == []
    assert found["unused"] == []


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


# -- a snapshot is data: reading it runs nothing, on any Python ------------------------------

# The rules above but the one that runs on cel-python's interpreter: that one is compiled again
# from its text on reading, which imports lark (and lark's own prebuilt parser, part of the
# bundle like its code). Every other expression is rebuilt from the stored data alone.
DATA_ONLY_RULES = RULES.replace(
    """  - name: reports during the day
    route: GET /reports/{proxy+}
    # a uint: this one runs on cel-python's interpreter
    allow: "reader && now.getHours('UTC') >= 0 && [1u].size() == 1"
""",
    "",
)

# Reads the snapshot beside argv[1] under an audit hook, and decides the events on stdin. The
# read path's modules are imported first; while the snapshot is read, the hook records every
# event by which Python runs or loads code: exec and eval, compile, marshal (which an import
# uses for bytecode), unpickling a global (pickle.find_class), an import, a process or a
# library load. Four controls show the hook sees such events in this very process.
AUDITED_READ = r"""
import json, sys
from pathlib import Path
from ruleauth.rules.settings import Settings
from ruleauth.runtime.authorizer import Authorizer, read_snapshot
from ruleauth.rules import snapshot as rules_snapshot
try:
    import re2  # google-re2: what a matches() closure calls, imported when the first one is built
except ImportError:
    pass  # another Python than this venv's: its compiled modules are not for it

WATCHED = ("exec", "compile", "marshal.loads", "marshal.load", "pickle.find_class", "import",
           "os.system", "subprocess.Popen", "os.posix_spawn", "ctypes.dlopen")
seen, watching = [], [False]

def hook(event, args):
    if watching[0] and (event in WATCHED or event.startswith(("os.exec", "os.spawn", "os.fork"))):
        seen.append(event)

sys.addaudithook(hook)

def watched(action):
    seen.clear()
    watching[0] = True
    try:
        result = action()
    finally:
        watching[0] = False
    return result, sorted(set(seen))

import marshal
settings = Settings.from_environ({})
(ruleset, status), events = watched(lambda: read_snapshot(Path(sys.argv[1]), settings))
present = sorted(m for m in ("pickle", "_pickle", "yaml", "lark", "celpy") if m in sys.modules)
if ruleset is None:
    sys.exit(f"the snapshot was not used: {status}")
authorizer = Authorizer(ruleset)
decided = []
for event in json.load(sys.stdin):
    result = authorizer.authorize(event, now=float(sys.argv[2]))
    d = result.decision
    decided.append([d.outcome, d.reason, d.rule, json.dumps(result.response, sort_keys=True)])
controls = {
    "eval": watched(lambda: eval("1 + 1"))[1],
    "marshal": watched(lambda: marshal.loads(marshal.dumps(1)))[1],
    "import": watched(lambda: __import__("pickle"))[1],
}
import pickle
controls["unpickle"] = watched(lambda: pickle.loads(pickle.dumps(Path("x"))))[1]
print(json.dumps({"status": status, "events": events, "modules": present, "controls": controls,
                  "decided": decided}))
"""


def request_events(key) -> list[dict]:
    events = []
    for claims in CALLERS.values():
        bearer = token(key, **claims)
        for method, path in REQUESTS:
            events.append(build_event("rest-request", method, path, headers={"Authorization": f"Bearer {bearer}"}))
    return events


def decided_in_process(authorizer: Authorizer, events: list[dict]) -> list[list]:
    found = []
    for event in events:
        result = authorizer.authorize(event, now=NOW)
        d = result.decision
        found.append([d.outcome, d.reason, d.rule, json.dumps(result.response, sort_keys=True)])
    return found


def audited_read(rules: Path, events: list[dict], python: str = sys.executable, path: list[str] = ()) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RULEAUTH_", "PYTHON"))}
    if path:
        env["PYTHONPATH"] = os.pathsep.join(path)
    done = subprocess.run(
        [python, "-c", AUDITED_READ, str(rules), str(NOW)],
        input=json.dumps(events),
        env=env,
        capture_output=True,
        text=True,
        cwd=rules.parent,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_reading_a_snapshot_runs_unpickles_and_imports_nothing_and_decides_as_the_full_load(
    rules_dir: Path, key
) -> None:
    (rules_dir / "api.yaml").write_text(DATA_ONLY_RULES)
    full = Authorizer.load(rules_dir, environ={})
    snapshot(rules_dir)
    events = request_events(key)
    found = audited_read(rules_dir, events)
    controls = found["controls"]
    assert "exec" in controls["eval"] and controls["marshal"] == ["marshal.loads"]
    assert {"import", "exec"} <= set(controls["import"]) and controls["unpickle"] == ["pickle.find_class"]
    assert found["status"] == "used"
    assert found["events"] == []
    assert found["modules"] == []  # no pickle, and neither PyYAML nor lark nor cel-python
    assert found["decided"] == decided_in_process(full, events)
    assert any(row[0] == "allow" for row in found["decided"]) and any(row[0] == "deny" for row in found["decided"])


def test_the_snapshot_file_is_json_with_no_python_in_it(rules_dir: Path) -> None:
    data = snapshot(rules_dir).read_bytes()
    header, body = data.rstrip(b"\n").split(b"\n")
    assert json.loads(header)["format"] == rules_snapshot.FORMAT
    assert set(json.loads(header)["inputs"]) >= {"ruleauth's code", "CEL grammar", "rules file api.yaml"}
    assert not any("Python" in name for name in json.loads(header)["inputs"])
    assert isinstance(json.loads(body), dict)


# Rules with no JWT provider and no matches(): deciding them needs nothing compiled (the venv's
# cryptography and google-re2 are built for its own Python), so another Python can run them.
TOKEN_RULES = """\
version: 1
token: {header: Authorization}
cache:
  mode: identity
  sources: {headers: [Authorization, x-tenant]}
define:
  odd: "int(token) % 2 == 1"
context:
  tenant: "request.headers['x-tenant'] == 'acme' ? 'acme' : 'other'"
rules:
  - name: odd numbers
    route: GET /hello
    auth: token
    allow: odd
  - name: tenants
    route: ANY /tenants/{tenant}/{proxy+}
    auth: token
    allow: "odd && request.headers['x-tenant'] == 'acme'"
  - name: big
    route: POST /big
    auth: token
    allow: "int(token) > 100 && [1, 2, 3].exists(x, x == int(token) % 4)"
"""


def test_a_snapshot_made_here_is_read_by_lambdas_python_and_decides_alike(rules_dir: Path) -> None:
    """`ruleauth snapshot` on any host and Python 3.11+ makes the file Lambda's Python reads."""
    from tests.sam.tools import lambda_python

    (rules_dir / "api.yaml").write_text(TOKEN_RULES)
    full = Authorizer.load(rules_dir, environ={})
    assert full.ruleset.warnings  # stored and read back too
    snapshot(rules_dir)
    events = [
        build_event("rest-request", method, path, headers={"Authorization": number, "x-tenant": tenant})
        for number in ("17", "2", "105", "abc")
        for tenant in ("acme", "other")
        for method, path in (("GET", "/hello"), ("PUT", "/tenants/acme/x"), ("POST", "/big"), ("GET", "/nowhere"))
    ]
    # ruleauth's own source, then this venv's packages, where the reader finds cel-python's
    # grammar (the snapshot is keyed on it) without importing cel-python.
    site = next(p for p in sys.path if p.endswith("site-packages"))
    found = audited_read(rules_dir, events, python=lambda_python("3.13"), path=[str(REPO), site])
    assert found["status"] == "used" and found["events"] == [] and found["modules"] == []
    assert found["decided"] == decided_in_process(full, events)
    assert {row[0] for row in found["decided"]} >= {"allow", "deny"}


# A rule that reads a map both whole and by key: its reads hold a key None beside strings.
WHOLE_AND_KEYED = """\
version: 1
cache: {mode: disabled}
token: {query: access_token}
rules:
  - name: r
    route: GET /r
    allow: "token == 'abc' && !('access_token' in request.query) && request.query.x == '1'"
"""


@pytest.mark.parametrize("text", [RULES, WHOLE_AND_KEYED], ids=["jwt rules", "a map read whole and by key"])
def test_a_snapshot_is_the_same_bytes_under_every_hash_seed(rules_dir: Path, text: str) -> None:
    """Sets (an expression's reads and defines, the policy table's blockers) are stored sorted."""
    (rules_dir / "api.yaml").write_text(text)
    made = []
    for seed in ("0", "1", "4242"):
        env = {k: v for k, v in os.environ.items() if not k.startswith("RULEAUTH_")}
        done = subprocess.run(
            [sys.executable, "-m", "ruleauth", "snapshot", str(rules_dir)],
            env={**env, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        made.append(rules_snapshot.snapshot_path(rules_dir).read_bytes())
    assert made[0] == made[1] == made[2]
    assert rules_snapshot.read(rules_dir) is not None


def _rewritten(path: Path, change) -> None:
    """The snapshot with its body changed by `change` (on the JSON) and its digest made to match:
    what a foreign writer would make, so that only the reader's checks stand in the way."""
    import hashlib

    header, body = path.read_bytes().rstrip(b"\n").split(b"\n")
    document = json.loads(body)
    change(document)
    body = json.dumps(document).encode()
    fields = json.loads(header)
    fields["sha256"] = hashlib.sha256(body).hexdigest()
    path.write_bytes(json.dumps(fields).encode() + b"\n" + body + b"\n")


def _first_tree(document: dict) -> list:
    return document["rules"][0]["allow"]["tree"]


DAMAGES = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
    "header only": lambda p: p.write_bytes(p.read_bytes().split(b"\n")[0]),
    "a byte changed in the body": lambda p: p.write_bytes(p.read_bytes().replace(b"read orders", b"read ordure", 1)),
    "not JSON": lambda p: p.write_bytes(b"\x80\x04\x95not json at all"),
    "empty": lambda p: p.write_bytes(b""),
    "another format": lambda p: p.write_bytes(p.read_bytes().replace(rules_snapshot.FORMAT.encode(), b"other 9", 1)),
    "a header that is a list": lambda p: p.write_bytes(b"[1, 2]\n{}\n"),
    "a body that is not JSON, with its digest": lambda p: _rewritten_raw(p, b"{not json"),
    "a rule name that is a number": lambda p: _rewritten(p, lambda d: d["rules"][0].update(name=7)),
    "a route that is a string": lambda p: _rewritten(p, lambda d: d["rules"][0].update(routes="GET /")),
    "an unknown field": lambda p: _rewritten(p, lambda d: d["rules"][0].update(extra=1)),
    "a missing field": lambda p: _rewritten(p, lambda d: d["rules"][0].pop("auth")),
    "a private node kind": lambda p: _rewritten(p, lambda d: _first_tree(d).__setitem__(0, "_init__")),
    "a node kind the builder has no rule for": lambda p: _rewritten(p, lambda d: _first_tree(d).__setitem__(0, "zap")),
    "a negative rule index in the table": lambda p: _rewritten(
        p, lambda d: d["table"]["entries"][0].__setitem__(2, -1)
    ),
    "an expression of no compiler": lambda p: _rewritten(p, lambda d: d["rules"][0]["allow"].update(compiler=5)),
    "an engine that does not exist": lambda p: _rewritten(p, lambda d: d["rules"][0]["allow"].update(engine="x")),
    "a plain value with an unknown tag": lambda p: _rewritten(
        p, lambda d: d["settings"]["response"].update(value={"code": "print(1)"})
    ),
    "deeply nested JSON": lambda p: _rewritten_raw(p, b"[" * 100000 + b"]" * 100000),
}


def _rewritten_raw(path: Path, body: bytes) -> None:
    import hashlib

    header = json.loads(path.read_bytes().split(b"\n")[0])
    header["sha256"] = hashlib.sha256(body).hexdigest()
    path.write_bytes(json.dumps(header).encode() + b"\n" + body + b"\n")


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_or_foreign_snapshot_is_ignored_with_one_line_and_the_rules_load_in_full(
    rules_dir: Path, key, capsys, damage: str, full_loads: list[Path]
) -> None:
    full = Authorizer.load(rules_dir, environ={})
    DAMAGES[damage](snapshot(rules_dir))
    full_loads.clear()
    capsys.readouterr()
    authorizer = Authorizer.load(rules_dir, environ={}, snapshot=True)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ruleauth: rules snapshot not used: "), lines
    assert lines[0].endswith("; loading the rules in full")
    assert full_loads == [rules_dir]
    events = request_events(key)
    assert decided_in_process(authorizer, events) == decided_in_process(full, events)


def test_a_snapshot_of_other_rules_is_stale_with_one_line(rules_dir: Path, tmp_path: Path, capsys) -> None:
    other = tmp_path / "other"
    shutil.copytree(rules_dir, other)
    (other / "api.yaml").write_text(RULES.replace("allow: reader", "allow: is_admin"))
    snapshot(other).replace(rules_snapshot.snapshot_path(rules_dir))
    capsys.readouterr()
    assert Authorizer.load(rules_dir, environ={}, snapshot=True).ruleset.rules
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and "stale: rules file api.yaml changed" in lines[0]


def test_read_snapshot_says_whether_the_snapshot_was_used_and_why_not(rules_dir: Path) -> None:
    from ruleauth.rules.settings import Settings
    from ruleauth.runtime.authorizer import SNAPSHOT_ABSENT, SNAPSHOT_USED, read_snapshot

    settings = Settings.from_environ({})
    assert read_snapshot(rules_dir, settings) == (None, SNAPSHOT_ABSENT)
    snapshot(rules_dir)
    ruleset, status = read_snapshot(rules_dir, settings)
    assert ruleset is not None and status == SNAPSHOT_USED
    (rules_dir / "api.yaml").write_text(RULES + "\n")
    ruleset, status = read_snapshot(rules_dir, settings)
    assert ruleset is None and "stale: rules file api.yaml changed" in status
