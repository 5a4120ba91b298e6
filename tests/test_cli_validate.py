"""`ruleauth validate` (and the CLI's shared behaviour) through the real command in subprocesses."""

from __future__ import annotations

import re

import pytest

from tests.cli_support import DEMO, ROOT, cli_env, no_traceback, run_cli, run_json, write

BROKEN = """
version: 1
rules:
  - name: odd
    route: GET /hello
    auth: token
    alow: int(token) % 2 == 1
  - name: typo
    route: GET /x
    allow: "claim.sub == 'a'"
"""


def test_demo_is_valid():
    done = run_cli("validate", str(DEMO))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("ok: ")
    assert "1 rule, 5 tests" in done.stdout


def test_errors_print_file_line_col_with_line_and_caret(tmp_path):
    rules = write(tmp_path / "rules.yaml", BROKEN)
    done = run_cli("validate", str(rules))
    no_traceback(done)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    first = next(i for i, line in enumerate(lines) if "unknown key 'alow'" in line)
    match = re.match(r"^(.+):(\d+):(\d+): error: rule 'odd': unknown key 'alow'", lines[first])
    assert match and match.group(1) == str(rules)
    line, col = int(match.group(2)), int(match.group(3))
    assert (line, col) == (6, 5)
    assert lines[first + 1].strip() == "alow: int(token) % 2 == 1"
    caret_line = lines[first + 2]
    assert caret_line.index("^") - 4 == col - 1  # four spaces of indent, then the column
    assert "did you mean 'allow'" in lines[first]
    assert any("unknown variable 'claim'" in line and "did you mean 'claims'" in line for line in lines)
    assert "3 errors" in lines[-1] and "fix the errors" in lines[-1]
    assert "\033[" not in done.stdout  # no colour when stdout is not a terminal


def test_json_output(tmp_path):
    rules = write(tmp_path / "rules.yaml", BROKEN)
    status, report = run_json("validate", str(rules))
    assert status == 1
    assert report["ok"] is False and report["errors"] == 3
    problem = next(p for p in report["problems"] if "alow" in p["message"])
    assert set(problem) == {"file", "line", "col", "severity", "message", "rule"}
    assert (problem["file"], problem["line"], problem["col"], problem["severity"], problem["rule"]) == (
        str(rules),
        6,
        5,
        "error",
        "odd",
    )
    status, report = run_json("validate", str(DEMO))
    assert status == 0 and report["ok"] is True and report["problems"] == [] and report["rules"] == 1


WARNS = """
version: 1
cache: {mode: disabled}
rules:
  - name: health
    route: GET /health
    auth: none
    allow: true
"""


def test_warnings_fail_only_with_strict(tmp_path):
    rules = write(tmp_path / "rules.yaml", WARNS)
    done = run_cli("validate", str(rules))
    assert done.returncode == 0, done.stdout
    assert re.search(r":5:12: warning: rule 'health': auth: none: API Gateway answers 401 itself", done.stdout)
    assert "1 warning" in done.stdout.splitlines()[-1]
    strict = run_cli("validate", str(rules), "--strict")
    assert strict.returncode == 1
    assert "--strict" in strict.stdout.splitlines()[-1]
    status, report = run_json("validate", str(rules), "--strict")
    assert status == 1 and report["ok"] is False and report["warnings"] == 1


def test_rules_path_defaults_to_env_then_dot_rules(tmp_path):
    (tmp_path / "rules").mkdir()
    write(tmp_path / "rules" / "a.yaml", WARNS)
    done = run_cli("validate", cwd=tmp_path)
    assert done.returncode == 0 and "rules: 1 rule" in done.stdout
    env = cli_env(RULEAUTH_RULES=str(DEMO))
    done = run_cli("validate", cwd=tmp_path, env=env)
    assert done.returncode == 0 and str(DEMO) in done.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["validate", "/no/such/rules.yaml"],
        ["validate", str(DEMO), "--template", "/no/such/template.yaml"],
        ["validate", str(DEMO), "--bogus"],
        ["validate", str(DEMO), "--strict=yes"],
        ["frobnicate"],
        [],
    ],
)
def test_bad_input_is_exit_2_with_one_clear_line(args, tmp_path):
    done = run_cli(*args, cwd=tmp_path)
    no_traceback(done)
    assert done.returncode == 2, done.stderr
    assert "error:" in done.stderr


def test_missing_default_rules_says_what_to_do(tmp_path):
    done = run_cli("validate", cwd=tmp_path)
    assert done.returncode == 2
    assert "RULEAUTH_RULES" in done.stderr and "does not exist" in done.stderr


def test_bad_template_file_is_exit_2(tmp_path):
    bad = write(tmp_path / "t.yaml", "just: [a string\n")
    done = run_cli("validate", str(DEMO), "--template", str(bad))
    no_traceback(done)
    assert done.returncode == 2 and "template" in done.stderr


def test_template_matching_the_rules_is_clean():
    done = run_cli("validate", str(DEMO), "--template", str(ROOT / "template.yaml"), "--strict")
    assert done.returncode == 0, done.stdout
    assert "checked against" in done.stdout


MISMATCHED_TEMPLATE = """
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Resources:
  Api:
    Type: AWS::Serverless::Api
    Properties:
      StageName: prod
      Auth:
        DefaultAuthorizer: Rules
        Authorizers:
          Rules:
            FunctionArn: arn:aws:lambda:us-east-1:123456789012:function:ruleauth
            FunctionPayloadType: REQUEST
            Identity:
              Headers: [X-Api-Key]
              ReauthorizeEvery: 0
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Handler: app.handler
      Runtime: python3.13
      Events:
        Other:
          Type: Api
          Properties: {RestApiId: !Ref Api, Path: /other, Method: get}
"""


def test_template_disagreements_are_warnings_and_strict_errors(tmp_path):
    template = write(tmp_path / "template.yaml", MISMATCHED_TEMPLATE)
    done = run_cli("validate", str(DEMO), "--template", str(template))
    assert done.returncode == 0, done.stdout
    out = done.stdout
    assert "API route GET /other has no rule" in out
    assert "route GET /hello matches no route of the API" in out
    assert "TTL 0" in out and "cache.mode: identity" in out
    assert "identity source headers are [x-api-key] in the template but [authorization]" in out
    status, report = run_json("validate", str(DEMO), "--template", str(template), "--strict")
    assert status == 1 and report["ok"] is False
    assert {p["severity"] for p in report["problems"]} == {"warning"}
    assert report["warnings"] >= 4


@pytest.mark.parametrize("command", ["validate", "dry-run", "test", "serve", "schema"])
def test_help_everywhere(command):
    done = run_cli(command, "--help")
    assert done.returncode == 0 and "usage: ruleauth " + command in done.stdout


def test_version_and_module_entry_points():
    import subprocess
    import sys

    done = run_cli("--version")
    assert done.returncode == 0 and re.match(r"ruleauth \S+", done.stdout)
    via_package = subprocess.run(
        [sys.executable, "-m", "ruleauth", "--version"], capture_output=True, text=True, cwd=ROOT, env=cli_env()
    )
    assert via_package.returncode == 0 and via_package.stdout == done.stdout


class _Stream:
    def __init__(self, tty: bool):
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_colour_only_on_a_terminal_without_no_color(monkeypatch):
    from ruleauth.tools.cli import Style

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert Style(_Stream(True)).red("x") == "\033[1;31mx\033[0m"
    assert Style(_Stream(False)).red("x") == "x"
    monkeypatch.setenv("NO_COLOR", "1")
    assert Style(_Stream(True)).red("x") == "x"
