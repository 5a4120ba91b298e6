"""CloudWatch Embedded Metric Format lines (RULEAUTH_METRICS), no AWS SDK call."""

import io
import json

import pytest

from ruleauth.errors import RulesError
from ruleauth.rules.settings import METRICS_ON as ON
from ruleauth.rules.settings import metrics_mode_from as mode_from
from ruleauth.runtime.authorizer import Authorizer
from ruleauth.runtime.metrics import OFF, PER_RULE, Metrics
from ruleauth.tools.synthetic_events import build_event


def emf_lines(stream: io.StringIO) -> list[dict]:
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    for line in lines:
        # Every metric CloudWatch is told about has a value, and every dimension key is present.
        directive = line["_aws"]["CloudWatchMetrics"][0]
        assert directive["Namespace"] == "ruleauth"
        assert isinstance(line["_aws"]["Timestamp"], int)
        for metric in directive["Metrics"]:
            assert isinstance(line[metric["Name"]], (int, float))
        for dimension_set in directive["Dimensions"]:
            assert all(isinstance(line[key], str) for key in dimension_set)
    return lines


@pytest.fixture
def demo(tmp_path):
    (tmp_path / "rules.yaml").write_text(
        "version: 1\ntoken: {header: Authorization}\ncache: {mode: disabled}\n"
        "rules:\n  - name: odd numbers only\n    route: GET /hello\n    auth: token\n"
        "    allow: int(token) % 2 == 1\n"
        "  - name: stricter\n    route: GET /hello\n    auth: token\n    mode: shadow\n"
        "    allow: int(token) % 4 == 1\n"
    )
    return Authorizer.load(tmp_path / "rules.yaml")


def decide(authorizer, token):
    return authorizer.authorize(build_event("rest-request", "GET", "/hello", headers={"Authorization": token}))


@pytest.mark.parametrize("value, mode", [("", OFF), ("1", ON), ("true", ON), ("TRUE", ON), ("rule", PER_RULE)])
def test_the_metrics_setting_is_read_from_the_environment(value, mode):
    assert mode_from({"RULEAUTH_METRICS": value}) == mode


def test_any_other_metrics_setting_is_a_load_error():
    with pytest.raises(RulesError, match="RULEAUTH_METRICS"):
        mode_from({"RULEAUTH_METRICS": "yes please"})


def test_metrics_off_prints_nothing(demo):
    stream = io.StringIO()
    Metrics(OFF, stream).decision(decide(demo, "17").decision, 1.0)
    assert stream.getvalue() == ""


def test_decisions_are_counted_by_outcome_and_reason_with_their_latency(demo):
    stream = io.StringIO()
    metrics = Metrics(ON, stream)
    for token in ("17", "2"):
        result = decide(demo, token)
        metrics.decision(result.decision, result.latency_ms)
    lines = [line for line in emf_lines(stream) if "Decisions" in line]
    assert [(line["Outcome"], line["Reason"], line["Decisions"]) for line in lines] == [
        ("allow", "rule_true", 1),
        ("deny", "rule_false", 1),
    ]
    assert all(line["DecisionLatency"] >= 0 for line in lines)
    assert all("Rule" not in line for line in lines)  # each rule value would be a billed metric


def test_the_per_rule_dimension_is_added_only_when_asked(demo):
    stream = io.StringIO()
    result = decide(demo, "17")
    Metrics(PER_RULE, stream).decision(result.decision, result.latency_ms)
    line = next(line for line in emf_lines(stream) if "Decisions" in line)
    assert line["Rule"] == "odd numbers only"
    assert ["Rule", "Outcome"] in line["_aws"]["CloudWatchMetrics"][0]["Dimensions"]


def test_shadow_outcomes_are_counted_with_whether_they_agree(demo):
    stream = io.StringIO()
    result = decide(demo, "3")  # enforced: allow (odd); shadow: 3 % 4 != 1 → deny
    Metrics(PER_RULE, stream).decision(result.decision, result.latency_ms)
    shadow = next(line for line in emf_lines(stream) if "ShadowDecisions" in line)
    assert (shadow["ShadowRule"], shadow["ShadowOutcome"], shadow["AgreesWithEnforced"]) == (
        "stricter",
        "deny",
        "false",
    )


def test_jwks_fetches_and_failures_are_counted_once_each():
    stream = io.StringIO()
    metrics = Metrics(ON, stream)
    metrics.key_fetches({"corp": (1, 0)})
    metrics.key_fetches({"corp": (1, 0)})  # nothing new: no line
    metrics.key_fetches({"corp": (3, 1)})
    lines = emf_lines(stream)
    assert [(line["Provider"], line["JwksFetches"], line["JwksFetchFailures"]) for line in lines] == [
        ("corp", 1, 0),
        ("corp", 2, 1),
    ]


def test_the_lambda_handler_prints_a_decision_line_and_an_emf_line_per_request():
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    script = (
        "from ruleauth.handler import handler\n"
        "from ruleauth.tools.synthetic_events import build_event\n"
        "handler(build_event('rest-request', 'GET', '/hello', headers={'Authorization': '900000000000001'}))\n"
    )
    env = {**os.environ, "RULEAUTH_RULES": str(root / "rules"), "RULEAUTH_METRICS": "rule"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=root, check=True)
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    decision = next(line for line in lines if line.get("message") == "ruleauth decision")
    emf = next(line for line in lines if "_aws" in line and "Decisions" in line)
    cold = next(line for line in lines if "_aws" in line and "ColdStarts" in line)
    assert cold["ColdStarts"] == 1 and cold["ColdStartLoadTime"] > 0
    assert decision["decision"] == "allow" and decision["rule"] == "odd numbers only"
    assert (emf["Outcome"], emf["Rule"], emf["Decisions"]) == ("allow", "odd numbers only", 1)
    assert "900000000000001" not in done.stdout  # the credential never reaches a log line


def test_the_readme_names_every_metric_and_dimension_the_lines_carry(demo):
    """README "Metrics" is the list users build alarms from: each name a line can carry, and no other."""
    import re
    from pathlib import Path

    stream = io.StringIO()
    metrics = Metrics(PER_RULE, stream)
    for token in ("1", "3"):  # the shadow rule agrees on one and not the other
        metrics.decision(decide(demo, token).decision, 1.0)
    metrics.cold_start(10.0)
    metrics.key_fetches({"corp": (1, 1)})
    metrics.introspections({"opaque": (1, 1, 1, 1)})
    emitted = set()
    for line in emf_lines(stream):
        directive = line["_aws"]["CloudWatchMetrics"][0]
        emitted |= {metric["Name"] for metric in directive["Metrics"]}
        emitted |= {key for dimension_set in directive["Dimensions"] for key in dimension_set}
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    paragraph = readme[readme.index("**Metrics.**") :].split("\n\n", 1)[0]
    assert set(re.findall(r"`([A-Z][a-z]+(?:[A-Z][a-z]+)*)`", paragraph)) == emitted
