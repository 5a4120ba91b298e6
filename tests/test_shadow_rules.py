"""Shadow rules (`mode: shadow`): evaluated, logged and counted, never enforced."""

import io
import json

from ruleauth.runtime.authorizer import Authorizer
from ruleauth.runtime.decision_log import DecisionLog
from ruleauth.tools.synthetic_events import build_event

RULES = """\
version: 1
token: {header: Authorization}
cache: {mode: disabled}
rules:
  - name: odd numbers only
    route: GET /hello
    auth: token
    allow: int(token) % 2 == 1
  - name: try a stricter rule
    route: GET /hello
    auth: token
    mode: shadow
    allow: int(token) % 4 == 1
  - name: shadow on a new route
    route: GET /new
    auth: token
    mode: shadow
    allow: "true"
"""


def load(tmp_path):
    (tmp_path / "rules.yaml").write_text(RULES)
    return Authorizer.load(tmp_path / "rules.yaml")


def hello(token, path="/hello"):
    return build_event("rest-request", "GET", path, headers={"Authorization": token})


def test_a_shadow_rule_may_share_its_route_with_an_enforced_rule_and_never_changes_the_decision(tmp_path):
    authorizer = load(tmp_path)
    for token, enforced, shadow in (("3", "allow", "deny"), ("5", "allow", "allow"), ("2", "deny", "deny")):
        result = authorizer.authorize(hello(token))
        assert result.decision.outcome == enforced
        assert result.decision.rule == "odd numbers only"
        assert [(s.rule, s.decision) for s in result.decision.shadows] == [("try a stricter rule", shadow)]


def test_a_shadow_rule_alone_on_a_route_allows_nothing(tmp_path):
    result = load(tmp_path).authorize(hello("1", "/new"))
    assert result.decision.outcome == "deny"
    assert result.decision.reason == "no_route"
    assert [(s.rule, s.decision) for s in result.decision.shadows] == [("shadow on a new route", "allow")]


def test_the_decision_line_carries_the_shadow_outcome(tmp_path):
    stream = io.StringIO()
    result = load(tmp_path).authorize(hello("3"))
    DecisionLog(stream=stream).write(result.decision, result.latency_ms)
    line = json.loads(stream.getvalue())
    assert line["decision"] == "allow"
    assert line["shadow"] == [{"rule": "try a stricter rule", "decision": "deny", "reason": "rule_false"}]
