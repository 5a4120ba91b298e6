"""The root stack's alarms and dashboard read metrics ruleauth's EMF lines actually publish.

Real EMF lines (runtime/metrics.py, from real decisions, a real failed key fetch and a cold
start) are read as CloudWatch extracts them (docs/logging.md "Embedded Metric Format"): one
metric per metric name and dimension set. Every ruleauth metric an alarm or a dashboard widget
names, with its namespace and all its dimensions, must be among them.
"""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest

from ruleauth.rules.settings import METRICS_ON
from ruleauth.runtime.authorizer import Authorizer
from ruleauth.runtime.metrics import NAMESPACE, Metrics
from ruleauth.tools.synthetic_events import build_event
from tests.jwt_support import NOW, token
from tests.sam.tools import SAM_TEMPLATES, translate

RULES = """\
version: 1
cache: {mode: disabled}
token: {header: Authorization, scheme: Bearer}
jwt:
  - name: corp
    issuer: https://127.0.0.1:1
    audience: [https://api.example.test]
    jwks_uri: https://127.0.0.1:1/jwks
rules:
  - name: odd
    route: GET /hello
    auth: token
    allow: int(token) % 2 == 1
  - name: orders
    route: GET /orders
    auth: {jwt: [corp]}
    allow: "true"
"""

Metric = tuple[str, str, frozenset[tuple[str, str]]]


def published(lines: list[dict[str, Any]]) -> dict[Metric, str]:
    """(namespace, name, dimensions) → unit, for every metric the EMF lines publish."""
    found: dict[Metric, str] = {}
    for line in lines:
        for directive in line["_aws"]["CloudWatchMetrics"]:
            for dimension_set in directive["Dimensions"]:
                dimensions = frozenset((key, line[key]) for key in dimension_set)
                for metric in directive["Metrics"]:
                    found[(directive["Namespace"], metric["Name"], dimensions)] = metric["Unit"]
    return found


@pytest.fixture(scope="module")
def emitted(tmp_path_factory: pytest.TempPathFactory) -> dict[Metric, str]:
    path = tmp_path_factory.mktemp("alarms") / "rules.yaml"
    path.write_text(RULES)
    authorizer = Authorizer.load(path, environ={})
    stream = io.StringIO()
    metrics = Metrics(METRICS_ON, stream)
    metrics.cold_start(12.5)

    def decide(event: dict[str, Any]) -> str:
        result = authorizer.authorize(event, now=NOW)
        metrics.decision(result.decision, result.latency_ms)
        metrics.key_fetches(authorizer.verifier.fetch_stats())
        return str(result.decision.reason)

    hello = {
        t: build_event("rest-request", "GET", "/hello", headers={"Authorization": f"Bearer {t}"})
        for t in ("17", "2", "x")
    }
    jwt = build_event(
        "rest-request", "GET", "/orders", headers={"Authorization": f"Bearer {token(iss='https://127.0.0.1:1')}"}
    )
    reasons = [
        decide(hello["17"]),
        decide(hello["2"]),
        decide(hello["x"]),
        decide(build_event("rest-request", "GET", "/hello")),
        decide(jwt),
    ]
    assert reasons == ["rule_true", "rule_false", "rule_error", "missing_credential", "jwks_unavailable"]
    # An internal error, as the fail-closed test provokes one (tests/test_fuzz_events.py).
    decider = authorizer.decider

    def explode(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")

    decider.decide = explode  # type: ignore[method-assign]
    assert decide(hello["17"]) == "internal_error"
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    return published(lines)


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    return translate({"rest": ("template.yaml", {})})["rest"]


def of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def alarm_metrics(properties: dict[str, Any]) -> list[tuple[Metric, str | None]]:
    """(metric, unit the alarm asks for) for each metric an alarm reads."""

    def dims(dimensions: list[dict[str, Any]]) -> frozenset[tuple[str, str]]:
        return frozenset(
            (d["Name"], json.dumps(d["Value"]) if isinstance(d["Value"], dict) else d["Value"]) for d in dimensions
        )

    if "MetricName" in properties:
        metric = (properties["Namespace"], properties["MetricName"], dims(properties.get("Dimensions", [])))
        return [(metric, properties.get("Unit"))]
    found = []
    for query in properties["Metrics"]:
        if "MetricStat" in query:
            stat = query["MetricStat"]["Metric"]
            found.append(((stat["Namespace"], stat["MetricName"], dims(stat.get("Dimensions", []))), None))
    return found


def test_the_root_stack_has_the_four_alarms_and_the_dashboard_behind_the_monitoring_parameter(stack):
    alarms = of_type(stack, "AWS::CloudWatch::Alarm")
    assert set(alarms) == {
        "FunctionErrorsAlarm",
        "DecisionErrorsAlarm",
        "KeyFetchFailuresAlarm",
        "DecisionLatencyAlarm",
    }
    dashboards = of_type(stack, "AWS::CloudWatch::Dashboard")
    assert set(dashboards) == {"RuleauthDashboard"}
    assert stack["Parameters"]["Monitoring"]["Default"] == "true"
    for resource in [*alarms.values(), *dashboards.values()]:
        assert resource["Condition"] == "MonitoringOn"
    for alarm in alarms.values():
        topic = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
        assert alarm["Properties"]["AlarmActions"] == alarm["Properties"]["OKActions"] == topic
    variables = stack["Resources"]["RuleauthFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["RULEAUTH_METRICS"] == {"Fn::If": ["MonitoringOn", "1", {"Ref": "AWS::NoValue"}]}


def test_every_ruleauth_metric_an_alarm_reads_is_one_the_emf_lines_publish_with_its_unit(stack, emitted):
    read = 0
    for name, alarm in of_type(stack, "AWS::CloudWatch::Alarm").items():
        for metric, unit in alarm_metrics(alarm["Properties"]):
            if metric[0] == "AWS/Lambda":
                assert metric[1] == "Errors" and metric[2] == {
                    ("FunctionName", json.dumps({"Ref": "RuleauthFunction"}))
                }
                continue
            assert metric in emitted, (name, metric, sorted(m for m in emitted if m[1] == metric[1]))
            assert unit in (None, emitted[metric]), name
            read += 1
    assert read == 5


def test_the_latency_alarm_is_on_p99_of_all_decisions(stack, emitted):
    alarm = stack["Resources"]["DecisionLatencyAlarm"]["Properties"]
    assert alarm["ExtendedStatistic"] == "p99" and alarm["Threshold"] == {"Ref": "LatencyAlarmMs"}
    assert (NAMESPACE, "DecisionLatency", frozenset()) in emitted


def dashboard_body(stack: dict[str, Any]) -> dict[str, Any]:
    text, variables = stack["Resources"]["RuleauthDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    assert set(variables) == {"Function", "LogGroup"}
    values = {"AWS::Region": "eu-west-1", "LatencyAlarmMs": "250", "Function": "fn", "LogGroup": "/aws/lambda/x"}
    body = re.sub(r"\$\{([^}]+)\}", lambda m: values[m.group(1)], text)
    return json.loads(body)


SEARCH = re.compile(r"""SEARCH\('\{([^}]*)\} MetricName="([^"]+)"'""")


def test_every_ruleauth_metric_a_dashboard_widget_shows_is_one_the_emf_lines_publish(stack, emitted):
    widgets = dashboard_body(stack)["widgets"]
    titles = " | ".join(w["properties"]["title"] for w in widgets)
    for subject in ("outcome", "reason", "latency", "Cold starts", "Key fetches"):
        assert subject in titles
    shown = 0
    for widget in widgets:
        for row in widget["properties"].get("metrics", []):
            if isinstance(row[0], dict):  # a SEARCH over a schema: some published metric matches it
                schema, name = SEARCH.match(row[0]["expression"]).groups()
                namespace, *keys = schema.split(",")
                assert any(m[0] == namespace and m[1] == name and {k for k, _ in m[2]} == set(keys) for m in emitted)
                shown += 1
                continue
            parts = [part for part in row if not isinstance(part, dict)]
            namespace, name, rest = parts[0], parts[1], parts[2:]
            if namespace == "AWS/Lambda":
                assert rest == ["FunctionName", "fn"]
                continue
            metric = (namespace, name, frozenset(zip(rest[::2], rest[1::2], strict=True)))
            assert metric in emitted, metric
            shown += 1
    assert shown >= 10


def test_the_dashboards_log_widget_reads_the_cold_start_line_from_the_functions_log_group(stack):
    [log] = [w for w in dashboard_body(stack)["widgets"] if w["type"] == "log"]
    assert log["properties"]["query"].startswith("SOURCE '/aws/lambda/x' | filter message = \"ruleauth cold start\"")


@pytest.mark.parametrize("path", SAM_TEMPLATES)
def test_every_function_of_every_template_uses_lambdas_json_log_format(path):
    template = translate({"t": (path, {})})["t"]
    functions = of_type(template, "AWS::Lambda::Function")
    for name, function in functions.items():
        config = function["Properties"]["LoggingConfig"]
        assert config["LogFormat"] == "JSON", (path, name)
        assert set(config) >= {"ApplicationLogLevel", "SystemLogLevel"}, (path, name)
    assert functions
