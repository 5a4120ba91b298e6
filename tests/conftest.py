"""Shared fixtures for the core suite: rules text → file → RuleSet / problems / Authorizer."""

import os
import textwrap

import pytest
from hypothesis import settings as hypothesis_settings

from ruleauth.errors import RulesError
from ruleauth.rules import loader as rules_loader
from ruleauth.rules import snapshot as rules_snapshot
from ruleauth.runtime.authorizer import Authorizer

# Property tests draw new examples on every local run, which is how they find bugs; CI runs
# one fixed draw, so that a new draw cannot turn a submission's CI red.
hypothesis_settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")


@pytest.fixture(autouse=True)
def rules_through_a_snapshot(monkeypatch):
    """With RULEAUTH_TEST_SNAPSHOT=1 (a pass of dev.py), every rule set the tests load is the
    one a rules snapshot gives back: saved as JSON and read again, as a cold start reads it."""
    if os.environ.get("RULEAUTH_TEST_SNAPSHOT") != "1":
        return
    full_load = rules_loader.load

    def load(*args, **kwargs):
        ruleset = full_load(*args, **kwargs)
        return rules_snapshot.decode(rules_snapshot.encode(ruleset))

    monkeypatch.setattr(rules_loader, "load", load)


@pytest.fixture
def write_rules(tmp_path):
    """write_rules(text, name='rules.yaml') → the path of a dedented rules file in tmp_path."""

    def write(text: str, name: str = "rules.yaml"):
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture
def load_rules(write_rules):
    """load_rules(text) → RuleSet (the text must load)."""
    return lambda text, name="rules.yaml": rules_loader.load(write_rules(text, name))


@pytest.fixture
def load_problems(write_rules):
    """load_problems(text) → the error Problems of a rules file that must fail to load."""

    def problems(text: str, name: str = "rules.yaml"):
        with pytest.raises(RulesError) as caught:
            rules_loader.load(write_rules(text, name))
        return caught.value.problems

    return problems


@pytest.fixture
def authorizer(write_rules):
    """authorizer(text, environ={}) → an Authorizer loaded from the rules text, under `environ`
    and this process's engine knobs (dev.py's passes set RULEAUTH_ENGINE, RULEAUTH_CEL_INTERPRETER)."""
    return lambda text, environ=None: Authorizer.load(write_rules(text), environ={**engine_knobs(), **(environ or {})})


def engine_knobs() -> dict[str, str]:
    return {k: os.environ[k] for k in ("RULEAUTH_ENGINE", "RULEAUTH_CEL_INTERPRETER") if k in os.environ}


def pytest_terminal_summary(terminalreporter):
    """The conformance counts per engine (tests/test_cel_conformance.py), when that test ran."""
    import sys

    module = sys.modules.get("tests.test_cel_conformance")
    if module is None or not module.COUNTS:
        return
    terminalreporter.section("cel-spec conformance through rules files")
    for engine, counts in module.COUNTS.items():
        terminalreporter.write_line(module.summary(engine, counts))
