"""The public API for embedders: `import ruleauth` costs nothing, and the exported names work."""

import json
import os
import subprocess
import sys
from importlib import import_module
from pathlib import Path

import pytest

import ruleauth
from tests.test_demo import hello_event  # the article's /hello request

ROOT = Path(__file__).resolve().parents[1]

DEMO_RULES = """\
version: 1
token:
  header: Authorization
cache:
  mode: identity
  sources:
    headers: [Authorization]
rules:
  - name: odd numbers only
    route: GET /hello
    auth: token
    allow: int(token) % 2 == 1
"""


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "demo.yaml"
    path.write_text(DEMO_RULES)
    return path


def test_importing_ruleauth_loads_no_submodule_and_no_dependency():
    script = (
        "import sys\n"
        "import ruleauth\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('ruleauth.')"
        " or m.split('.')[0] in ('jwt', 'yaml', 'lark', 'celpy', 'cryptography'))\n"
        "print(loaded)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("RULEAUTH_")},
    )
    assert done.stdout.strip() == "[]"


def test_an_exported_name_is_imported_on_first_use_only():
    script = (
        "import sys\n"
        "import ruleauth\n"
        "before = 'ruleauth.runtime.authorizer' in sys.modules\n"
        "from ruleauth import Authorizer\n"
        "print(before, Authorizer.__module__, 'yaml' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True)
    # Authorizer loads the rules parser only when it loads rules.
    assert done.stdout.split() == ["False", "ruleauth.runtime.authorizer", "False"]


def test_every_name_in___all___resolves_to_the_object_its_module_defines():
    for name in ruleauth.__all__:
        module, attribute = ruleauth._EXPORTS[name]
        assert getattr(ruleauth, name) is getattr(import_module(module), attribute), name
    assert set(ruleauth._EXPORTS) == set(ruleauth.__all__)
    assert set(ruleauth.__all__) <= set(dir(ruleauth))


def test_the_exported_errors_share_the_root():
    errors = [getattr(ruleauth, n) for n in ("RulesError", "BadEvent", "CredentialError", "JwtError", "JwtConfigError")]
    assert ruleauth.RuleauthError is import_module("ruleauth.errors").RuleauthError
    assert all(issubclass(e, ruleauth.RuleauthError) for e in errors)


def test_the_exported_vocabulary_is_the_one_the_decisions_use():
    from ruleauth.reasons import Outcome, Reason

    assert ruleauth.Outcome is Outcome and ruleauth.Reason is Reason
    assert ruleauth.Reason.JWT_INVALID == "jwt_invalid" and ruleauth.Outcome.ALLOW == "allow"


@pytest.mark.parametrize("name", ["nope", "handler_", "_EXPORTS_missing"])
def test_an_unknown_name_is_an_attribute_error(name):
    with pytest.raises(AttributeError, match=name):
        getattr(ruleauth, name)


def test_a_subpackage_still_comes_from_the_import_system():
    import ruleauth.jwt.verifier

    assert ruleauth.jwt.verifier.JwtError is ruleauth.JwtError


def test_an_authorizer_built_from_code_decides_the_articles_four_requests(rules_file):
    authorizer = ruleauth.Authorizer.load(rules_file, environ={})
    seen = {}
    for header in ("17", "2", "abc", None):
        result = authorizer.authorize(hello_event(header))
        seen[header] = (result.decision.outcome, result.decision.reason, result.status)
    assert seen == {
        "17": (ruleauth.Outcome.ALLOW, "rule_true", 200),
        "2": (ruleauth.Outcome.DENY, "rule_false", 403),
        "abc": (ruleauth.Outcome.DENY, "rule_error", 403),
        None: (ruleauth.Outcome.UNAUTHORIZED, "missing_credential", 401),
    }


def test_load_rules_returns_a_rule_set_an_authorizer_takes(rules_file):
    authorizer = ruleauth.Authorizer(ruleauth.load_rules(rules_file))
    assert authorizer.authorize(hello_event("17")).status == 200


def test_a_broken_rules_file_is_a_rules_error_naming_file_and_line(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text(DEMO_RULES.replace("int(token) % 2 == 1", "int(token) %% 2"))
    with pytest.raises(ruleauth.RulesError, match=r"broken\.yaml:\d+"):
        ruleauth.make_handler(broken, environ={})


def test_a_user_can_wrap_the_handler_and_keep_apigateways_401_convention(rules_file):
    inner = ruleauth.make_handler(rules_file, environ={})
    calls = []

    def wrapped(event, context=None):
        calls.append(event["headers"].get("Authorization"))
        return inner(event, context)

    allowed = wrapped(hello_event("17"))
    assert allowed["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    denied = wrapped(hello_event("2"))
    assert [s["Effect"] for s in denied["policyDocument"]["Statement"]] == ["Deny"]
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        wrapped(hello_event(None))
    assert calls == ["17", "2", None]


def test_make_handler_accepts_an_authorizer_and_reads_settings_from_the_given_environ(rules_file, capsys):
    authorizer = ruleauth.Authorizer.load(rules_file, environ={})
    handler = ruleauth.make_handler(authorizer, environ={"RULEAUTH_LOG_SAMPLE_ALLOW": "1"})
    handler(hello_event("17"))
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [(entry["message"], entry.get("decision")) for entry in logged] == [
        ("ruleauth cold start", None),
        ("ruleauth decision", "allow"),
    ]


def test_the_module_level_handler_fails_its_import_on_a_broken_rules_file(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text(DEMO_RULES.replace("int(token) % 2 == 1", "int(token) %% 2"))
    env = {**os.environ, "RULEAUTH_RULES": str(broken)}
    done = subprocess.run(
        [sys.executable, "-c", "import ruleauth.handler"], capture_output=True, text=True, cwd=ROOT, env=env
    )
    assert done.returncode != 0
    assert f"{broken}:" in done.stdout and "Fix the rules" in done.stdout


def test_the_package_is_marked_typed():
    assert (ROOT / "ruleauth" / "py.typed").is_file()
