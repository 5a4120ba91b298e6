"""`ruleauth validate` points at the mistake: CEL syntax, definitions, YAML slips.

Each case writes a rules file with one mistake people make, runs the real command and
checks where the finding points (file:line:col of the character inside the YAML scalar)
and that the message names the cause and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.cli_support import no_traceback, run_cli, run_json, write

HEAD = """\
version: 1
jwt:
  issuer: https://issuer.example
  audience: api
  jwks_uri: https://issuer.example/jwks
"""


def problems_of(tmp_path: Path, text: str) -> list[dict[str, Any]]:
    rules = write(tmp_path / "rules.yaml", text)
    code, report = run_json("validate", str(rules))
    assert code == 1, report
    return [p for p in report["problems"] if p["severity"] == "error"]


def column_of(text: str, line: int, fragment: str) -> int:
    """The 1-based file column of `fragment` on 1-based `line` of `text`."""
    return text.splitlines()[line - 1].index(fragment) + 1


def rule_with(allow: str) -> str:
    return HEAD + f"rules:\n  - name: r\n    route: GET /a\n    allow: {allow}\n"


ALLOW_LINE = 9  # the `allow:` line of rule_with's file
END = None  # the failure is where the expression ends


@pytest.mark.parametrize(
    "allow, at, hint",
    [
        ("\"claims.sub == 'x' && claims.org_id = 'org_1'\"", "= 'org_1'", "'==', not '='"),
        ('"claims.a == 1 and claims.b == 2"', "and claims.b", "'and' as '&&'"),
        ('"claims.a == 1 or claims.b == 2"', "or claims.b", "'or' as '||'"),
        ('"claims.a == 1 & claims.b == 2"', "& claims.b", "'&&'"),
        ('"not claims.admin"', "claims.admin", "'not' as '!'"),
        ('"(claims.a == 1 || claims.b == 2"', END, "'(' at column 1 is never closed"),
        ('"claims.a == 1) || claims.b == 2"', ") ||", "')' at column 14 closes nothing"),
        ("\"claims.roles.exists(r, r == 'admin'\"", END, "'(' at column 20 is never closed"),
        ('"claims.sub == \'abc"', "'abc", 'string opened by "\'" at column 15 is never closed'),
        ("\"claims.sub == 'x' &&\"", END, "ends with '&&'"),
        ('"claims.a == 1 AND claims.b == 2"', "AND", "'AND' as '&&'"),
        ('"claims.a === 1"', "= 1", "no '==='"),
        ('"claims.a => 1"', "=> 1", "'>='"),
        ('"claims.a <> 1"', "> 1", "'!='"),
    ],
)
def test_a_cel_syntax_error_points_at_the_failing_character_and_names_the_fix(tmp_path, allow, at, hint):
    text = rule_with(allow)
    (problem,) = problems_of(tmp_path, text)
    assert "CEL syntax error at column" in problem["message"]
    assert hint in problem["message"], problem["message"]
    line = text.splitlines()[ALLOW_LINE - 1]
    # At the end of the expression, the caret sits on the closing quote, just after its last character.
    column = len(line) if at is END else column_of(text, ALLOW_LINE, at)
    assert (problem["line"], problem["col"]) == (ALLOW_LINE, column)


@pytest.mark.parametrize("allow", ['"not(claims.a == 1)"', '"claims.a == 1 && and"'])
def test_a_word_operator_that_parses_as_a_name_says_how_cel_writes_it(tmp_path, allow):
    (problem,) = problems_of(tmp_path, rule_with(allow))
    assert "CEL writes 'not' as '!'" in problem["message"] or "CEL writes 'and' as '&&'" in problem["message"]


def test_a_cel_syntax_error_says_what_was_expected(tmp_path):
    (problem,) = problems_of(tmp_path, rule_with("\"claims.sub == 'x' && claims.org_id = 'org_1'\""))
    assert (
        "found '=' where an operator (such as ==, &&, || or in) or the end of the expression was expected"
        in (problem["message"])
    )
    (unclosed,) = problems_of(tmp_path, rule_with('"[1, 2"'))
    assert "the expression ends where ',' or ']' was expected" in unclosed["message"]


def test_a_cel_syntax_error_in_a_block_scalar_points_at_its_own_line(tmp_path):
    text = HEAD + "rules:\n  - name: r\n    route: GET /a\n    allow: |\n      claims.a == 1\n      and claims.b == 2\n"
    (problem,) = problems_of(tmp_path, text)
    assert "line 2, column 1 of the expression" in problem["message"]
    assert (problem["line"], problem["col"]) == (11, column_of(text, 11, "and"))


def test_the_text_output_puts_the_caret_under_the_failing_character(tmp_path):
    rules = write(tmp_path / "rules.yaml", rule_with("\"claims.sub == 'x' && claims.org_id = 'org_1'\""))
    done = run_cli("validate", str(rules))
    no_traceback(done)
    lines = done.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if "CEL syntax error" in line)
    source, caret = lines[at + 1], lines[at + 2]
    assert source[caret.index("^")] == "="


DEFINES = (
    HEAD
    + """\
define:
  is_admin: "'admin' in claimz.roles"
  same_org: "claims.org_id = 'org_1'"
rules:
  - name: one
    route: GET /one
    allow: is_admin
  - name: two
    route: GET /two
    allow: is_admin || same_org
  - name: three
    route: GET /three
    allow: same_org && is_admin
"""
)


def test_a_mistake_inside_a_define_is_reported_once_at_the_define(tmp_path):
    problems = problems_of(tmp_path, DEFINES)
    assert [(p["line"], p["rule"]) for p in problems] == [(7, None), (8, None)]
    typo, syntax = problems
    assert typo["message"].startswith("define is_admin: unknown variable 'claimz'; did you mean 'claims'?")
    assert syntax["message"].startswith("define same_org: CEL syntax error at column 15")
    assert syntax["col"] == column_of(DEFINES, 8, "= 'org_1'")


def test_an_unused_define_with_a_mistake_is_still_reported(tmp_path):
    text = (
        HEAD + 'define:\n  unused: "claims.a and claims.b"\nrules:\n  - name: r\n    route: GET /a\n    allow: true\n'
    )
    (problem,) = problems_of(tmp_path, text)
    assert problem["line"] == 7 and "'and' as '&&'" in problem["message"]


def test_defines_that_refer_to_each_other_are_reported_at_each_define(tmp_path):
    text = HEAD + "define:\n  a: b\n  b: a\nrules:\n  - name: r\n    route: GET /a\n    allow: a\n"
    problems = problems_of(tmp_path, text)
    assert [p["line"] for p in problems] == [7, 8]
    assert all("refers to itself" in p["message"] for p in problems)


# -- YAML slips: the scanner's and parser's errors get the cause and the fix --------------------


def yaml_rule(line: str) -> str:
    return f"version: 1\nrules:\n  - name: r\n    route: GET /a\n    auth: none\n    {line}\n"


@pytest.mark.parametrize(
    "line, hint",
    [
        # A value that starts with a quote and goes on after it.
        ("allow: 'admin' in request.headers['x-roles']", "Quote the whole value: allow: \"'admin' in request.headers"),
        ('allow: "GET" == request.method', "Quote the whole value: allow: '\"GET\" == request.method'"),
        ("description: [a] then b", "starts with [ and goes on after the closing ]"),
        # A ': ' inside a plain value.
        ("allow: request.method == 'GET' ? true : false", 'Quote the whole value: allow: "request.method'),
        ("description: note: this is odd", "cannot contain ': '"),
        # A flow list whose items hold braces.
        ("route: [GET /projects/{id}]", "Quote each item: ['GET /projects/{id}']"),
        ("route: [GET /a, PUT /projects/{id}]", "Quote each item: ['GET /a', 'PUT /projects/{id}']"),
        ("allow: \"request.path.matches('^/a\\d')\"", "use single quotes"),
        ("allow: @admin", "cannot start with '@'"),
    ],
)
def test_a_yaml_slip_names_its_cause_and_fix(tmp_path, line, hint):
    (problem,) = problems_of(tmp_path, yaml_rule(line))
    assert problem["message"].startswith("YAML syntax error: "), problem["message"]
    assert hint in problem["message"], problem["message"]
    assert problem["line"] == 6


def test_the_flow_list_hint_is_given_by_both_yaml_parsers(tmp_path, monkeypatch):
    """libyaml and PyYAML's own parser word the errors differently; the hint does not depend on it."""
    from ruleauth.rules import strict_yaml as sy

    cases = {
        "route: [GET /projects/{id}]": "Quote each item",
        "allow: 'admin' in request.headers['x']": "Quote the whole value",
        "allow: a ? b : c": "cannot contain ': '",
    }
    for loader in {sy._StrictLoader, sy._Loader}:
        monkeypatch.setattr(sy, "_Loader", loader)
        for line, hint in cases.items():
            source = sy.Source("rules.yaml", yaml_rule(line))
            assert sy.parse(source) is None
            (problem,) = source.problems
            assert hint in problem.message, (loader.__name__, problem.message)


def test_an_unclosed_quote_says_where_it_was_opened(tmp_path):
    (problem,) = problems_of(tmp_path, yaml_rule('allow: \'request.method == "GET"'))
    assert "the quote opened at line 6, column 12 is never closed" in problem["message"]


def test_an_over_indented_key_is_not_told_to_quote(tmp_path):
    text = "version: 1\nrules:\n  - name: r\n    route: GET /a\n      auth: none\n"
    (problem,) = problems_of(tmp_path, text)
    assert "indented more than the keys above it" in problem["message"]


# -- YAML 1.1 values where CEL is meant, and in test requests ------------------------------


@pytest.mark.parametrize(
    "value, text_fix, literal_fix",
    [
        ("no", "\"'no'\"", "'false'"),
        ("on", "\"'on'\"", "'true'"),
        ("true", "\"'true'\"", "'true'"),
        ("0777", "\"'0777'\"", "'0777'"),
    ],
)
def test_a_yaml_1_1_value_of_a_cel_key_suggests_the_cel_string_and_the_cel_literal(
    tmp_path, value, text_fix, literal_fix
):
    text = HEAD + f"context:\n  beta: {value}\nrules:\n  - name: r\n    route: GET /a\n    allow: true\n"
    (problem,) = problems_of(tmp_path, text)
    assert problem["message"].startswith("context.beta must be a string; ")
    assert f"write {text_fix} (a CEL string inside YAML quotes)" in problem["message"]
    assert literal_fix in problem["message"]
    assert "quote it ('" not in problem["message"]


def test_the_suggested_cel_string_loads_and_yields_the_text(tmp_path):
    text = HEAD + (
        "context:\n  beta: \"'no'\"\nrules:\n  - name: r\n    route: GET /a\n    auth: none\n    allow: true\n"
        "tests:\n  - name: beta is the text no\n    request: {method: GET, path: /a, headers: {Authorization: x}}\n"
        "    expect: {decision: allow, context: {beta: 'no'}}\n"
    )
    rules = write(tmp_path / "rules.yaml", text)
    done = run_cli("test", str(rules), "--verbose")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed, 0 failed" in done.stdout


@pytest.mark.parametrize("key", ["principal", "usage_identifier_key"])
def test_every_cel_valued_top_level_key_gets_the_cel_advice(tmp_path, key):
    text = HEAD + f"{key}: off\nrules:\n  - name: r\n    route: GET /a\n    allow: true\n"
    (problem,) = problems_of(tmp_path, text)
    assert "write \"'off'\"" in problem["message"]


def test_a_plain_string_key_keeps_the_plain_advice(tmp_path):
    text = "version: 1\ntoken:\n  header: on\nrules:\n  - name: r\n    route: GET /a\n    auth: none\n    allow: true\n"
    problem = next(p for p in problems_of(tmp_path, text) if p["message"].startswith("token.header"))
    assert "quote it ('on')" in problem["message"]


@pytest.mark.parametrize("part", ["headers: {X-Debug: on}", "query: {debug: yes}", "cookies: {flag: off}"])
def test_a_yaml_1_1_value_in_a_test_request_is_flagged(tmp_path, part):
    text = (
        "version: 1\nrules:\n  - name: r\n    route: GET /a\n    auth: none\n    allow: true\n"
        f"tests:\n  - name: t\n    request: {{method: GET, path: /a, {part}}}\n    expect: allow\n"
    )
    (problem,) = problems_of(tmp_path, text)
    assert problem["line"] == 9
    assert "as a boolean, not a string: quote it" in problem["message"]
