"""Decision-log settings: level, allow-line sampling, and a rules file that fails to load."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ruleauth.errors import RulesError
from ruleauth.rules.settings import sample_rate_from
from ruleauth.runtime import decision_log
from ruleauth.runtime.authorizer import Authorizer
from ruleauth.runtime.decision_log import DecisionLog
from ruleauth.tools.synthetic_events import build_event

ROOT = Path(__file__).resolve().parents[1]


def decide(token):
    authorizer = Authorizer.load(ROOT / "rules")
    return authorizer.authorize(build_event("rest-request", "GET", "/hello", headers={"Authorization": token}))


@pytest.mark.parametrize(
    "env, level",
    [
        ({}, 20),
        ({"AWS_LAMBDA_LOG_LEVEL": "ERROR"}, 40),
        ({"AWS_LAMBDA_LOG_LEVEL": "ERROR", "RULEAUTH_LOG_LEVEL": "DEBUG"}, 10),
        ({"RULEAUTH_LOG_LEVEL": "warning"}, 30),
    ],
)
def test_the_level_comes_from_RULEAUTH_LOG_LEVEL_then_AWS_LAMBDA_LOG_LEVEL(monkeypatch, env, level):
    for name in ("RULEAUTH_LOG_LEVEL", "AWS_LAMBDA_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert decision_log.log_level() == level


def test_decision_lines_below_the_level_are_not_written(monkeypatch):
    monkeypatch.setenv("RULEAUTH_LOG_LEVEL", "WARNING")
    stream = io.StringIO()
    DecisionLog(stream=stream).write(decide("2").decision, 1.0)  # rule_false: an INFO line
    assert stream.getvalue() == ""
    DecisionLog(stream=stream).write(decide("abc").decision, 1.0)  # rule_error: a WARNING line
    assert json.loads(stream.getvalue())["reason"] == "rule_error"


def test_allow_lines_can_be_sampled_but_denials_are_always_written():
    stream = io.StringIO()
    log = DecisionLog(sample_allow=0.25, stream=stream, draw=iter([0.9, 0.1]).__next__)
    log.write(decide("17").decision, 1.0)  # 0.9 ≥ 0.25: skipped
    log.write(decide("17").decision, 1.0)  # 0.1 < 0.25: written, with its rate
    log.write(decide("2").decision, 1.0)  # a denial: always
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["decision"], line.get("sampling_rate")) for line in lines] == [("allow", 0.25), ("deny", None)]


@pytest.mark.parametrize("value", ["2", "-0.1", "half"])
def test_a_bad_sample_rate_is_a_load_error(value):
    with pytest.raises(RulesError, match="RULEAUTH_LOG_SAMPLE_ALLOW"):
        sample_rate_from({"RULEAUTH_LOG_SAMPLE_ALLOW": value})


def test_rules_that_fail_to_load_say_file_line_and_what_to_do_once_and_no_request_is_served(tmp_path):
    (tmp_path / "rules.yaml").write_text("version: 1\nrules:\n  - name: typo\n    route: GET /hello\n    alow: true\n")
    env = {**os.environ, "RULEAUTH_RULES": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", "import ruleauth.handler"], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert done.returncode != 0  # the import fails: Lambda never calls the handler
    message = done.stdout
    assert f"{tmp_path / 'rules.yaml'}:5:5: error: rule 'typo': unknown key 'alow'" in message
    assert "did you mean 'allow'?" in message
    assert message.count("Fix the rules") == 1
