"""The rules loader: strict YAML (Y1–Y11), the schema, directory merges, and cache safety.

Every load problem names file:line:col, and the rule when there is one.
"""

import re
import textwrap

import pytest

from ruleauth.errors import ERROR, WARNING, RulesError
from ruleauth.rules import loader as rules_loader

RULE = """\
version: 1
rules:
  - name: a
    route: GET /a
    allow: {allow}
"""


def messages(problems):
    return [p.format() for p in problems]


def only(problems):
    assert len(problems) == 1, messages(problems)
    return problems[0]


def test_a_valid_file_loads_with_rules_routes_and_no_warnings(load_rules):
    ruleset = load_rules("""
        version: 1
        rules:
          - name: odd numbers only
            route: GET /hello
            allow: int(token) % 2 == 1
          - name: orders
            route: ['GET /orders/{id}', 'HEAD /orders/{id}']
            allow: "token != ''"
    """)
    assert [r.name for r in ruleset.rules] == ["odd numbers only", "orders"]
    assert [str(r) for r in ruleset.rules[1].routes] == ["GET /orders/{id}", "HEAD /orders/{id}"]
    assert ruleset.warnings == []


def test_every_problem_names_file_line_column_and_rule(load_problems, tmp_path):
    problem = only(
        load_problems("""
        version: 1
        rules:
          - name: first
            route: GET /a
            allow: true
          - name: second
            route: GET /b
            allow: tokn == 'x'
    """)
    )
    assert problem.pos.file == str(tmp_path / "rules.yaml")
    assert (problem.pos.line, problem.pos.col) == (9, 12)  # the text starts with an empty line
    assert problem.rule == "second"
    assert problem.format().startswith(f"{tmp_path / 'rules.yaml'}:9:12: error: rule 'second': ")


def test_the_error_text_of_a_failed_load_lists_every_problem_with_its_position(write_rules):
    path = write_rules("""
        version: 1
        rules:
          - name: a
            route: get /a
            allow: true
          - name: b
            route: GET /b
            alow: true
    """)
    with pytest.raises(RulesError) as caught:
        rules_loader.load(path)
    text = str(caught.value)
    assert f"{path}:5:12: error: rule 'a': unknown method 'get'" in text
    assert f"{path}:9:5: error: rule 'b': unknown key 'alow'" in text


# --- Y1–Y9: YAML itself ------------------------------------------------------------


def test_Y01_python_tags_are_refused_before_anything_is_constructed(load_problems):
    problem = only(load_problems(RULE.format(allow="!!python/object/apply:os.system [id]")))
    assert "tags" in problem.message and (problem.pos.line, problem.pos.col) == (5, 12)


@pytest.mark.parametrize("tagged", ["!!str true", "!!bool 'true'", "!custom x"])
def test_Y01_any_explicit_tag_is_a_load_error(load_problems, tagged):
    assert "tags" in only(load_problems(RULE.format(allow=tagged))).message


def test_Y02_duplicate_keys_are_load_errors_not_last_one_wins(load_problems):
    problem = only(
        load_problems("""
        version: 1
        rules:
          - name: a
            route: GET /a
            allow: false
            allow: true
    """)
    )
    assert "duplicate key 'allow'" in problem.message and "first at line 6" in problem.message
    assert problem.pos.line == 7


def test_Y02_duplicate_top_level_keys_are_load_errors(load_problems):
    problem = only(load_problems("version: 1\nrules: []\nrules: []\n"))
    assert "duplicate key 'rules'" in problem.message and problem.pos.line == 3


@pytest.mark.parametrize("word", ["on", "off", "yes", "no", "NO", "Yes", "TRUE"])
def test_Y03_yaml11_booleans_where_strings_are_meant_are_load_errors(load_problems, word):
    problems = load_problems(f"""
        version: 1
        rules:
          - name: {word}
            route: GET /a
            allow: true
    """)
    assert any("YAML 1.1 reads" in p.message and "quote it" in p.message for p in problems), messages(problems)


def test_Y03_yaml11_boolean_as_a_route_is_a_load_error(load_problems):
    problem = only(load_problems("version: 1\nrules:\n  - {name: a, route: on, allow: true}\n"))
    assert "route must be a string" in problem.message and "boolean" in problem.message


def test_Y03_a_boolean_is_accepted_only_as_the_whole_value_of_allow_and_only_true_or_false(load_problems, load_rules):
    assert load_rules(RULE.format(allow="true")).rules[0].allow.source == "true"
    assert load_rules(RULE.format(allow="false")).rules[0].allow.source == "false"
    problem = only(load_problems(RULE.format(allow="on")))
    assert "write true or false" in problem.message and problem.rule == "a"


@pytest.mark.parametrize("key", ["on", "yes", "no"])
def test_Y03_yaml11_boolean_keys_are_load_errors(load_problems, key):
    problems = load_problems(f"version: 1\n{key}: 1\nrules: []\n")
    assert any("YAML 1.1 reads" in p.message for p in problems)


@pytest.mark.parametrize("value, kind", [("0777", "number"), ("1:30", "number"), ("2001-01-01", "date"), ("~", "null")])
def test_Y03_implicit_numbers_dates_and_nulls_where_strings_are_meant_are_load_errors(load_problems, value, kind):
    problems = load_problems(f"""
        version: 1
        rules:
          - name: {value}
            route: GET /a
            allow: true
    """)
    assert any("rule name must be a string" in p.message for p in problems), messages(problems)
    if kind != "null":
        assert any("quote it" in p.message and kind in p.message for p in problems), messages(problems)


@pytest.mark.parametrize("version", ["1.10", "1.0", "'1'", "true", "2", "01"])
def test_Y03_version_must_be_the_integer_1(load_problems, version):
    problems = load_problems(f"version: {version}\nrules: []\n")
    assert any("version must be the integer 1" in p.message for p in problems), messages(problems)


def test_Y03_a_quoted_string_is_fine_where_a_yaml11_surprise_would_not_be(load_rules):
    ruleset = load_rules("version: 1\nrules:\n  - {name: 'on', route: 'GET /a', allow: 'true'}\n")
    assert ruleset.rules[0].name == "on"


def test_Y04_unquoted_braces_in_a_route_are_a_yaml_mapping_and_a_load_error(load_problems):
    problem = only(load_problems("version: 1\nrules:\n  - name: a\n    route: {id}\n    allow: true\n"))
    assert "quote the route" in problem.message and problem.rule == "a"
    assert (problem.pos.line, problem.pos.col) == (4, 12)


def test_Y04_a_route_list_item_that_is_a_mapping_is_a_load_error(load_problems):
    problem = only(load_problems("version: 1\nrules:\n  - name: a\n    route:\n      - {id}\n    allow: true\n"))
    assert "quote the route" in problem.message


def test_Y05_plain_cel_followed_by_a_comment_is_a_load_error(load_problems):
    problem = only(load_problems(RULE.format(allow="token == 'x' #|| token == 'y'")))
    assert "# comment" in problem.message and "Quote the expression" in problem.message
    assert (problem.pos.line, problem.pos.col, problem.rule) == (5, 12, "a")


@pytest.mark.parametrize(
    "allow",
    [
        "\"token == 'x'\" # quoted: the comment is really a comment",
        "token == 'x'",
        "|\n      token == 'x'\n      || false",
    ],
)
def test_Y05_quoted_plain_and_block_cel_without_a_cut_load(load_rules, allow):
    load_rules(RULE.format(allow=allow))


def test_Y05_a_block_scalar_keeps_the_hash_as_part_of_the_expression(load_problems):
    # Inside a block scalar `#` is text, so CEL sees it and rejects it: nothing is cut silently.
    problems = load_problems(RULE.format(allow="|\n      token == 'x' # not a comment"))
    assert any("CEL syntax error" in p.message for p in problems)


def test_Y05_a_define_cut_by_a_comment_is_a_load_error(load_problems):
    problem = only(load_problems("version: 1\ndefine:\n  d: token == 'x' # cut\nrules: []\n"))
    assert "# comment" in problem.message


def test_Y06_misspelt_allow_gets_did_you_mean(load_problems):
    problems = load_problems(RULE.replace("allow:", "alow:").format(allow="true"))
    typo = next(p for p in problems if "unknown key" in p.message)
    assert "unknown key 'alow'" in typo.message and "did you mean 'allow'?" in typo.message
    assert (typo.pos.line, typo.pos.col, typo.rule) == (5, 5, "a")


@pytest.mark.parametrize(
    "where, text, typo, suggestion",
    [
        ("top", "version: 1\nrulez: []\n", "rulez", "rules"),
        ("token", "version: 1\ntoken: {heder: X}\nrules: []\n", "heder", "header"),
        ("cache", "version: 1\ncache: {mode: disabled, sorces: {}}\nrules: []\n", "sorces", "sources"),
        ("rule", "version: 1\nrules:\n  - {name: a, route: GET /a, allow: true, methods: [GET]}\n", "methods", None),
    ],
)
def test_Y06_unknown_keys_are_load_errors_everywhere(load_problems, where, text, typo, suggestion):
    problems = load_problems(text)
    found = next(p for p in problems if f"unknown key {typo!r}" in p.message)
    if suggestion:
        assert f"did you mean {suggestion!r}" in found.message
    else:
        assert "known keys" in found.message or "did you mean" in found.message


@pytest.mark.parametrize("key", ["deny", "include", "imports"])
def test_reserved_top_level_keys_are_load_errors(load_problems, key):
    problem = only(load_problems(f"version: 1\n{key}: []\nrules: []\n"))
    assert "reserved for a later version" in problem.message and problem.pos.line == 2


def test_Y07_anchors_and_aliases_are_refused(load_problems):
    problem = only(load_problems("version: 1\nx: &a [1]\nrules: *a\n"))
    assert "anchors" in problem.message


def test_Y07_a_billion_laughs_alias_bomb_is_refused_at_the_first_anchor(load_problems):
    lines = ["version: 1", 'a0: &a0 ["lol"]']
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    lines.append("rules: []")
    problem = only(load_problems("\n".join(lines) + "\n"))
    assert "anchors (&a0)" in problem.message and problem.pos.line == 2


def test_Y07_a_recursive_alias_is_refused(load_problems):
    assert "anchors" in only(load_problems("version: 1\na: &a [*a]\nrules: []\n")).message


def test_Y07_an_oversized_file_is_refused(load_problems):
    big = "version: 1\nrules: []\n" + "#" * (1024 * 1024) + "\n"
    assert "larger than" in only(load_problems(big)).message


def test_Y08_merge_keys_are_load_errors(load_problems):
    problem = only(
        load_problems("""
        version: 1
        rules:
          - name: a
            route: GET /a
            <<: {allow: true}
    """)
    )
    assert "merge keys" in problem.message and problem.pos.line == 6


def test_Y09_several_documents_are_a_load_error(load_problems):
    problem = only(load_problems(RULE.format(allow="true") + "---\nversion: 1\n"))
    assert "several YAML documents" in problem.message and problem.pos.line == 6


def test_Y09_a_byte_order_mark_is_tolerated(write_rules):
    path = write_rules("")
    path.write_bytes(b"\xef\xbb\xbf" + RULE.format(allow="true").encode())
    assert [r.name for r in rules_loader.load(path).rules] == ["a"]


def test_Y09_a_tab_is_a_load_error_with_its_line(load_problems):
    problem = only(load_problems("version: 1\nrules:\n  - name: a\n\troute: GET /a\n"))
    assert "tabs" in problem.message and problem.pos.line == 4


def test_Y09_non_utf8_and_empty_files_are_load_errors(write_rules, load_problems):
    path = write_rules("")
    path.write_bytes(b"version: 1\nrules: [\xff]\n")
    with pytest.raises(RulesError, match="not UTF-8"):
        rules_loader.load(path)
    assert "empty" in only(load_problems("# nothing here\n")).message


def test_Y10_two_routes_identical_after_renaming_parameters_are_a_load_error(load_problems):
    problem = only(
        load_problems("""
        version: 1
        rules:
          - name: allow it
            route: GET /a/{id}
            allow: true
          - name: deny it
            route: GET /a/{other}
            allow: false
    """)
    )
    assert "the winner would be ambiguous" in problem.message and "allow it" in problem.message
    assert problem.rule == "deny it" and problem.pos.line == 7


def test_Y10_the_same_path_under_different_methods_or_any_is_not_ambiguous(load_rules):
    load_rules("""
        version: 1
        rules:
          - {name: get, route: 'GET /a/{id}', allow: true}
          - {name: put, route: 'PUT /a/{id}', allow: true}
          - {name: any, route: 'ANY /a/{id}', allow: false}
    """)


@pytest.mark.parametrize(
    "route, hint",
    [
        ("get /a", "write 'GET'"),
        ("Get /a", "write 'GET'"),
        ("any /a", "write 'ANY'"),
        ("FETCH /a", "use one of"),
        ("CONNECT /a", "use one of"),
    ],
)
def test_Y11_methods_must_be_upper_case_from_the_allowlist(load_problems, route, hint):
    problem = only(load_problems(f"version: 1\nrules:\n  - {{name: a, route: '{route}', allow: true}}\n"))
    assert "unknown method" in problem.message and hint in problem.message and problem.rule == "a"


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY"])
def test_Y11_every_allowed_method_loads(load_rules, method):
    assert (
        load_rules(f"version: 1\nrules:\n  - {{name: a, route: '{method} /a', allow: true}}\n")
        .rules[0]
        .routes[0]
        .method
        == method
    )


@pytest.mark.parametrize(
    "route, fragment",
    [
        ("GET /files/*", "'*' or '?'"),
        ("GET /files/a?b", "'*' or '?'"),
        ("GET files", "must start with '/'"),
        ("GET /a//b", "empty segment"),
        ("GET /a/", "empty segment"),
        ("GET /{p+}/x", "must be the last segment"),
        ("GET /{a}/{a}", "appears twice"),
        ("GET /a{b}", "neither a literal"),
        ("GET  /a", "one space"),
        ("/a", "one space"),
        ("$disconnect", "one space"),
    ],
)
def test_route_path_syntax_errors_are_load_errors(load_problems, route, fragment):
    problem = only(load_problems(f"version: 1\nrules:\n  - {{name: a, route: '{route}', allow: true}}\n"))
    assert fragment in problem.message and problem.rule == "a"


def test_websocket_connect_route_loads_without_a_method(load_rules):
    route = load_rules("version: 1\nrules:\n  - {name: ws, route: $connect, allow: true}\n").rules[0].routes[0]
    assert route.websocket and route.method == "" and str(route) == "$connect"


# --- the schema -------------------------------------------------------------------


def test_name_is_required_and_non_empty(load_problems):
    problems = load_problems(
        "version: 1\nrules:\n  - {route: GET /a, allow: true}\n  - {name: '', route: GET /b, allow: true}\n"
    )
    assert [p.pos.line for p in problems if "needs a non-empty `name`" in p.message] == [3, 4]


def test_route_and_allow_are_required_and_name_the_rule(load_problems):
    problems = load_problems("version: 1\nrules:\n  - {name: a, route: GET /a}\n  - {name: b, allow: true}\n")
    assert {(p.rule, "allow" in p.message, "route" in p.message) for p in problems} == {
        ("a", True, False),
        ("b", False, True),
    }


def test_rule_names_are_unique_within_a_file(load_problems):
    problem = only(
        load_problems(
            "version: 1\nrules:\n  - {name: a, route: GET /a, allow: true}\n  - {name: a, route: GET /b, allow: true}\n"
        )
    )
    assert "already used in this file" in problem.message and problem.pos.line == 4


def test_missing_version_is_a_load_error(load_problems):
    assert "missing `version: 1`" in only(load_problems("rules: []\n")).message


def test_a_file_without_rules_loads_with_a_warning(load_rules):
    ruleset = load_rules("version: 1\nrules: []\n")
    assert [w.severity for w in ruleset.warnings] == [WARNING]
    assert "every request is denied" in ruleset.warnings[0].message


@pytest.mark.parametrize(
    "auth, fragment",
    [
        ("jwt", "needs a `jwt:` provider"),
        ("password", "auth must be one of"),
        ("{jwt: [corp]}", "not configured"),
    ],
)
def test_auth_values_are_checked(load_problems, auth, fragment):
    problem = only(load_problems(f"version: 1\nrules:\n  - {{name: a, route: GET /a, auth: {auth}, allow: true}}\n"))
    assert fragment in problem.message and problem.rule == "a"


def test_token_optional_in_a_rule_means_auth_optional(load_rules):
    ruleset = load_rules("version: 1\nrules:\n  - {name: a, route: GET /a, token: optional, allow: true}\n")
    assert ruleset.rules[0].auth == "optional"


def test_auth_none_reading_token_is_a_load_error(load_problems):
    problem = only(
        load_problems("version: 1\nrules:\n  - {name: a, route: GET /a, auth: none, allow: \"token == 'x'\"}\n")
    )
    assert "auth: none" in problem.message


def test_auth_optional_and_none_warn_that_api_gateway_answers_401_for_missing_identity_sources(load_rules):
    ruleset = load_rules("version: 1\nrules:\n  - {name: a, route: GET /a, auth: none, allow: true}\n")
    assert any("API Gateway answers 401 itself" in w.message and w.rule == "a" for w in ruleset.warnings)


@pytest.mark.parametrize(
    "token, fragment",
    [
        ("{header: A, query: b}", "exactly one of header, query or cookie"),
        ("{}", "exactly one of header, query or cookie"),
        ("{header: 'Bad Header'}", "not a valid header name"),
        ("{header: A, scheme: 'Two words'}", "one word"),
    ],
)
def test_token_config_errors(load_problems, token, fragment):
    assert fragment in only(load_problems(f"version: 1\ntoken: {token}\nrules: []\n")).message


@pytest.mark.parametrize(
    "key, value, fragment",
    [
        ("response", "json", "response must be one of iam, simple"),
        ("engine", "cel-go", "engine must be one of"),
    ],
)
def test_choices_at_the_top_level_are_checked(load_problems, key, value, fragment):
    assert fragment in only(load_problems(f"version: 1\n{key}: {value}\nrules: []\n")).message


# --- define -----------------------------------------------------------------------


def test_defines_are_inlined_where_used(load_rules):
    ruleset = load_rules("""
        version: 1
        define:
          is_odd: int(token) % 2 == 1
          odd_and_short: is_odd && size(token) < 3
        rules:
          - {name: a, route: GET /a, allow: odd_and_short}
    """)
    allow = ruleset.rules[0].allow
    assert allow.defines == {"is_odd", "odd_and_short"}
    assert {str(r) for r in allow.reads} == {"token"}


@pytest.mark.parametrize(
    "body, fragment",
    [
        ("d: d", "refers to itself"),
        ("d: e\n  e: d", "refers to itself"),
        ("token: 'true'", "hides a built-in name"),
        ("size: 'true'", "hides a built-in name"),
        ("bad-name: 'true'", "must be an identifier"),
        ("d: tokn", "did you mean 'token'"),
    ],
)
def test_define_problems_are_load_errors(load_problems, body, fragment):
    problems = load_problems(f"version: 1\ndefine:\n  {body}\nrules:\n  - {{name: a, route: GET /a, allow: d}}\n")
    assert any(fragment in p.message for p in problems), messages(problems)


# --- context, principal, usage_identifier_key -------------------------------------


@pytest.mark.parametrize("key", ["principalId", "integrationLatency", "claims"])
def test_reserved_context_keys_are_load_errors(load_problems, key):
    problem = only(load_problems(f"version: 1\ncache: {{mode: disabled}}\ncontext:\n  {key}: \"'x'\"\nrules: []\n"))
    assert "reserved" in problem.message and (problem.pos.line, problem.pos.col) == (4, 3)


@pytest.mark.parametrize("key", ["9lives", "with-dash", "dotted.key", "a" * 65, "ünï"])
def test_context_keys_must_match_the_identifier_pattern(load_problems, key):
    problem = only(load_problems(f"version: 1\ncache: {{mode: disabled}}\ncontext:\n  '{key}': \"'x'\"\nrules: []\n"))
    assert "must match" in problem.message


def test_context_keys_up_to_64_characters_load(load_rules):
    ruleset = load_rules(f"version: 1\ncontext:\n  _{'a' * 63}: \"'x'\"\n  B9: '1'\nrules: []\n")
    assert set(ruleset.context) == {"_" + "a" * 63, "B9"}


@pytest.mark.parametrize(
    "where",
    [
        "principal: token",
        "usage_identifier_key: \"'k-' + token\"",
        "context:\n  raw: token",
        "context:\n  n: size(token)",
    ],
)
def test_token_may_not_appear_in_principal_context_or_usage_identifier_key(load_problems, where):
    problem = only(load_problems(f"version: 1\n{where}\nrules: []\n"))
    assert "may not read `token`" in problem.message


def test_claims_without_jwt_is_a_load_error_wherever_it_is_read(load_problems):
    problems = load_problems("""
        version: 1
        principal: claims.sub
        context:
          tenant: claims.tenant
        rules:
          - {name: a, route: GET /a, allow: "claims.admin == true"}
    """)
    assert len(problems) == 3 and all("`claims` needs a `jwt:` provider" in p.message for p in problems)
    assert next(p for p in problems if p.rule).rule == "a"


# --- directories ------------------------------------------------------------------


def _dir(tmp_path, files):
    folder = tmp_path / "rules.d"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return folder


def one_rule(name, route="GET /", allow="true"):
    return f"version: 1\nrules:\n  - {{name: '{name}', route: '{route}', allow: {allow}}}\n"


def test_a_directory_merges_yaml_and_yml_files_in_byte_order_of_name(tmp_path):
    folder = _dir(
        tmp_path,
        {
            "b.yaml": one_rule("b", "GET /b"),
            "a.yml": one_rule("a", "GET /a"),
            "B.yaml": one_rule("B", "GET /B"),
            "_.yaml": one_rule("_", "GET /_"),
        },
    )
    ruleset = rules_loader.load(folder)
    # Byte order: 'B' (0x42) < '_' (0x5f) < 'a' (0x61) < 'b'.
    assert [r.name for r in ruleset.rules] == ["B", "_", "a", "b"]
    assert [p.rsplit("/", 1)[-1] for p in ruleset.files] == ["B.yaml", "_.yaml", "a.yml", "b.yaml"]


def test_a_directory_ignores_dotfiles_other_suffixes_and_subdirectories(tmp_path):
    folder = _dir(
        tmp_path,
        {"a.yaml": one_rule("a", "GET /a"), ".hidden.yaml": "junk: [", "notes.txt": "junk: [", "a.yaml.bak": "junk: ["},
    )
    (folder / "sub").mkdir()
    (folder / "sub" / "deep.yaml").write_text(one_rule("deep", "GET /deep"))
    assert [r.name for r in rules_loader.load(folder).rules] == ["a"]


def test_a_directory_without_rules_files_is_an_error(tmp_path):
    folder = _dir(tmp_path, {"notes.txt": "x"})
    with pytest.raises(RulesError, match=r"no \*.yaml or \*.yml files"):
        rules_loader.load(folder)


def test_a_missing_rules_path_is_an_error(tmp_path):
    with pytest.raises(RulesError, match="does not exist"):
        rules_loader.load(tmp_path / "nope.yaml")


def test_every_file_of_a_directory_needs_version_1(tmp_path):
    folder = _dir(tmp_path, {"a.yaml": one_rule("a", "GET /a"), "b.yaml": "rules: []\n"})
    with pytest.raises(RulesError) as caught:
        rules_loader.load(folder)
    problem = only(caught.value.problems)
    assert problem.pos.file.endswith("b.yaml") and "version" in problem.message


def test_rules_define_and_tests_are_concatenated_across_files(tmp_path):
    folder = _dir(
        tmp_path,
        {
            "a.yaml": "version: 1\ndefine:\n  yes_: 'true'\nrules:\n  - {name: a, route: GET /a, allow: no_}\n"
            "tests:\n  - {name: ta, request: {method: GET, path: /a}, expect: deny}\n",
            "b.yaml": "version: 1\ndefine:\n  no_: 'false'\nrules:\n  - {name: b, route: GET /b, allow: yes_}\n"
            "tests:\n  - {name: tb, request: {method: GET, path: /b}, expect: allow}\n",
        },
    )
    ruleset = rules_loader.load(folder)
    assert [r.name for r in ruleset.rules] == ["a", "b"]
    assert [t.name for t in ruleset.tests] == ["ta", "tb"]
    assert ruleset.rules[0].allow.defines == {"no_"}


@pytest.mark.parametrize(
    "key, value",
    [("token", "{header: X}"), ("cache", "{mode: disabled}"), ("response", "iam"), ("principal", "\"'p'\"")],
)
def test_single_file_keys_set_twice_are_errors_naming_both_files(tmp_path, key, value):
    folder = _dir(
        tmp_path,
        {"a.yaml": f"version: 1\n{key}: {value}\nrules: []\n", "b.yaml": f"version: 1\n{key}: {value}\nrules: []\n"},
    )
    with pytest.raises(RulesError) as caught:
        rules_loader.load(folder)
    problem = only(caught.value.problems)
    assert problem.pos.file == str(folder / "b.yaml") and str(folder / "a.yaml") in problem.message
    assert f"{key!r} is already set" in problem.message


def test_duplicate_rule_names_across_files_name_both_files(tmp_path):
    folder = _dir(tmp_path, {"a.yaml": one_rule("same", "GET /a"), "b.yaml": one_rule("same", "GET /b")})
    with pytest.raises(RulesError) as caught:
        rules_loader.load(folder)
    problem = only(caught.value.problems)
    assert problem.pos.file == str(folder / "b.yaml") and str(folder / "a.yaml") in problem.message
    assert problem.rule == "same"


def test_duplicate_defines_across_files_name_both_files(tmp_path):
    folder = _dir(
        tmp_path,
        {
            "a.yaml": "version: 1\ndefine: {d: 'true'}\nrules: []\n",
            "b.yaml": "version: 1\ndefine: {d: 'false'}\nrules: []\n",
        },
    )
    with pytest.raises(RulesError) as caught:
        rules_loader.load(folder)
    problem = only(caught.value.problems)
    assert problem.pos.file == str(folder / "b.yaml") and str(folder / "a.yaml") in problem.message


def test_duplicate_routes_across_files_name_both_files(tmp_path):
    folder = _dir(tmp_path, {"a.yaml": one_rule("one", "GET /x/{id}"), "b.yaml": one_rule("two", "GET /x/{other}")})
    with pytest.raises(RulesError) as caught:
        rules_loader.load(folder)
    problem = only(caught.value.problems)
    assert problem.pos.file == str(folder / "b.yaml") and str(folder / "a.yaml") in problem.message
    assert problem.rule == "two" and "'one'" in problem.message


def test_problems_in_several_files_are_all_reported(tmp_path):
    folder = _dir(tmp_path, {"a.yaml": "version: 1\nrules: [\n", "b.yaml": "version: 2\nrules: []\n"})
    with pytest.raises(RulesError) as caught:
        rules_loader.load(folder)
    files = {p.pos.file.rsplit("/", 1)[-1] for p in caught.value.problems}
    assert files == {"a.yaml", "b.yaml"}


# --- cache safety (SPEC "Caching") ------------------------------------------------

CACHED = """\
version: 1
cache:
  mode: {mode}
  sources:
    headers: [Authorization, X-Tenant]
    query: [tenant]
    stage_variables: [env]
rules:
  - name: r
    route: GET /orders/{{id}}
    allow: {allow}
"""


@pytest.mark.parametrize("mode", ["identity", "route"])
@pytest.mark.parametrize(
    "allow, read",
    [
        ("request.headers['x-other'] == 'a'", "request.headers['x-other']"),
        ("'x-other' in request.headers", "request.headers"),
        ("request.query.other == 'a'", "request.query['other']"),
        ("request.params.id == '1'", "request.params['id']"),
        ("request.source_ip == '1.2.3.4'", "request.source_ip"),
        ("request.path == '/orders/1'", "request.path"),
        ("request.cookies.c == 'a'", "request.cookies['c']"),
        ("request.stage_variables.other == 'a'", "request.stage_variables['other']"),
        ("request.resource == '/orders/{id}'", "request.resource"),
    ],
)
def test_cached_modes_refuse_rules_reading_inputs_outside_the_identity_sources(load_problems, mode, allow, read):
    problem = only(load_problems(CACHED.format(mode=mode, allow=f'"{allow}"')))
    assert read in problem.message and "cache key" in problem.message and problem.rule == "r"
    assert f"cache.mode: {mode}" in problem.message and problem.pos.line == 9


@pytest.mark.parametrize("mode", ["identity", "route"])
@pytest.mark.parametrize(
    "allow",
    [
        "request.headers['x-tenant'] == 'a'",
        "request.query.tenant == 'a'",
        "request.stage_variables.env == 'prod'",
        "token != ''",
        "request.method == 'GET' && request.route == 'GET /orders/{id}'",
        "request.stage == 'prod' && request.api_id != '' && request.account_id != '' && request.region != ''",
    ],
)
def test_cached_modes_accept_rules_reading_declared_sources_token_and_the_route(load_rules, mode, allow):
    load_rules(CACHED.format(mode=mode, allow=f'"{allow}"'))


def test_declared_header_sources_match_case_insensitively(load_rules):
    load_rules(
        CACHED.replace("X-Tenant", "x-TENANT").format(mode="identity", allow="\"request.headers['x-tenant'] == 'a'\"")
    )


def test_source_ip_is_cache_safe_when_declared_as_a_context_source(load_rules):
    text = CACHED.replace("stage_variables: [env]", "context: [identity.sourceIp]")
    load_rules(text.format(mode="identity", allow="\"request.source_ip == '1.2.3.4'\""))


@pytest.mark.parametrize("mode", ["identity", "route"])
def test_reading_now_under_caching_is_a_warning_not_an_error(load_rules, mode):
    ruleset = load_rules(CACHED.format(mode=mode, allow='"now_unix > 0"'))
    warning = next(w for w in ruleset.warnings if "now" in w.message)
    assert warning.severity == WARNING and warning.rule == "r" and "replayed" in warning.message


def test_disabled_mode_lets_rules_principal_and_context_read_anything(load_rules):
    ruleset = load_rules("""
        version: 1
        cache: {mode: disabled}
        principal: "request.headers['x-user']"
        context:
          ip: request.source_ip
          path: request.path
        rules:
          - name: r
            route: GET /orders/{id}
            allow: "request.params.id == '1' && request.query.q == 'x' && request.source_ip != '' && now_unix > 0 && request.cookies.c == 'x'"
    """)
    assert not [w for w in ruleset.warnings if "now" in w.message]


def test_identity_mode_refuses_principal_and_context_reading_the_route(load_problems):
    problems = load_problems("""
        version: 1
        principal: request.method
        context:
          ok: "'fixed'"
          route: request.route
          ip: request.source_ip
        rules: []
    """)
    by_what = {p.message.split(" ")[0]: p for p in problems}
    assert set(by_what) == {"principal", "context.route", "context.ip"}
    # Each problem points at its own expression, not only at the enclosing mapping.
    assert by_what["principal"].pos.line == 3
    assert by_what["context.route"].pos.line == 6
    assert by_what["context.ip"].pos.line == 7


def test_route_mode_lets_context_read_the_route(load_rules):
    load_rules("version: 1\ncache: {mode: route}\ncontext:\n  m: request.method\n  r: request.route\nrules: []\n")


def test_without_cache_sources_the_token_header_is_the_identity_source(load_rules, load_problems):
    load_rules(
        "version: 1\ntoken: {header: X-Key}\nrules:\n  - {name: r, route: GET /a, allow: \"request.headers['x-key'] == ''\"}\n"
    )
    load_problems(
        "version: 1\ntoken: {header: X-Key}\nrules:\n  - {name: r, route: GET /a, allow: \"request.headers['authorization'] == ''\"}\n"
    )


def test_response_simple_with_identity_caching_and_differing_rules_is_a_load_error(load_problems):
    problem = only(
        load_problems("""
        version: 1
        response: simple
        rules:
          - {name: a, route: GET /a, allow: "token == 'x'"}
          - {name: b, route: GET /b, allow: "token == 'y'"}
    """)
    )
    assert "response: simple" in problem.message and problem.pos.line == 3


def test_response_simple_with_identity_caching_and_routes_read_is_a_load_error(load_problems):
    assert (
        "response: simple"
        in only(
            load_problems(
                "version: 1\nresponse: simple\nrules:\n  - {name: a, route: GET /a, allow: \"request.method == 'GET'\"}\n"
            )
        ).message
    )


def test_response_simple_with_identity_caching_and_alike_rules_is_refused_while_a_request_reaches_no_rule(
    load_problems,
):
    # Every rule decides alike, but DELETE /admin/users reaches none (no_route): a yes cached
    # for GET /a would open it. Even catch-alls leave paths with an empty segment unreached.
    for routes in ("GET /a", "GET /b", "ANY /", "ANY /{proxy+}"), ("ANY /", "ANY /{proxy+}"):
        text = "version: 1\nresponse: simple\nrules:\n" + "".join(
            f"  - {{name: r{i}, route: '{route}', allow: \"token == 'x'\"}}\n" for i, route in enumerate(routes)
        )
        problem = only(load_problems(text))
        assert "reaches no rule and is denied (no_route)" in problem.message and problem.pos.line == 2


@pytest.mark.parametrize(
    "extra, allow_b",
    [
        ("cache: {mode: route}\n", "\"token == 'y'\""),
        ("cache: {mode: disabled}\n", "\"token == 'y'\""),
    ],
)
def test_response_simple_loads_when_one_answer_per_caller_is_right(load_rules, extra, allow_b):
    load_rules(
        f"version: 1\nresponse: simple\n{extra}rules:\n"
        f"  - {{name: a, route: GET /a, allow: \"token == 'x'\"}}\n  - {{name: b, route: GET /b, allow: {allow_b}}}\n"
    )


def test_problem_format_is_file_line_col_severity_rule_message(load_problems, tmp_path):
    problem = only(load_problems(RULE.format(allow="tokn")))
    assert re.fullmatch(
        rf"{re.escape(str(tmp_path))}/rules\.yaml:5:12: error: rule 'a': allow: unknown variable 'tokn'; did you mean 'token'\?",
        problem.format(),
    )
    assert problem.severity == ERROR
