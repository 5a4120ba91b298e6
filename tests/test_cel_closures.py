"""Rules compiled to closures answer as cel-python's interpreter does.

cel-python rules run as compiled closures (ruleauth/cel/closures.py) unless they use
something outside the compiled subset. Both follow CEL's numbers, equality, ordering,
`in` and `has()` (cel/numeric.py; cel/interpreter.py overrides cel-python's own), so on
generated expressions over a fixed request the two answers are equal. Where cel-python
still departs from the CEL specification in ways ruleauth does not override (listed in
test_the_compiled_form_is_stricter_where_cel_python_still_departs_from_the_spec), the
compiled answer is an error and Google's cel-cpp is the reference: it answers as the
compiled form does, or refuses the expression at load.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ruleauth.cel import closures as cel_closures
from ruleauth.cel import evaluation as ev
from ruleauth.cel.compiler import CLOSURES, INTERPRETER, Compiler, ExpressionError

PLAIN = {
    "token": "tok-17",
    "claims": {
        "sub": "user-1",
        "n": 7,
        "big": 2**62,
        "f": 1.5,
        "neg": -3,
        "zero": 0,
        "ok": True,
        "no": False,
        "none": None,
        "tenant": "acme",
        "csv": "a,b,c",
        "empty": "",
        "MiXeD": "Hello World",
        "groups": ["admin", "team-a", "team-b"],
        "nums": [1, 2, 3],
        "mixed": [1, "a", True],
        "nested": {"team": {"id": "t1", "level": 3}, "tags": ["x"]},
    },
    "scopes": ["orders:read", "orders:write"],
    "auth": {"provider": "corp"},
    "request": {
        "method": "GET",
        "path": "/orders/42",
        "route": "/orders/{id}",
        "params": {"id": "42"},
        "headers": {"x-tenant": "acme", "x-num": "12"},
        "query": {"q": "1"},
        "cookies": {},
        "stage_variables": {},
        "source_ip": "10.0.0.1",
        "stage": "prod",
        "resource": "/orders/{id}",
        "api_id": "abc",
        "account_id": "123456789012",
        "region": "eu-west-1",
    },
    "now_unix": 1_800_000_000,
}

CLOSURE_COMPILER = Compiler({}, jwt_configured=True, engine="cel-python", interpreter_only=False)
INTERPRETER_COMPILER = Compiler({}, jwt_configured=True, engine="cel-python", interpreter_only=True)
FAST_COMPILER = Compiler({}, jwt_configured=True, engine="cel-expr-python")


def both(text: str) -> tuple[ev.Result, ev.Result]:
    compiled = CLOSURE_COMPILER.compile(text)
    reference = INTERPRETER_COMPILER.compile(text)
    assert compiled.runs_on == CLOSURES and reference.runs_on == INTERPRETER
    return (
        ev.evaluate(compiled, ev.activation_for("cel-python", PLAIN)),
        ev.evaluate(reference, ev.activation_for("cel-python", PLAIN)),
    )


def same_answer(compiled: ev.Result, reference: ev.Result) -> bool:
    if compiled.kind != reference.kind:
        return False
    if compiled.kind == ev.NON_BOOL:
        value, expected = ev.to_plain(compiled.value), ev.to_plain(reference.value)
        return _same_floats(value) == _same_floats(expected) and _types(value) == _types(expected)
    return compiled.kind == ev.ERROR or compiled.value == reference.value


def _same_floats(value):
    """NaN as a string, so that two NaN results compare equal."""
    if isinstance(value, float) and value != value:
        return "NaN"
    if isinstance(value, list):
        return [_same_floats(v) for v in value]
    if isinstance(value, dict):
        return {k: _same_floats(v) for k, v in value.items()}
    return value


def _types(value):
    if isinstance(value, list):
        return [_types(v) for v in value]
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items()}
    return type(value).__name__


def agrees(text: str) -> None:
    compiled, reference = both(text)
    if same_answer(compiled, reference):
        return
    # One of the two departs from CEL. cel-python does where ruleauth does not override it:
    # a macro over a string (`'ab'.exists(x, ...)` iterates its characters), `size(null)`,
    # `&&` returning a non-boolean operand,
    # an error inside map() escaping `false && ...`, a method call on a string it made itself
    # (`('a' + 'b').contains('a')`: its `+` returns a plain str). There the compiled form
    # errors, or answers as Google's cel-cpp, the reference, does.
    assert ev.ERROR in (compiled.kind, reference.kind), (text, compiled, reference)
    try:
        fast = FAST_COMPILER.compile(text)
    except ExpressionError:
        return  # ill-typed (`(0).exists(x, x) && false`): cel-cpp refuses it, nothing answers it
    cel = ev.evaluate(fast, ev.activation_for(fast.engine, PLAIN))
    if compiled.kind == ev.ERROR:
        # The compiled form denies where cel-python answers: only where cel-python's answer is not CEL's.
        assert not same_answer(reference, cel), (text, reference, cel)
    else:
        assert same_answer(compiled, cel), (text, compiled, cel)


# -- the same answers ----------------------------------------------------------------


@pytest.mark.parametrize(
    "text, kind",
    [
        ("'orders:read' in scopes", ev.TRUE),
        ("'admin' in claims.groups && claims.tenant == 'acme'", ev.TRUE),
        ("has(claims.groups) && claims.groups.exists(g, g.startsWith('team-'))", ev.TRUE),
        ("claims.groups.all(g, g.size() > 3)", ev.TRUE),
        ("claims.groups.exists_one(g, g == 'admin')", ev.TRUE),
        ("claims.nums.map(n, n * 2) == [2, 4, 6]", ev.TRUE),
        ("claims.nums.filter(n, n % 2 == 1) == [1, 3]", ev.TRUE),
        ("claims.nested.team.level >= 3 && claims.nested['team'].id == 't1'", ev.TRUE),
        ("request.headers['x-tenant'] == claims.tenant", ev.TRUE),
        ("int(request.headers['x-num']) + 1 == 13", ev.TRUE),
        ("int(claims.f) == 1 && double(claims.n) == 7.0", ev.TRUE),
        ("string(claims.n) + '-' + token == '7-tok-17'", ev.TRUE),
        ("claims.csv.split(',').size() == 3 && ['a', 'b'].join('+') == 'a+b'", ev.TRUE),
        ("claims.MiXeD.lowerAscii() == 'hello world' && '  x '.trim() == 'x'", ev.TRUE),
        ("request.path.matches('^/orders/[0-9]+$')", ev.TRUE),
        ("claims.none == null", ev.TRUE),
        ("claims.ok ? claims.n > 5 : false", ev.TRUE),
        ("{'a': claims.n}.a == 7 && 'a' in {'a': 1}", ev.TRUE),
        ("-claims.neg == 3 && 7 / -2 == -3 && -7 % 2 == -1", ev.TRUE),
        ("now_unix - 60 > 1700000000", ev.TRUE),
        ("'orders:admin' in scopes", ev.FALSE),
        ("!claims.ok", ev.FALSE),
        ("claims.missing == 'x'", ev.ERROR),
        ("claims.missing == 'x' || true", ev.TRUE),
        ("false && claims.missing == 'x'", ev.FALSE),
        ("claims.missing == 'x' && true", ev.ERROR),
        ("1 / claims.zero == 1", ev.ERROR),
        ("claims.big * 4 > 0", ev.ERROR),
        ("claims.nums[3] == 1", ev.ERROR),
        ("[0, 1].all(x, 1 / x > 0)", ev.ERROR),
        ("[0, 1].exists(x, 1 / x > 0)", ev.TRUE),
        ("claims.n", ev.NON_BOOL),
        ("'user-' + claims.sub", ev.NON_BOOL),
        ("claims.groups.map(g, g.upperAscii())", ev.NON_BOOL),
    ],
)
def test_compiled_rules_answer_as_the_interpreter_does(text, kind):
    compiled, reference = both(text)
    assert compiled.kind == kind
    assert same_answer(compiled, reference), (compiled, reference)


def test_only_an_exact_boolean_true_allows():
    assert ev.classify_plain(True).allows
    for value in (1, "true", [True], {"a": True}, None, 1.0):
        assert not ev.classify_plain(value).allows


def test_compiled_errors_name_no_input_values():
    compiled = CLOSURE_COMPILER.compile("claims.secret_claim_name == 'x'")
    result = ev.evaluate(compiled, ev.activation_for("cel-python", PLAIN))
    assert result.kind == ev.ERROR and result.error_class == "KeyError"
    with pytest.raises(KeyError) as raised:
        compiled.evaluate(PLAIN)
    assert "secret" not in str(raised.value) and "user-1" not in str(raised.value)


def test_a_define_is_computed_once_per_request_activation():
    compiler = Compiler({"is_admin": "'admin' in claims.groups"}, engine="cel-python", interpreter_only=False)
    first, second = compiler.compile("is_admin && true"), compiler.compile("false || is_admin")
    activation = ev.activation_for("cel-python", PLAIN)
    assert ev.evaluate(first, activation).kind == ev.TRUE
    assert activation.shared_values == {"is_admin": True}
    activation.shared_values["is_admin"] = False  # what the second rule reads is the shared value
    assert ev.evaluate(second, activation).kind == ev.FALSE
    # A copy (another table cell's request, a comprehension's scope) computes its own.
    assert ev.evaluate(second, dict(activation)).kind == ev.TRUE


def test_a_shared_define_that_fails_fails_every_rule_that_uses_it():
    compiler = Compiler({"broken": "claims.missing == 'x'"}, engine="cel-python", interpreter_only=False)
    activation = ev.activation_for("cel-python", PLAIN)
    for text in ("broken", "broken && true", "broken || false"):
        assert ev.evaluate(compiler.compile(text), activation).kind == ev.ERROR
    assert ev.evaluate(compiler.compile("broken || true"), activation).kind == ev.TRUE


# -- where cel-python departed from CEL: now CEL's answer on all three engines -------


@pytest.mark.parametrize(
    "text, kind",
    [
        ("claims.n == 'a'", ev.FALSE),  # values of different types are unequal
        ("claims.n != 'a'", ev.TRUE),
        ("claims.ok == 1", ev.FALSE),  # cel-python's bool was an int
        ("claims.n == 7.0 && claims.f == 1.5", ev.TRUE),  # numbers compare by value
        ("claims.nums == [1.0, 2.0, 3.0]", ev.TRUE),
        ("claims.f * 2 == 3.0", ev.ERROR),  # cel-python multiplied a double by an int
        ("true in claims.nums", ev.FALSE),  # cel-python used Python's `in`, where true == 1
        ("!(true in claims.nums)", ev.TRUE),
        ("1 in [1.0] && 'a' in claims.mixed", ev.TRUE),
        ("has(claims.tenant.x)", ev.ERROR),  # cel-python: false on a string
        ("!has(claims.tenant.x)", ev.ERROR),
        ("!has(claims.missing.x)", ev.ERROR),  # cel-python: false when the parent fails
        ("0.0 / 0.0 == 0.0 / 0.0", ev.FALSE),  # cel-python: inf; CEL: NaN, equal to nothing
        ("1.0 / -0.0 < 0.0", ev.TRUE),  # cel-python: inf; CEL: -inf
        ("1.0 / 0.0 > 1.0e308", ev.TRUE),
        ("dyn(9223372036854775808.0) > 9223372036854775807", ev.FALSE),
        ("int(-9223372036854775808.0) < 0", ev.ERROR),
    ],
)
def test_where_cel_python_departed_from_the_spec_every_engine_gives_cels_answer(text, kind):
    compiled, reference = both(text)
    assert compiled.kind == reference.kind == kind, (compiled, reference)
    try:
        fast = FAST_COMPILER.compile(text)
    except ExpressionError:
        return  # cel-cpp's type checker refuses it (`claims.ok == 1` is fine, `1 in [1.0]` is not)
    assert ev.evaluate(fast, ev.activation_for(fast.engine, PLAIN)).kind == kind


# -- where cel-python still departs: the compiled form denies ------------------------


@pytest.mark.parametrize(
    "text",
    [
        "true && claims.n == 7 && claims.n",  # cel-python returns 7, the spec an error
        "size(claims.none) == 0",  # cel-python: 0
        "int(claims.ok) == 1",  # no int(bool) in the spec's table (cel-cpp has one: 1)
    ],
)
def test_the_compiled_form_is_stricter_where_cel_python_still_departs_from_the_spec(text):
    compiled, reference = both(text)
    assert compiled.kind == ev.ERROR, (compiled, reference)


@pytest.mark.parametrize(
    "text, kind",
    [
        ("claims.nums[-1] == 3", ev.ERROR),  # cel-python's own indexing counts from the end
        ("claims.nums[dyn(0.0)] == 1", ev.TRUE),  # a whole double indexes a list
        ("claims.nums[dyn(0.5)] == 1", ev.ERROR),
    ],
)
def test_list_indexes_are_cels_on_both_paths(text, kind):
    compiled, reference = both(text)
    assert (compiled.kind, reference.kind) == (kind, kind)


@pytest.mark.parametrize(
    "text",
    [
        "now > timestamp('2020-01-01T00:00:00Z')",
        "now - duration('1h') < now && now + duration('1h') > now",
        "duration('1h') > duration('1m')",
        "duration('1h30m').getMinutes() == 90 && duration('-1.5s').getSeconds() == -1",
        "timestamp('2009-02-13T23:31:30Z').getFullYear() == 2009",
        "timestamp('2009-02-13T23:31:30Z').getHours('+02:00') == 1",
        "int(timestamp('2009-02-13T23:31:30Z')) == 1234567890",
        "b'x' == b'x' && b'ab' < b'b' && size(b'abc') == 3 && b'a' + b'b' == b'ab'",
        "string(b'\\xc3\\xa9') == '\\u00e9'",
        "'a\\n'.size() == 2",
        "string(claims.ok) == 'true' && string(false) == 'false'",
        "string(duration('-1.5s')) == '-1.500s' && duration('-1.5s').getMilliseconds() == -500",
        "string(timestamp('2009-02-13T23:31:30.25Z')) == '2009-02-13T23:31:30.250Z'",
        "string(now) == '2027-01-15T08:00:00Z'",
        "'\\x4a\\X4c\\101\\u01aB\\U0001F62C\\?\\`' == 'JLAƫ😬?`'",
    ],
)
def test_timestamps_durations_bytes_and_escapes_compile_to_closures_and_agree(text):
    compiled = CLOSURE_COMPILER.compile(text)
    assert compiled.runs_on == CLOSURES
    activation = ev.activation_for("cel-python", {**PLAIN, "now": ev.utc_datetime(1_800_000_000)})
    assert ev.evaluate(compiled, activation).kind == ev.TRUE
    reference = INTERPRETER_COMPILER.compile(text)
    assert ev.evaluate(reference, ev.activation_for("cel-python", activation)).kind == ev.TRUE


@pytest.mark.parametrize(
    "text, cel_answer",
    [
        ("string(timestamp('9999-12-31T23:59:59.999999999Z')) == '9999-12-31T23:59:59.999999999Z'", ev.TRUE),
        ("timestamp('2009-02-13T23:31:30Z') + duration('240s') == timestamp('2009-02-13T23:35:30Z')", ev.TRUE),
        ("timestamp('2009-02-13T23:31:30.123456789Z') != timestamp('2009-02-13T23:31:30.123456788Z')", ev.TRUE),
        ("timestamp('9999-12-31T23:59:59.999999999Z') + duration('1ns') > now", ev.ERROR),
        ("now - timestamp('0001-01-01T00:00:00Z') > duration('1s')", ev.ERROR),
        ("duration('200000000000s') > duration('1s')", ev.ERROR),
        ("timestamp(1234567890) == timestamp('2009-02-13T23:31:30Z')", ev.TRUE),
        ("timestamp(claims.sub) == now", ev.ERROR),
        ("[duration('1s')].exists(d, d + d == duration('2s'))", ev.TRUE),
    ],
)
def test_what_the_interpreter_answers_wrongly_is_refused_at_load_on_it_and_compiled_as_cel_says(text, cel_answer):
    activation = ev.activation_for("cel-python", {**PLAIN, "now": ev.utc_datetime(1_800_000_000)})
    compiled = CLOSURE_COMPILER.compile(text)
    assert compiled.runs_on == CLOSURES
    assert ev.evaluate(compiled, activation).kind == cel_answer
    with pytest.raises(ExpressionError, match="runs on cel-python's interpreter"):
        INTERPRETER_COMPILER.compile(text)
    with pytest.raises(ExpressionError, match="runs on cel-python's interpreter"):  # the fallback
        CLOSURE_COMPILER.compile(f"1u == 1u && ({text})")


@pytest.mark.parametrize(
    "text",
    [
        "1u < 2u",
        "{1: 'a'}[1] == 'a'",
        "bool('true')",
    ],
)
def test_expressions_outside_the_compiled_subset_run_on_the_interpreter(text):
    with pytest.raises(cel_closures.Unsupported):
        cel_closures.compile_tree(CLOSURE_COMPILER.parse(text), {})
    compiled = CLOSURE_COMPILER.compile(text)
    assert compiled.runs_on == INTERPRETER
    activation = ev.activation_for("cel-python", {**PLAIN, "now": ev.utc_datetime(1_800_000_000)})
    assert ev.evaluate(compiled, activation).kind == ev.TRUE


def test_the_function_names_rules_may_use_are_cel_pythons_own():
    import celpy.evaluation

    from ruleauth.cel.compiler import CEL_PYTHON_FUNCTIONS

    assert set(CEL_PYTHON_FUNCTIONS) == {n for n in celpy.evaluation.base_functions if n[0].isalpha()}


def test_rules_that_all_compile_to_closures_never_import_cel_python(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(DEMO_LIKE)
    code = (
        "import sys, ruleauth.handler as h; from ruleauth.tools.synthetic_events import build_event\n"
        "event = build_event('rest-request', 'GET', '/hello', headers={'Authorization': '17'})\n"
        "assert h.handler(event, None)['policyDocument']['Statement'][0]['Effect'] == 'Allow'\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('celpy', 'pendulum')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "RULEAUTH_RULES": str(rules)},
    )
    assert done.stdout.strip().splitlines()[-1] == "[]"  # after the decision's log line


DEMO_LIKE = """\
version: 1
token: {header: Authorization}
cache: {mode: disabled}
rules:
  - name: odd
    route: GET /hello
    auth: token
    allow: "int(token) % 2 == 1 && !(token in ['x'])"
"""


def test_the_interpreter_can_be_forced_for_every_expression(monkeypatch):
    monkeypatch.setenv("RULEAUTH_CEL_INTERPRETER", "1")
    assert Compiler({}).compile("'a' in scopes").runs_on == INTERPRETER
    monkeypatch.setenv("RULEAUTH_CEL_INTERPRETER", "0")
    assert Compiler({}).compile("'a' in scopes").runs_on == CLOSURES


# -- generated expressions -----------------------------------------------------------

_INTS = st.sampled_from(["0", "1", "-1", "7", "3", "9223372036854775807", "-9223372036854775808", "0x10"])
_LITERALS = st.one_of(
    _INTS,
    st.sampled_from(["1.5", "0.0", "-2.0", "1e3"]),
    st.sampled_from(["'a'", "'acme'", "''", "'team-a'", '"admin"', "'a,b'", "r'x'", "'''ml'''"]),
    st.sampled_from(["true", "false", "null", "[]", "[1, 2]", "['a', 'b']", "{}", "{'a': 1}"]),
)
_VARIABLES = st.sampled_from(
    [
        "token",
        "scopes",
        "now_unix",
        "auth.provider",
        "claims.sub",
        "claims.n",
        "claims.big",
        "claims.f",
        "claims.neg",
        "claims.zero",
        "claims.ok",
        "claims.no",
        "claims.none",
        "claims.tenant",
        "claims.csv",
        "claims.empty",
        "claims.groups",
        "claims.nums",
        "claims.mixed",
        "claims.nested",
        "claims.nested.team",
        "claims.nested.team.level",
        "claims['tenant']",
        "claims.missing",
        "request.headers['x-tenant']",
        "request.headers",
        "request.params.id",
        "request.method",
        "request.path",
        "claims.nested.tags",
    ]
)
_BINARY = ["==", "!=", "<", "<=", ">", ">=", "in", "+", "-", "*", "/", "%", "&&", "||"]
_METHODS = [
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "split",
    "lowerAscii",
    "upperAscii",
    "trim",
    "matches",
    "join",
]
_FUNCTIONS = ["size", "int", "double", "string", "dyn"]
_MACROS = ["exists", "all", "exists_one", "map", "filter"]


def _extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    binary = st.tuples(inner, st.sampled_from(_BINARY), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})")
    unary = st.tuples(st.sampled_from(["!", "-"]), inner).map(lambda t: f"{t[0]}({t[1]})")
    ternary = st.tuples(inner, inner, inner).map(lambda t: f"({t[0]} ? {t[1]} : {t[2]})")
    method = st.tuples(inner, st.sampled_from(_METHODS), st.lists(inner, max_size=1)).map(
        lambda t: f"({t[0]}).{t[1]}({', '.join(t[2])})"
    )
    function = st.tuples(st.sampled_from(_FUNCTIONS), inner).map(lambda t: f"{t[0]}({t[1]})")
    index = st.tuples(inner, inner).map(lambda t: f"({t[0]})[{t[1]}]")
    listing = st.lists(inner, max_size=3).map(lambda items: f"[{', '.join(items)}]")
    # The body refers to the bound variable `x` through the inner expressions' `x` leaves.
    macro = st.tuples(inner, st.sampled_from(_MACROS), inner).map(lambda t: f"({t[0]}).{t[1]}(x, {t[2]})")
    has = st.sampled_from(
        [
            "has(claims.tenant)",
            "has(claims.missing)",
            "has(claims.nested.team)",
            "has(claims.tenant.x)",
            "has(request.headers.x)",
            "has(x.a)",
        ]
    )
    return st.one_of(binary, unary, ternary, method, function, index, listing, macro, has)


EXPRESSIONS = st.recursive(st.one_of(_LITERALS, _VARIABLES, st.just("x")), _extend, max_leaves=8)


# Well-typed expressions, so that most of them decide rather than fail: strings, ints,
# lists of strings and booleans over the request, with `x` a string bound by a macro.
def _typed():
    def binary(left, operators, right):
        return st.tuples(left, st.sampled_from(operators), right).map(lambda t: f"({t[0]} {t[1]} {t[2]})")

    strings = st.deferred(
        lambda: st.one_of(
            st.sampled_from(
                [
                    "'a'",
                    "'acme'",
                    "'team-a'",
                    "''",
                    "'A,b'",
                    "claims.sub",
                    "claims.tenant",
                    "token",
                    "request.method",
                    "request.headers['x-tenant']",
                    "auth.provider",
                    "x",
                    "claims.csv",
                ]
            ),
            binary(strings, ["+"], strings),
            st.tuples(strings, st.sampled_from(["lowerAscii", "upperAscii", "trim"])).map(lambda t: f"{t[0]}.{t[1]}()"),
            ints.map(lambda i: f"string({i})"),
            st.tuples(bools, strings, strings).map(lambda t: f"({t[0]} ? {t[1]} : {t[2]})"),
            st.tuples(lists, st.sampled_from(["0", "1", "2"])).map(lambda t: f"{t[0]}[{t[1]}]"),
        )
    )
    ints = st.deferred(
        lambda: st.one_of(
            st.sampled_from(
                [
                    "0",
                    "1",
                    "-3",
                    "7",
                    "9223372036854775807",
                    "claims.n",
                    "claims.neg",
                    "claims.zero",
                    "now_unix",
                    "claims.big",
                ]
            ),
            binary(ints, ["+", "-", "*", "/", "%"], ints),
            ints.map(lambda i: f"-({i})"),
            strings.map(lambda t: f"size({t})"),
            lists.map(lambda t: f"{t}.size()"),
            st.sampled_from(["int(request.headers['x-num'])", "int(claims.f)", "int('-12')", "int(claims.sub)"]),
        )
    )
    lists = st.deferred(
        lambda: st.one_of(
            st.sampled_from(["scopes", "claims.groups", "['a', 'team-a']", "[]", "claims.nested.tags"]),
            strings.map(lambda t: f"{t}.split(',')"),
            binary(lists, ["+"], lists),
            st.tuples(lists, bools).map(lambda t: f"{t[0]}.filter(x, {t[1]})"),
            st.tuples(lists, strings).map(lambda t: f"{t[0]}.map(x, {t[1]})"),
        )
    )
    bools = st.deferred(
        lambda: st.one_of(
            st.sampled_from(
                [
                    "true",
                    "false",
                    "claims.ok",
                    "claims.no",
                    "has(claims.tenant)",
                    "has(claims.missing)",
                    "claims.none == null",
                    "has(claims.nested.team)",
                ]
            ),
            binary(strings, ["==", "!=", "<", ">="], strings),
            binary(ints, ["==", "!=", "<", "<=", ">", ">="], ints),
            binary(strings, ["in"], lists),
            binary(lists, ["==", "!="], lists),
            st.tuples(strings, st.sampled_from(["startsWith", "endsWith", "contains"]), strings).map(
                lambda t: f"{t[0]}.{t[1]}({t[2]})"
            ),
            strings.map(lambda t: f"{t}.matches('^[a-z]+$')"),
            bools.map(lambda b: f"!({b})"),
            binary(bools, ["&&", "||", "==", "!="], bools),
            st.tuples(bools, bools, bools).map(lambda t: f"({t[0]} ? {t[1]} : {t[2]})"),
            st.tuples(lists, st.sampled_from(["exists", "all", "exists_one"]), bools).map(
                lambda t: f"{t[0]}.{t[1]}(x, {t[2]})"
            ),
        )
    )
    return bools


TYPED = _typed()


def _compiles(text: str) -> bool:
    try:
        CLOSURE_COMPILER.compile(text)
        INTERPRETER_COMPILER.compile(text)
    except ExpressionError:
        return False  # refused at load (e.g. `x` outside a comprehension): nothing runs
    return CLOSURE_COMPILER.compile(text).runs_on == CLOSURES


# Derandomized: CI runs the same examples every time. Wider random runs were made while
# building the compiler (last: 11,000 untyped and 13,000 well-typed expressions); each
# difference they found is either fixed or listed above as a departure of cel-python's.
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(EXPRESSIONS)
def test_generated_expressions_agree_with_the_interpreter_or_cel_cpp(text):
    if _compiles(text):
        agrees(text)


@settings(max_examples=800, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(TYPED)
def test_generated_well_typed_rules_agree_with_the_interpreter(text):
    if _compiles(text):
        agrees(text)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.binary()))
def test_every_string_and_bytes_value_reaches_the_interpreter_spelled_so_it_reads_it_back(value):
    import lark
    from celpy.evaluation import celbytes, celstr

    kind, text = cel_closures.canonical_literal(value)
    assert cel_closures.literal_text(text) == value
    read = (celbytes if kind == "BYTES_LIT" else celstr)(lark.Token(kind, text))
    assert (bytes(read) if kind == "BYTES_LIT" else str(read)) == value
