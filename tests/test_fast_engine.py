"""The optional cel-expr-python engine: selection, load-time type errors, strict results, parity.

These tests choose engines explicitly, so they mean the same with or without RULEAUTH_ENGINE.
"""

import datetime

import pytest

from ruleauth.cel import evaluation as ev
from ruleauth.cel import fast_engine
from ruleauth.cel.compiler import CEL_EXPR_PYTHON, CEL_PYTHON, Compiler, ExpressionError
from ruleauth.errors import RulesError
from ruleauth.rules import loader as rules_loader
from ruleauth.runtime.authorizer import Authorizer
from ruleauth.tools import explain
from ruleauth.tools.synthetic_events import build_event

pytestmark = pytest.mark.skipif(not fast_engine.available(), reason="cel-expr-python is not installed")

NOW = 1_800_000_000.0
FAST = CEL_EXPR_PYTHON

RULES = """\
version: 1
engine: {engine}
cache: {{mode: disabled}}
define:
  odd: int(token) % 2 == 1
rules:
  - name: r
    route: GET /r
    auth: token
    allow: {allow}
"""


def load(write_rules, allow, engine=FAST, override=None):
    return rules_loader.load(write_rules(RULES.format(engine=engine, allow=allow)), engine_override=override)


def problems(write_rules, text, override=None):
    with pytest.raises(RulesError) as caught:
        rules_loader.load(write_rules(text), engine_override=override)
    return caught.value.problems


def decide(write_rules, allow, token="17", engine=FAST):
    auth = Authorizer(load(write_rules, allow, engine, override=engine))
    event = build_event("rest-request", "GET", "/r", headers={"Authorization": token})
    return auth.authorize(event, now=NOW)


def plain_activation(**overrides):
    activation = {
        "token": "",
        "claims": {},
        "scopes": [],
        "auth": {"provider": ""},
        "request": {"method": "GET", "headers": {}},
        "now": ev.utc_datetime(NOW),
        "now_unix": int(NOW),
    }
    activation.update(overrides)
    return activation


def run(engine, text, defines=None, **variables):
    compiled = Compiler(defines or {}, jwt_configured=True, engine=engine).compile(text)
    return ev.evaluate(compiled, ev.activation_for(engine, plain_activation(**variables)))


# --- selection ------------------------------------------------------------------------------


def test_the_engine_key_selects_cel_cpp_for_every_expression(write_rules):
    ruleset = load(write_rules, "odd")
    assert ruleset.engine == FAST
    assert all(rule.allow.engine == FAST for rule in ruleset.rules)


def test_the_override_beats_the_file_both_ways(write_rules, monkeypatch):
    assert load(write_rules, "odd", engine=FAST, override=CEL_PYTHON).engine == CEL_PYTHON
    monkeypatch.setenv("RULEAUTH_ENGINE", FAST)
    assert load(write_rules, "odd", engine=CEL_PYTHON).engine == FAST
    monkeypatch.setenv("RULEAUTH_ENGINE", "cel-go")
    with pytest.raises(RulesError, match="RULEAUTH_ENGINE must be one of cel-python, cel-expr-python"):
        load(write_rules, "odd")


def test_an_unknown_engine_name_is_a_load_error(write_rules, monkeypatch):
    monkeypatch.delenv("RULEAUTH_ENGINE", raising=False)
    found = problems(write_rules, RULES.format(engine="cel-go", allow="odd"))
    assert "engine must be one of cel-python, cel-expr-python" in found[0].message


def test_the_fast_engine_without_its_package_is_a_load_error_naming_the_extra(write_rules, monkeypatch):
    monkeypatch.delenv("RULEAUTH_ENGINE", raising=False)
    monkeypatch.setattr(fast_engine, "available", lambda: False)
    found = problems(write_rules, RULES.format(engine=FAST, allow="odd"))
    assert "ruleauth[fast]" in found[0].message and found[0].pos.line == 2


# --- load-time type checks ----------------------------------------------------------------


def test_a_type_error_is_a_load_error_at_the_operator(write_rules):
    text = RULES.format(engine=FAST, allow="\"token == '' || 1 + 'a' == 2\"")
    found = problems(write_rules, text, override=FAST)
    assert found[0].message == (
        "allow: engine cel-expr-python: found no matching overload for '_+_' applied to '(int, string)'"
    )
    line = text.splitlines()[found[0].pos.line - 1]
    assert line[found[0].pos.col - 1 :].startswith("+ 'a'")
    # cel-python does not type-check: the same rule loads and errors (denies) at run time.
    assert load(write_rules, "\"token == '' || 1 + 'a' == 2\"", override=CEL_PYTHON).engine == CEL_PYTHON
    assert decide(write_rules, "\"token == '' || 1 + 'a' == 2\"", engine=CEL_PYTHON).decision.reason == "rule_error"


def test_a_type_error_in_a_literal_block_is_placed_on_its_own_line(write_rules):
    text = RULES.format(engine=FAST, allow="|\n      token != ''\n      && size(token) == 'x'")
    found = problems(write_rules, text, override=FAST)
    assert "no matching overload for '_==_'" in found[0].message
    line = text.splitlines()[found[0].pos.line - 1]
    assert line.strip().startswith("&& size(token)") and line[found[0].pos.col - 1 :].startswith("== 'x'")


def test_a_type_error_inside_a_define_names_the_define(write_rules):
    text = RULES.format(engine=FAST, allow="odd && bad").replace(
        "  odd: int(token) % 2 == 1", "  odd: int(token) % 2 == 1\n  bad: \"token + 1 == 'x'\""
    )
    found = problems(write_rules, text, override=FAST)
    assert "(in define 'bad')" in found[0].message and "no matching overload" in found[0].message


def test_unknown_names_are_still_reported_by_the_shared_checks_with_did_you_mean(write_rules):
    found = problems(write_rules, RULES.format(engine=FAST, allow="tokn == ''"), override=FAST)
    assert "unknown variable 'tokn'; did you mean 'token'?" in found[0].message


# --- defines inlined as text ----------------------------------------------------------------


def test_defines_are_inlined_textually_recursively_and_behind_comments():
    defines = {"a": "token == 'x' // a comment ends the definition's line", "b": "a || token == 'y'", "g": "'admin'"}
    compiler = Compiler(defines, jwt_configured=True, engine=FAST)
    compiled = compiler.compile("b && !(g in scopes)")
    assert compiled.defines == {"a", "b", "g"}
    for token, expected in (("x", ev.TRUE), ("y", ev.TRUE), ("z", ev.FALSE)):
        assert ev.evaluate(compiled, ev.activation_for(FAST, plain_activation(token=token))).kind == expected


def test_a_macro_variable_named_like_a_define_is_not_inlined():
    compiler = Compiler({"g": "'admin'"}, jwt_configured=True, engine=FAST)
    compiled = compiler.compile("claims.groups.exists(g, g == 'ops')")
    activation = ev.activation_for(FAST, plain_activation(claims={"groups": ["ops"]}))
    assert ev.evaluate(compiled, activation).kind == ev.TRUE


# --- strict results: E1, E2, only an exact true allows ------------------------------------------


def test_E01_an_error_value_has_a_truthy_message_and_never_allows():
    expression = fast_engine.compile_expression("1 / 0 == 1")
    value = fast_engine.evaluate(expression, fast_engine.Activation(plain_activation()))
    assert fast_engine.kind_of(value) == fast_engine.ERROR and value.value()  # truthy: `if value.value():` would allow
    result = ev.classify_fast(value)
    assert result.kind == ev.ERROR and not result.allows and result.error_class == "ZeroDivisionError"


@pytest.mark.parametrize(
    "text, error_class",
    [
        ("request.headers['x-missing'] == 'a'", "KeyError"),
        ("int(token) % 2 == 1", "ValueError"),
        ("9223372036854775807 + 1 > 0", "ValueError"),
        ("request.headers.x.matches('(a)\\\\1')", "ValueError"),
        ("claims.s > 1", "TypeError"),
    ],
)
def test_E01_errors_deny_and_log_cel_python_s_error_class_never_the_message(text, error_class):
    result = run(FAST, text, token="abc", claims={"s": "x"}, request={"headers": {"x": "aa"}})
    assert result.kind == ev.ERROR and not result.allows and result.error_class == error_class


@pytest.mark.parametrize(
    "text", ["'abc'", "[true]", "1", "1u", "1.5", "{'a': true}", "b'x'", "null", "now", "duration('1s')", "type(true)"]
)
def test_E02_non_bool_results_never_allow(text):
    result = run(FAST, text)
    assert result.kind == ev.NON_BOOL and not result.allows


def test_a_claim_beyond_int64_is_an_error_not_a_crash():
    result = run(FAST, "claims.n > 0", claims={"n": 2**70})
    assert result.kind == ev.ERROR and not result.allows


def test_end_to_end_only_an_exact_true_allows(write_rules):
    assert decide(write_rules, "odd", token="17").decision.outcome == "allow"
    assert decide(write_rules, "odd", token="2").decision.reason == "rule_false"
    assert decide(write_rules, "odd", token="abc").decision.reason == "rule_error"
    assert decide(write_rules, "\"'true'\"").decision.reason == "rule_non_bool"


# --- the same decisions on both engines ----------------------------------------------------------

PARITY = [
    "'admin' in claims.groups",
    "claims.groups.exists(g, g.startsWith('team-'))",
    "claims.groups.all(g, size(g) > 2)",
    "claims.groups.filter(g, g.endsWith('s')).size() == 1",
    "has(claims.tenant) && claims.tenant == 'acme'",
    "has(claims.missing)",
    "int(claims.exp) - now_unix > 60",
    "now < timestamp('2030-01-01T00:00:00Z')",
    "'orders:read' in claims.scope.split(' ')",
    "split(claims.scope, ' ').size() == 2",
    "claims.scope.split(' ').join(',') == 'openid,orders:read'",
    "lowerAscii(claims.tenant) == 'acme' && 'ACME'.lowerAscii() == 'acme'",
    "upperAscii('a') == 'A' && ' a '.trim() == 'a' && trim(' b') == 'b'",
    "request.headers['x-tenant'] == claims.tenant",
    "request.headers['x-missing'] == 'a'",
    "request.headers['x-missing'] == 'a' || true",
    "request.headers['x-missing'] == 'a' || false",
    "request.method == 'GET' && request.headers.x_y == '1'",
    "claims.sub.matches('^u[0-9]+$')",
    "int(token) % 2 == 1",
    "claims.n + 1 == 2",
    "claims.n / 0 == 1",
    "claims.flag == true",
    "!claims.flag",
    "claims.nested.a.b[1] == 2",
    "claims.groups[5] == 'x'",
    "size(token) < 3 ? claims.sub == 'u1' : false",
    "''.split('') == []",
    "claims.groups.join() == 'adminopsteam-a'",
    "scopes.exists(s, s == 'orders:read')",
    "auth.provider == 'corp'",
    "'user-' + claims.sub",
    "claims.groups",
]


@pytest.mark.parametrize("text", PARITY)
def test_both_engines_reach_the_same_outcome(text):
    variables = dict(
        token="17",
        claims={
            "sub": "u1",
            "groups": ["admin", "ops", "team-a"],
            "tenant": "ACME".lower(),
            "exp": int(NOW) + 300,
            "scope": "openid orders:read",
            "n": 1,
            "flag": False,
            "nested": {"a": {"b": [1, 2]}},
        },
        scopes=["openid", "orders:read"],
        auth={"provider": "corp"},
        request={"method": "GET", "headers": {"x-tenant": "acme", "x_y": "1"}},
    )
    slow, fast = run(CEL_PYTHON, text, **variables), run(FAST, text, **variables)
    assert (fast.kind, fast.error_class) == (slow.kind, slow.error_class), text
    if slow.kind == ev.NON_BOOL:
        assert ev.context_value(fast.value) == ev.context_value(slow.value)


@pytest.mark.parametrize("text", ["now", "duration('90s')", "[1, 'a', true]", "{'b': 1, 'a': [2.5]}", "2.5 * 2.0"])
def test_context_values_are_the_same_text_on_both_engines(text):
    assert ev.context_value(run(FAST, text).value) == ev.context_value(run(CEL_PYTHON, text).value)


def test_principal_and_context_on_the_fast_engine(write_rules):
    text = RULES.format(engine=FAST, allow="odd") + (
        "principal: \"'caller-' + request.method\"\n"
        "context:\n  parity: \"[request.path.size() % 2, 'odd']\"\n  at: now\n"
    )
    auth = Authorizer(rules_loader.load(write_rules(text), engine_override=FAST))
    result = auth.authorize(build_event("rest-request", "GET", "/r", headers={"Authorization": "17"}), now=NOW)
    assert result.decision.outcome == "allow" and result.decision.principal == "caller-GET"
    assert result.decision.context == {"parity": '[0,"odd"]', "at": "2027-01-15T08:00:00Z"}


def test_the_activation_converts_each_input_once_per_request():
    activation = fast_engine.Activation(plain_activation(token="17"))
    assert activation.cel() is activation.cel()
    assert isinstance(activation["now"], datetime.datetime)


def test_dry_run_explains_with_cel_python_and_says_so(write_rules):
    auth = Authorizer(load(write_rules, "odd", override=FAST))
    authorization = auth.authorize(build_event("rest-request", "GET", "/r", headers={"Authorization": "2"}), now=NOW)
    summary = explain.explain(auth, authorization).summary
    assert "was false" in summary and "decided by cel-expr-python" in summary and "re-run with cel-python" in summary


def test_a_compiler_refuses_an_unknown_engine():
    with pytest.raises(ValueError, match="unknown CEL engine"):
        Compiler({}, engine="cel-go")


def test_an_expression_cel_cpp_cannot_parse_is_a_load_error_not_a_crash():
    # Both parsers accept the same grammar today; whatever cel-cpp refuses still becomes an ExpressionError.
    with pytest.raises(ExpressionError, match="engine cel-expr-python"):
        Compiler({}, engine=FAST).compile("1 == 'a'")
