"""README's CloudWatch Logs Insights queries, run on what the handler really writes under the
Lambda runtime (JSON and text log formats), with Logs Insights' JSON field discovery
(tests/logs_insights.py, docs/logging.md "CloudWatch Logs Insights")."""

import re
from pathlib import Path

import pytest

from ruleauth.tools.synthetic_events import build_event
from tests import logs_insights
from tests.runtime_api import Invocation, run_runtime
from tests.test_lambda_runtime import RULES, TOKEN, TRACE

README = Path(__file__).resolve().parents[1] / "README.md"
FIRST = "8476a536-e9f4-11e8-9739-2dfe598c3fcd"


def readme_queries() -> dict[str, str]:
    """README's Logs Insights block: each query under its `# title` comment."""
    text = README.read_text(encoding="utf-8")
    block = re.search(r"CloudWatch Logs Insights \(tests/test_logs_insights\.py.*?\n```\n(.*?)```", text, re.S)
    assert block, "README's Logs Insights block"
    queries = {}
    for chunk in block.group(1).strip().split("\n\n"):
        title, _, query = chunk.partition("\n")
        queries[title.lstrip("# ").strip()] = query
    return queries


def authorizer_event(path, token=TOKEN):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return build_event("rest-request", "GET", path, headers=headers)


@pytest.fixture(scope="module", params=["JSON", "Text"])
def events(request, tmp_path_factory):
    root = tmp_path_factory.mktemp("task")
    (root / "rules").mkdir()
    (root / "rules" / "rules.yaml").write_text(RULES)
    invocations = [
        Invocation(FIRST, authorizer_event("/orders/1"), TRACE),
        Invocation("r-2", authorizer_event("/orders/2", token=None), TRACE),
        Invocation("r-3", authorizer_event("/broken"), TRACE),
        Invocation("r-4", authorizer_event("/broken"), TRACE),
        Invocation("r-5", authorizer_event("/nowhere"), TRACE),
    ]
    run = run_runtime(root, invocations, AWS_LAMBDA_LOG_FORMAT=request.param)
    # One second apart: all in one 5-minute bin.
    return [logs_insights.discover(line, timestamp=float(i)) for i, line in enumerate(run.lines)]


def test_readme_has_the_queries_this_file_runs():
    assert set(readme_queries()) == {
        "denials by rule and reason",
        "slowest decisions",
        "errors by reason",
        "cold starts: where the rules came from, and how long they took",
        "one invocation, by its Lambda request id (or by xray_trace_id)",
    }


def test_denials_by_rule_and_reason(events):
    rows = logs_insights.run(readme_queries()["denials by rule and reason"], events)
    assert rows[0] == {"rule": "broken", "reason": "rule_error", "denials": 2}
    assert sorted((str(row["rule"]), row["reason"], row["denials"]) for row in rows[1:]) == [
        ("None", "no_route", 1),
        ("orders", "missing_credential", 1),
    ]


def test_slowest_decisions(events):
    rows = logs_insights.run(readme_queries()["slowest decisions"], events)
    assert len(rows) == 5 and set(rows[0]) == {"@timestamp", "rule", "route", "latency_ms", "request_id"}
    latencies = [row["latency_ms"] for row in rows]
    assert latencies == sorted(latencies, reverse=True) and all(isinstance(x, float) for x in latencies)


def test_errors_by_reason(events):
    rows = logs_insights.run(readme_queries()["errors by reason"], events)
    assert [(row["reason"], row["error_class"], row["count(*)"]) for row in rows] == [("rule_error", "KeyError", 2)]


def test_cold_starts(events):
    [row] = logs_insights.run(
        readme_queries()["cold starts: where the rules came from, and how long they took"], events
    )
    assert (row["rules_source"], row["rules_count"]) == ("full load", 2)
    assert row["rules_source_reason"].startswith("no snapshot at ") and row["load_ms"] > 0


def test_one_invocation_by_its_lambda_request_id(events):
    [row] = logs_insights.run(
        readme_queries()["one invocation, by its Lambda request id (or by xray_trace_id)"], events
    )
    assert (row["message"], row["decision"], row["reason"], row["rule"]) == (
        "ruleauth decision",
        "allow",
        "rule_true",
        "orders",
    )


def test_field_discovery_flattens_nested_keys_and_stops_at_200():
    event = logs_insights.discover(
        '{"a": {"b": 1, "c": [{"d": "x"}, 2]}, ' + ", ".join(f'"k{i}": {i}' for i in range(300)) + "}"
    )
    assert (event["a.b"], event["a.c.0.d"], event["a.c.1"]) == (1, "x", 2)
    assert len([k for k in event if not k.startswith("@")]) == 200 and "k196" in event and "k197" not in event
    assert logs_insights.discover("[INFO] plain text") == {"@message": "[INFO] plain text", "@timestamp": 0.0}
