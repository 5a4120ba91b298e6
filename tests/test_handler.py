"""The Lambda entry point in a fresh process: rules located and loaded at import (A12)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import json, sys
from ruleauth.handler import handler
for event in json.loads(sys.stdin.read()):
    try:
        print("RESULT " + json.dumps({"response": handler(event, None)}))
    except Exception as exc:
        print("RESULT " + json.dumps({"raised": str(exc), "type": type(exc).__name__}))
"""

RULES = """\
version: 1
cache: {mode: disabled}
rules:
  - name: odd numbers only
    route: GET /hello
    auth: token
    allow: int(token) % 2 == 1
"""


def hello(authorization=None):
    headers = {"Authorization": authorization} if authorization is not None else {}
    return {
        "type": "REQUEST",
        "methodArn": "arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/GET/hello",
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "requestContext": {"requestId": "r1"},
    }


def run(env, events=(), cwd=None):
    environ = {
        k: v for k, v in os.environ.items() if k not in ("RULEAUTH_RULES", "LAMBDA_TASK_ROOT", "RULEAUTH_RESPONSE")
    }
    environ.update(env, RULEAUTH_LOG_LEVEL="ERROR")
    return subprocess.run(
        [sys.executable, "-c", SCRIPT],
        input=json.dumps(list(events)),
        capture_output=True,
        text=True,
        env=environ,
        cwd=cwd or ROOT,
        timeout=60,
    )


def results(done):
    assert done.returncode == 0, done.stdout + done.stderr
    return [json.loads(line[len("RESULT ") :]) for line in done.stdout.splitlines() if line.startswith("RESULT ")]


def effects(result):
    return [s["Effect"] for s in result["response"]["policyDocument"]["Statement"]]


def check_demo(done):
    allowed, even, junk, missing = results(done)
    assert effects(allowed) == ["Allow"] and effects(even) == ["Deny"] and effects(junk) == ["Deny"]
    assert missing == {"raised": "Unauthorized", "type": "Exception"}


DEMO = [hello("17"), hello("2"), hello("abc"), hello()]


def test_rules_from_a_file(tmp_path):
    (tmp_path / "rules.yaml").write_text(RULES)
    check_demo(run({"RULEAUTH_RULES": str(tmp_path / "rules.yaml")}, DEMO))


def test_rules_from_a_directory(tmp_path):
    folder = tmp_path / "rules.d"
    folder.mkdir()
    (folder / "10-hello.yaml").write_text(RULES)
    (folder / "20-more.yml").write_text(
        "version: 1\nrules:\n  - {name: health, route: GET /health, auth: none, allow: true}\n"
    )
    health = dict(hello(), methodArn=hello()["methodArn"].replace("/hello", "/health"))
    done = run({"RULEAUTH_RULES": str(folder)}, [*DEMO, health])
    *demo, healthy = results(done)
    assert effects(healthy) == ["Allow"]
    check_demo(subprocess.CompletedProcess(done.args, 0, "\n".join("RESULT " + json.dumps(r) for r in demo), ""))


def test_relative_rules_path_resolves_against_lambda_task_root(tmp_path):
    task_root = tmp_path / "task"
    (task_root / "config").mkdir(parents=True)
    (task_root / "config" / "auth.yaml").write_text(RULES)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    check_demo(run({"RULEAUTH_RULES": "config/auth.yaml", "LAMBDA_TASK_ROOT": str(task_root)}, DEMO, cwd=elsewhere))


def test_task_root_rules_directory_is_the_default_in_lambda(tmp_path):
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(RULES)
    check_demo(run({"LAMBDA_TASK_ROOT": str(tmp_path)}, DEMO, cwd=tmp_path))


def test_a_task_root_that_holds_rules_files_is_the_default_in_lambda(tmp_path):
    """A function whose CodeUri is its rules directory (ruleauth from a layer): the root is the rules."""
    (tmp_path / "10-hello.yaml").write_text(RULES)
    (tmp_path / "requirements.txt").write_text("")  # what sam's python builder may leave beside them
    check_demo(run({"LAMBDA_TASK_ROOT": str(tmp_path)}, DEMO, cwd=tmp_path))


def test_a_rules_directory_in_the_task_root_wins_over_rules_files_beside_it(tmp_path):
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(RULES)
    (tmp_path / "other.yml").write_text("not: [a rules file")  # would fail the import if it were read
    check_demo(run({"LAMBDA_TASK_ROOT": str(tmp_path)}, DEMO, cwd=tmp_path))


def test_a_task_root_without_rules_files_is_tried_and_named_but_not_taken(tmp_path):
    (tmp_path / ".hidden.yaml").write_text(RULES)  # hidden files are never rules (a snapshot's kind)
    (tmp_path / "handler.py").write_text("")
    done = run({"LAMBDA_TASK_ROOT": str(tmp_path)}, DEMO, cwd=tmp_path)
    assert done.returncode != 0 and "RESULT" not in done.stdout
    assert f"tried {tmp_path / 'rules'}, {tmp_path}, /opt/rules" in done.stdout + done.stderr


def test_A12_a_broken_rules_file_fails_the_import_naming_file_line_and_rule(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(RULES.replace("int(token) % 2 == 1", "int(tokn) % 2 == 1"))
    done = run({"RULEAUTH_RULES": str(path)}, DEMO)
    assert done.returncode != 0 and "RESULT" not in done.stdout
    output = done.stdout + done.stderr
    assert f"{path}:7:12: error: rule 'odd numbers only': allow: unknown variable 'tokn'" in output
    assert "RulesError" in done.stderr


def test_A12_a_broken_file_in_a_directory_fails_the_whole_import(tmp_path):
    (tmp_path / "a.yaml").write_text(RULES)
    (tmp_path / "b.yaml").write_text("version: 1\nrules:\n  - {name: bad, route: get /x, allow: true}\n")
    done = run({"RULEAUTH_RULES": str(tmp_path)}, DEMO)
    assert done.returncode != 0 and "RESULT" not in done.stdout
    assert f"{tmp_path / 'b.yaml'}:3:" in done.stdout + done.stderr and "rule 'bad'" in done.stdout + done.stderr


def test_no_rules_anywhere_fails_the_import_listing_the_paths_tried(tmp_path):
    done = run({"RULEAUTH_RULES": "missing.yaml", "LAMBDA_TASK_ROOT": str(tmp_path)}, DEMO, cwd=tmp_path)
    assert done.returncode != 0 and "RESULT" not in done.stdout
    output = done.stdout + done.stderr
    for tried in (tmp_path / "missing.yaml", tmp_path / "rules", Path("/opt/rules")):
        assert str(tried) in output, output


def test_outside_lambda_the_default_is_rules_in_the_working_directory(tmp_path):
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(RULES)
    check_demo(run({}, DEMO, cwd=tmp_path))
    empty = tmp_path / "empty"
    empty.mkdir()
    done = run({}, DEMO, cwd=empty)
    assert done.returncode != 0 and "no rules found; tried rules" in done.stdout + done.stderr


def test_a_bad_ruleauth_response_value_fails_the_import(tmp_path):
    (tmp_path / "rules.yaml").write_text(RULES)
    done = run({"RULEAUTH_RULES": str(tmp_path / "rules.yaml"), "RULEAUTH_RESPONSE": "json"}, DEMO)
    assert done.returncode != 0 and "RULEAUTH_RESPONSE must be iam or simple" in done.stdout + done.stderr


def test_ruleauth_response_simple_applies_to_http_2_events(tmp_path):
    (tmp_path / "rules.yaml").write_text(RULES)
    event = {
        "version": "2.0",
        "type": "REQUEST",
        "routeArn": "arn:aws:execute-api:eu-west-1:123456789012:abc123/$default/GET/hello",
        "headers": {"authorization": "17"},
        "requestContext": {"requestId": "r"},
    }
    (result,) = results(run({"RULEAUTH_RULES": str(tmp_path / "rules.yaml"), "RULEAUTH_RESPONSE": "simple"}, [event]))
    assert result == {"response": {"isAuthorized": True, "context": {}}}
