"""The handler under AWS's own Lambda runtime interface client (awslambdaric), as Lambda runs it.

`python -m awslambdaric ruleauth.handler.handler` against a Runtime API stand-in on
127.0.0.1 (tests/runtime_api.py), with the environment Lambda sets: the context object
is the runtime's, Lambda's JSON log format puts the runtime's formatter in charge of the
records, and a broken rules file fails the init the way a user meets it in Lambda.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ruleauth.tools.synthetic_events import build_event
from tests.runtime_api import FUNCTION_ARN, Invocation, run_runtime

TOKEN = "Q9zX7wV5uT3sR1pOk8JhQ9zX"
TRACE = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
RULES = """\
version: 1
cache: {mode: disabled}
token: {header: Authorization, scheme: Bearer}
rules:
  - name: orders
    route: GET /orders/{id}
    auth: token
    allow: "token.startsWith('Q9')"
  - name: broken
    route: GET /broken
    auth: token
    allow: "request.headers['x-missing'] == token"
"""


def request(path, token=TOKEN):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return build_event("rest-request", "GET", path, headers=headers)


def invocations():
    return [
        Invocation("8476a536-e9f4-11e8-9739-2dfe598c3fcd", request("/orders/1"), TRACE),
        Invocation("a1b2c3d4-0000-4000-8000-000000000002", request("/orders/2", token=None), TRACE),
        Invocation("a1b2c3d4-0000-4000-8000-000000000003", request("/broken"), TRACE),
    ]


@pytest.fixture
def task_root(tmp_path):
    """A function bundle's root: the rules beside the code, as `sam build` lays them out."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "rules.yaml").write_text(RULES)
    return tmp_path


def records(run, json_format=True):
    """ruleauth's records; under the JSON format every line, the runtime's too, is one JSON object."""
    lines = run.lines if json_format else [line for line in run.lines if not line.startswith("[ERROR]")]
    parsed = [json.loads(line) for line in lines]
    assert all(isinstance(entry, dict) for entry in parsed)
    return [entry for entry in parsed if not json_format or entry.get("logger") == "ruleauth"]


def decisions(run, json_format=True):
    return [entry for entry in records(run, json_format) if entry.get("message") == "ruleauth decision"]


def assert_no_credential(run):
    fragments = {TOKEN[i : i + 6] for i in range(len(TOKEN) - 5)}
    assert not {f for f in fragments if f in run.stdout + run.stderr}


def test_under_lambdas_json_format_the_runtimes_formatter_writes_each_decision_with_ruleauths_fields_top_level(
    task_root,
):
    run = run_runtime(task_root, invocations())
    assert list(run.api.responses) == ["8476a536-e9f4-11e8-9739-2dfe598c3fcd", "a1b2c3d4-0000-4000-8000-000000000003"]
    assert run.api.errors["a1b2c3d4-0000-4000-8000-000000000002"]["errorMessage"] == "Unauthorized"
    lines = decisions(run)
    assert [(d["decision"], d["reason"]) for d in lines] == [
        ("allow", "rule_true"),
        ("unauthorized", "missing_credential"),
        ("deny", "rule_error"),
    ]
    for line, invocation in zip(lines, invocations(), strict=True):
        # The runtime's own fields: its formatter wrote the line, once, not ruleauth's JSON inside its message.
        assert line["logger"] == "ruleauth" and line["requestId"] == invocation.request_id
        assert line["message"] == "ruleauth decision"
        # ruleauth's, as top-level keys, from the runtime's own context object.
        assert line["function_request_id"] == invocation.request_id
        assert line["function_arn"] == FUNCTION_ARN
        assert (line["function_name"], line["function_memory_size"]) == ("ruleauth-test", 1024)
        assert line["xray_trace_id"] == "1-5759e988-bd862e3fe1be46a994272793"
        assert line["service"] == "ruleauth" and line["route"] in ("GET /orders/{id}", "GET /broken", None)
    assert [line["cold_start"] for line in lines] == [True, False, False]
    assert [line["level"] for line in lines] == ["INFO", "INFO", "WARNING"]
    assert_no_credential(run)


def test_lambdas_log_level_filters_ruleauths_records_under_the_runtime(task_root):
    run = run_runtime(task_root, invocations(), AWS_LAMBDA_LOG_LEVEL="WARN")
    assert [(entry["message"], entry.get("reason")) for entry in records(run)] == [("ruleauth decision", "rule_error")]


def test_under_lambdas_text_format_each_record_is_still_one_json_line_with_a_millisecond_timestamp(task_root):
    run = run_runtime(task_root, invocations(), AWS_LAMBDA_LOG_FORMAT="Text", POWERTOOLS_SERVICE_NAME="orders")
    lines = decisions(run, json_format=False)  # only the runtime's own error line is text
    assert len(lines) == 3 and {line["service"] for line in lines} == {"orders"}
    assert all(len(line["timestamp"]) == len("2026-12-01T12:00:00.000Z") for line in lines)
    assert lines[0]["function_request_id"] == "8476a536-e9f4-11e8-9739-2dfe598c3fcd"
    assert_no_credential(run)


def cold_start_line(run):
    found = [entry for entry in records(run) if entry.get("message") == "ruleauth cold start"]
    assert len(found) == 1
    return found[0]


def test_the_cold_start_line_says_a_full_load_and_why_and_what_was_loaded(task_root):
    line = cold_start_line(run_runtime(task_root, invocations()[:1]))
    assert line["rules_source"] == "full load"
    assert line["rules_source_reason"] == f"no snapshot at {task_root / 'rules' / '.ruleauth-snapshot'}"
    assert (line["rules_files"], line["rules_count"], line["engine"], line["cache_mode"]) == (
        1,
        2,
        "cel-python",
        "disabled",
    )
    assert (line["response_type"], line["providers"]) == ("iam", [])
    assert line["load_ms"] > 0 and line["logger"] == "ruleauth" and line["level"] == "INFO"


def test_the_cold_start_line_says_a_snapshot_start(task_root):
    subprocess.run(
        [sys.executable, "-m", "ruleauth", "snapshot", str(task_root / "rules")],
        check=True,
        capture_output=True,
        cwd=task_root,
    )
    line = cold_start_line(run_runtime(task_root, invocations()[:1]))
    assert line["rules_source"] == "snapshot" and line["rules_count"] == 2
    off = cold_start_line(run_runtime(task_root, invocations()[:1], RULEAUTH_SNAPSHOT="0"))
    assert off["rules_source"] == "full load"
    assert off["rules_source_reason"] == "snapshots are off: RULEAUTH_SNAPSHOT=off (environment)"
    # Edited rules make the snapshot stale: the line says so, with the snapshot's own reason.
    rules = task_root / "rules" / "rules.yaml"
    rules.write_text(rules.read_text() + "\n# edited\n")
    stale = cold_start_line(run_runtime(task_root, invocations()[:1]))
    assert stale["rules_source"] == "full load"
    assert stale["rules_source_reason"].startswith("the snapshot was not used: ")
    assert "rules.yaml" in stale["rules_source_reason"]


def test_a_broken_rules_file_reaches_the_init_error_endpoint_with_its_file_and_line(task_root):
    rules = task_root / "rules" / "rules.yaml"
    rules.write_text(RULES.replace("    auth: token\n    allow: \"token.startsWith('Q9')\"", "    alow: true"))
    run = run_runtime(task_root, invocations())
    assert run.api.responses == {} and run.api.errors == {}
    [(error_type, body)] = run.api.init_errors
    assert error_type == body["errorType"] == "RulesError"
    assert f"{rules}:7:5: error: rule 'orders': unknown key 'alow'" in body["errorMessage"]
    [logged] = [entry for entry in records(run) if entry["level"] == "ERROR"]
    assert f"{rules}:7:5: error:" in logged["message"] and "Fix the rules" in logged["message"]
    assert_no_credential(run)


def test_the_repository_rules_serve_under_the_runtime(tmp_path):
    shutil.copytree(Path(__file__).resolve().parents[1] / "rules", tmp_path / "rules")
    hello = build_event("rest-request", "GET", "/hello", headers={"Authorization": "17"})
    run = run_runtime(tmp_path, [Invocation("r-1", hello)])
    assert run.api.responses["r-1"]["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    [line] = decisions(run)
    assert "xray_trace_id" not in line  # no trace header, no trace id
