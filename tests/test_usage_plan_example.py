"""examples/usage-plan: the rules name the API key of the caller's usage plan, the responses
carry it as usageIdentifierKey, and the README shows the example's own text."""

from __future__ import annotations

import re

import pytest

from ruleauth.runtime.authorizer import Authorizer
from ruleauth.tools.synthetic_events import build_event
from tests.cli_support import ROOT, run_cli
from tests.jwt_support import NOW
from tests.test_sam_template import USAGE_KEYS

EXAMPLE = ROOT / "examples" / "usage-plan"
ISSUER = "https://idp.example.com"


@pytest.fixture(scope="module")
def authorizer() -> Authorizer:
    return Authorizer.load(EXAMPLE / "rules.yaml", environ={})


def ask(authorizer: Authorizer, claims: dict, event_type: str = "rest-request", path: str = "/reports"):
    event = build_event(event_type, "GET", path, token="offline", token_config=authorizer.ruleset.token)
    return authorizer.authorize(event, now=NOW, claims={"iss": ISSUER, "sub": "partner-1", **claims})


@pytest.mark.parametrize(
    "claims, key",
    [
        ({"plan": "gold", "scope": "read:reports"}, USAGE_KEYS["GoldKeyValue"]),
        ({"plan": "silver", "scope": "read:reports"}, USAGE_KEYS["FreeKeyValue"]),
        ({"scope": "read:reports"}, USAGE_KEYS["FreeKeyValue"]),
        ({"plan": 7, "scope": "read:reports"}, USAGE_KEYS["FreeKeyValue"]),
    ],
)
def test_the_callers_plan_claim_picks_the_usage_identifier_key(authorizer, claims, key):
    result = ask(authorizer, claims)
    assert result.decision.outcome == "allow"
    assert result.response["usageIdentifierKey"] == key
    # Both keys are API key values API Gateway accepts, and the template's parameters take them.
    assert 20 <= len(key) <= 128


def test_a_denied_caller_and_a_token_event_still_name_the_key_and_http_apis_get_none(authorizer):
    denied = ask(authorizer, {"plan": "gold"})
    assert denied.decision.outcome == "deny"
    token_event = ask(authorizer, {"plan": "gold", "scope": "read:reports"}, event_type="rest-token")
    assert token_event.response["usageIdentifierKey"] == USAGE_KEYS["GoldKeyValue"]
    http = ask(authorizer, {"plan": "gold", "scope": "read:reports"}, event_type="http-2.0")
    assert http.decision.outcome == "allow" and "usageIdentifierKey" not in http.response


def test_the_example_passes_validate_against_its_template_and_its_own_tests():
    validate = run_cli(
        "validate", str(EXAMPLE / "rules.yaml"), "--template", str(EXAMPLE / "template.yaml"), "--strict"
    )
    assert validate.returncode == 0, validate.stdout + validate.stderr
    tests = run_cli("test", str(EXAMPLE / "rules.yaml"))
    assert tests.returncode == 0 and "3 passed, 0 failed" in tests.stdout, tests.stdout + tests.stderr


def test_the_readme_quotes_the_example_files_verbatim():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## API keys for usage plans") :]
    section = section[: section.index("\n## ")]
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.S)
    files = (EXAMPLE / "rules.yaml").read_text(encoding="utf-8") + (EXAMPLE / "template.yaml").read_text(
        encoding="utf-8"
    )
    assert len(blocks) >= 4
    assert [block for block in blocks if block not in files] == []
