"""Shared fixtures for the core suite: rules text → file → RuleSet / problems / Authorizer."""

import textwrap

import pytest

from ruleauth import rules_loader
from ruleauth.authorizer import Authorizer
from ruleauth.errors import RulesError


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
    """authorizer(text, environ={}) → an Authorizer loaded from the rules text."""
    return lambda text, environ=None: Authorizer.load(write_rules(text), environ=environ or {})
