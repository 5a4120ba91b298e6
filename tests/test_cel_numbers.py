"""CEL's numbers are the same on every engine path, as the CEL specification says.

The three ways a rule runs: compiled closures (default), cel-python's interpreter
(RULEAUTH_CEL_INTERPRETER=1, and the fallback) and cel-expr-python (Google's cel-cpp).
Each case gives CEL's answer on each of them, or is refused at load (cel-cpp's type
checker refuses `1 == 1.0` written without `dyn`). Expectations are cel-spec's
conformance cases (tests/simple/testdata, named here by file/section/test) or, where
the suite is silent, CEL's rules in docs/cel-numbers.md; never an engine's output.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ruleauth.cel import evaluation as ev
from ruleauth.cel.compiler import CEL_EXPR_PYTHON, CLOSURES, INTERPRETER, Compiler
from ruleauth.errors import RulesError
from ruleauth.runtime.authorizer import Authorizer
from ruleauth.tools.synthetic_events import build_event
from tests.jwt_support import AUDIENCE, ISSUER, NOW, default_jwks, token

PATHS = (CLOSURES, INTERPRETER, CEL_EXPR_PYTHON)
INT64_MIN, INT64_MAX, UINT64_MAX = -(2**63), 2**63 - 1, 2**64 - 1

RULES = """\
version: 1
%(engine)s
token: {header: Authorization, scheme: Bearer}
cache: {mode: disabled}
jwt:
  issuer: %(issuer)s
  audience: [%(audience)s]
  algorithms: [RS256]
  jwks_file: jwks.json
context:
  n: "claims.n"
  method: "request.method"
rules:
  - name: r
    route: GET /r
    allow: %(allow)s
"""


@pytest.fixture(params=PATHS)
def path(request, monkeypatch):
    monkeypatch.delenv("RULEAUTH_ENGINE", raising=False)
    monkeypatch.setenv("RULEAUTH_CEL_INTERPRETER", "1" if request.param == INTERPRETER else "0")
    return request.param


@pytest.fixture
def rules_file(tmp_path, path):
    """rules_file(allow) → an Authorizer for one rule on GET /r, on this engine path."""
    (tmp_path / "jwks.json").write_bytes(default_jwks())

    def load(allow: str) -> Authorizer:
        engine = "engine: cel-expr-python" if path == CEL_EXPR_PYTHON else ""
        text = RULES % {"engine": engine, "issuer": ISSUER, "audience": AUDIENCE, "allow": json.dumps(allow)}
        (tmp_path / "rules.yaml").write_text(text)
        return Authorizer.load(tmp_path / "rules.yaml")

    return load


def ask(authorizer: Authorizer, claims: dict | None = None, signed: str | None = None):
    headers = {"Authorization": f"Bearer {signed or 'offline'}"}
    event = build_event("rest-request", "GET", "/r", headers=headers)
    if signed is not None:
        return authorizer.authorize(event, now=NOW + 1)
    return authorizer.authorize(event, now=NOW + 1, claims={"sub": "u", **(claims or {})})


# -- JSON integers outside int64 in claims: every use of `claims` is an error ------------

FITTING = [0, INT64_MAX, INT64_MIN, 2**53 + 1, -(2**53) - 1]
NOT_FITTING = [2**63, INT64_MIN - 1, UINT64_MAX, 2**64, 10**400, -(10**400)]


@pytest.mark.parametrize("n", NOT_FITTING)
@pytest.mark.parametrize("where", ["top", "list", "nested"])
def test_claims_holding_an_integer_outside_int64_make_every_rule_that_reads_claims_an_error(rules_file, n, where):
    claims = {"top": {"n": n}, "list": {"n": 7, "l": [1, n]}, "nested": {"n": 7, "m": {"deep": [{"x": n}]}}}[where]
    for allow in (
        "claims.n > 5",
        "!has(claims.n)",
        "claims.sub == 'u'",
        "size(claims) > 0",
        "!(claims.n == 'x')",
        "[claims].size() == 1",
        "claims.exists(k, k == 'sub')",
    ):
        result = ask(rules_file(allow), claims)
        assert (result.decision.outcome, result.decision.reason) == ("deny", "rule_error"), (allow, n)
        assert "n" not in result.decision.context
        assert ("n", "KeyError") in result.decision.omitted_context
    # What does not read claims is unaffected, and an error that another operand decides is
    # absorbed as CEL says.
    for allow in ("request.method == 'GET'", "claims.n > 5 || request.method == 'GET'"):
        result = ask(rules_file(allow), claims)
        assert result.decision.outcome == "allow", allow
        assert result.decision.context["method"] == "GET"


@pytest.mark.parametrize("n", FITTING)
def test_claims_holding_int64_integers_compare_and_reach_the_context_exactly(rules_file, n):
    result = ask(rules_file("claims.n > 5"), {"n": n})
    assert result.decision.outcome == ("allow" if n > 5 else "deny")
    assert result.decision.context["n"] == n and type(result.decision.context["n"]) is int


CACHED_RULES = """\
version: 1
token: {header: Authorization, scheme: Bearer}
jwt:
  issuer: %s
  audience: [%s]
  algorithms: [RS256]
  jwks_file: jwks.json
rules:
  - name: r
    route: GET /r
    allow: "claims.sub == 'u'"
"""


def test_the_caller_view_tells_claims_cel_cannot_hold_from_claims_it_can(tmp_path, monkeypatch):
    # cache.mode identity keys answers on the claims the rules read (here sub): a caller whose
    # token also carries 2^64 must not share answers with one whose token does not.
    monkeypatch.delenv("RULEAUTH_ENGINE", raising=False)
    monkeypatch.delenv("RULEAUTH_CEL_INTERPRETER", raising=False)
    (tmp_path / "jwks.json").write_bytes(default_jwks())
    (tmp_path / "rules.yaml").write_text(CACHED_RULES % (ISSUER, AUDIENCE))
    authorizer = Authorizer.load(tmp_path / "rules.yaml")
    plain, huge = token(sub="u"), token(sub="u", big=2**64)
    for first, second in ((plain, huge), (huge, plain)):
        assert ask(authorizer, signed=first).decision.outcome == ("allow" if first is plain else "deny")
        assert ask(authorizer, signed=second).decision.outcome == ("allow" if second is plain else "deny")


# -- literal cases: CEL's answer or refused at load, on every path ------------------------

# (expression, expected): True/False, "error", or a number the rule compares its result to.
CASES = [
    # comparisons.textproto
    ("dyn(1) == 1.0", True),  # eq_literal/eq_int_double
    ("1.0 == 1", True),  # eq_literal/eq_mixed_types
    ("dyn(1u) == 1", True),  # eq_literal/eq_uint_int
    ("dyn(1) == 1u", True),  # eq_literal/eq_int_uint
    ("dyn(2) == 1.0", False),  # eq_literal/not_eq_int_double
    ("0.0/0.0 == 0.0/0.0", False),  # eq_literal/not_eq_double_nan
    ("dyn(1) == 0.0/0.0", False),  # eq_literal/not_eq_int_double_nan
    ("0.0/0.0 != 0.0/0.0", True),  # ne_literal/not_ne_double_nan
    ("[1] == [1.0]", True),  # eq_literal/eq_list_elem_mixed_types
    ("[1.0, 2.0, 3] == [1u, 2, 3u]", True),  # eq_literal/eq_list_mixed_type_numbers
    ("[1.0, 2.1] == [1u, 2]", False),  # eq_literal/not_eq_list_mixed_type_numbers
    ("[1, 'dos', 3] == [1, 2, 4]", False),  # eq_literal/not_eq_list_false_vs_types
    ("{1: 1.0, 2u: 3u} == {1u: 1, 2: 3.0}", True),  # eq_literal/eq_map_mixed_type_numbers
    ("{'k':'v', 1:1} == {'k':'v', 1:'v1'}", False),  # eq_literal/eq_map_value_mixed_types
    ("dyn(1) == null", False),  # eq_literal/not_eq_dyn_int_null
    ("dyn(false) == null", False),  # eq_literal/not_eq_dyn_bool_null
    ("dyn(1) < 2.0", True),  # lt_literal/lt_dyn_int_double
    ("dyn(9223372036854775807) < 9223372036854775808.0", False),  # lt_literal/not_lt_dyn_int_big_lossy_double
    ("dyn(9223372036854775807) < 9223372036854777857.0", True),  # lt_literal/lt_dyn_int_big_lossy_double
    ("dyn(-9223372036854775808) < -9223372036854775809.0", False),  # lt_literal/not_lt_dyn_int_small_lossy_double
    ("dyn(9223372036854775808.0) < 9223372036854775807", False),  # lt_literal/not_lt_dyn_big_double_int
    ("dyn(9223372036854775808.0) > 9223372036854775807", False),  # gt_literal/not_gt_dyn_big_double_int
    ("dyn(9223372036854775807) > 9223372036854775808.0", False),  # gt_literal/not_gt_dyn_int_big_double
    ("dyn(9223372036854775807) <= 9223372036854775808.0", True),  # lte_literal/lte_dyn_int_big_double
    ("dyn(9223372036854775807) >= 9223372036854775808.0", True),  # gte_literal/gte_dyn_int_big_lossy_double
    ("dyn(-9223372036854775808) >= -9223372036854775809.0", True),  # gte_literal/gte_dyn_int_small_lossy_double_equal
    ("dyn(18446744073709551615u) > 18446744073709590000.0", False),  # gt_literal/not_gt_dyn_uint_big_double
    ("dyn(18446744073709553665.0) > 18446744073709551615u", True),  # gt_literal/gt_dyn_big_double_uint
    ("dyn(9223372036854775807u) > -1.0", True),  # gt_literal/gt_dyn_uint_small_double
    ("'elem' in [1, 'elem', 2]", True),  # in_list_literal/elem_in_mixed_type_list
    ("'elem' in [1u, 'str', 2, b'bytes']", False),  # in_list_literal/elem_in_mixed_type_list_cross_type
    ("'key' in {3:3.0, 'key':2u}", True),  # in_map_literal/key_in_mixed_key_type_map
    ("'key' in {1u:'str', 2:b'bytes'}", False),  # in_map_literal/key_in_mixed_key_type_map_cross_type
    ("dyn(1) in [1.0]", True),  # in over a list: CEL equality
    ("1 in [1.0]", True),
    ("true in [1]", False),
    ("dyn(1.0) in {1: 'a'}", True),  # a map key by value
    ("dyn(1.5) in {1: 'a'}", False),
    # 2^53 ± 1: an int against a double compares in doubles (as the lossy cases above); ints exactly
    ("dyn(9007199254740993) == 9007199254740992.0", True),
    ("dyn(9007199254740993) > 9007199254740992.0", False),
    ("9007199254740993 > 9007199254740992", True),
    ("dyn(9007199254740993u) == 9007199254740992.0", True),
    ("dyn(9007199254740993) == 9007199254740993u", True),
    # -0.0
    ("-0.0 == 0.0", True),
    ("dyn(-0.0) == 0", True),
    ("-0.0 < 0.0", False),
    ("1.0 / -0.0 < 0.0", True),
    # integer_math.textproto
    ("9223372036854775807 + 1", "error"),  # int64_math/int64_overflow_positive
    ("-9223372036854775808 - 1", "error"),  # int64_math/int64_overflow_negative
    ("1 - (-9223372036854775807)", "error"),  # int64_math/int64_overflow_sub_positive
    ("-(-9223372036854775808)", "error"),  # int64_math/int64_min_negate
    ("(-9223372036854775808) * -1", "error"),  # int64_math/int64_min_negate_mul
    ("(-9223372036854775808)/-1", "error"),  # int64_math/int64_min_negate_div
    ("5000000000 * 5000000000", "error"),  # int64_math/int64_overflow_mul_positive
    ("-9223372036854775808 % -1", "error"),  # the remainder of that overflow (cel-cpp, cel-go)
    ("15 / 0", "error"),  # int64_math/divide_zero
    ("34 % 0", "error"),  # int64_math/mod_zero
    ("18446744073709551615u + 1u", "error"),  # int64_math/uint64_overflow_positive
    ("0u - 1u", "error"),  # int64_math/uint64_overflow_negative
    ("15u / 0u", "error"),  # uint64_math/divide_zero
    ("-7 / 2", -3),
    ("43 % (-5)", 3),  # int64_math/mod_positive_negative
    ("-42 % (-5)", -2),  # int64_math/mod_negative_negative
    ("-9223372036854775808 / 1", INT64_MIN),
    # fp_math.textproto
    ("15.75 / 0.0", math.inf),  # fp_math/divide_zero
    ("-15.75 / 0.0", -math.inf),
    ("1.0 / -0.0", -math.inf),
    ("0.0 / 0.0", math.nan),
    ("2.0 * 8.988466e+307", math.inf),  # fp_math/fp_overflow_positive
    ("-(0.0)", -0.0),  # fp_math/negative_zero
    ("2.0 * 3", "error"),  # no mixed arithmetic
    ("dyn(1) + 1.0", "error"),
    # conversions.textproto
    ("int(-9223372036854775808.0)", "error"),  # int/double_int_min_range
    ("int(9223372036854775807.0)", "error"),  # int/double_int_max_range
    ("int(1e99)", "error"),  # int/double_range
    ("int(-9223372036854774784.0)", -9223372036854774784),  # the smallest double in range
    ("int(-7.9)", -7),  # int/double_truncate_neg
    ("int(double(36028797018963969))", 36028797018963968),  # int/double_big_precision
    ("int(0.0/0.0)", "error"),
    ("int(1.0/0.0)", "error"),
    ("int(18446744073709551615u)", "error"),  # int/uint_range
    ("int(9223372036854775807u)", INT64_MAX),  # int/uint_max_exact
    ("uint(-1)", "error"),  # uint/int_neg
    ("uint(-0.5)", "error"),
    ("uint(18446744073709551615.0)", "error"),
    ("uint(25.5) == 25u", True),  # uint/double_half
    ("int('9223372036854775808')", "error"),
    ("int('-9223372036854775808')", INT64_MIN),
    ("int('1_0')", "error"),
    ("int('0x10')", "error"),
    ("int('\u0661')", "error"),  # a non-ASCII digit
    ("uint('18446744073709551616')", "error"),
    ("uint('-1')", "error"),
    ("double('-0.0')", -0.0),  # double/string_neg_zero
    ("double('6.02214e23')", 6.02214e23),  # double/string_exp_pos_pos
    ("double('1e400')", math.inf),
    ("double('NaN') != double('NaN')", True),
    ("double('1_0')", "error"),
    ("double(9223372036854775807)", 9.223372036854775807e18),  # double/int_range
    ("double(18446744073709551615u)", 1.8446744073709551615e19),  # double/uint_range
]


def _rule(text, expected):
    if expected == "error":
        return f"({text}) == ({text})", "rule_error"
    if isinstance(expected, bool):
        return text, "rule_true" if expected else "rule_false"
    if isinstance(expected, float) and math.isnan(expected):
        return f"({text}) != ({text})", "rule_true"
    if isinstance(expected, float) and expected == 0.0:
        # The sign of zero: 1/x is ±inf.
        sign = "<" if math.copysign(1.0, expected) < 0 else ">"
        return f"({text}) == 0.0 && 1.0 / ({text}) {sign} 0.0", "rule_true"
    literal = repr(expected) if isinstance(expected, float) and math.isfinite(expected) else None
    if isinstance(expected, float) and not math.isfinite(expected):
        literal = ("" if expected > 0 else "-") + "1.0/0.0"
    if isinstance(expected, int):
        literal = str(expected)
    # Compared with a literal of the expected type, which the case's type has too.
    return f"({text}) == {literal}", "rule_true"


@pytest.mark.parametrize("text, expected", CASES, ids=[c[0] for c in CASES])
def test_numeric_cases_give_cels_answer_or_are_refused_at_load_on_every_path(rules_file, path, text, expected):
    allow, reason = _rule(text, expected)
    try:
        authorizer = rules_file(allow)
    except RulesError as refused:
        # Only cel-cpp's type checker refuses (`1 == 1.0` written without dyn()).
        assert path == CEL_EXPR_PYTHON and "cel-expr-python" in str(refused), refused
        return
    assert ask(authorizer).decision.reason == reason, (allow, path)


@pytest.mark.parametrize(
    "text, value",
    [
        ("9223372036854775807", INT64_MAX),
        ("-9223372036854775808", INT64_MIN),
        ("-0.0", -0.0),
        ("double(9007199254740993)", 9007199254740992.0),
        ("1.0 / 0.0", None),  # no JSON number: left out of the context
        ("0.0 / 0.0", None),
        ("9223372036854775807 + 1", None),  # an error: left out
        ("int(-9223372036854775808.0)", None),
    ],
)
def test_numbers_reach_the_context_alike_on_every_path(tmp_path, path, text, value):
    (tmp_path / "jwks.json").write_bytes(default_jwks())
    engine = "engine: cel-expr-python" if path == CEL_EXPR_PYTHON else ""
    rules = (RULES % {"engine": engine, "issuer": ISSUER, "audience": AUDIENCE, "allow": "true"}).replace(
        '  n: "claims.n"', f"  n: {json.dumps(text)}"
    )
    (tmp_path / "rules.yaml").write_text(rules)
    decision = ask(Authorizer.load(tmp_path / "rules.yaml")).decision
    assert decision.outcome == "allow"
    if value is None:
        assert "n" not in decision.context and any(k == "n" for k, _ in decision.omitted_context)
    else:
        got = decision.context["n"]
        assert got == value and type(got) is type(value) and math.copysign(1, got) == math.copysign(1, value)


# -- generated numbers, through claims, against CEL's rules -------------------------------

CLOSURE_COMPILER = Compiler({}, jwt_configured=True, engine="cel-python", interpreter_only=False)
INTERPRETER_COMPILER = Compiler({}, jwt_configured=True, engine="cel-python", interpreter_only=True)
FAST_COMPILER = Compiler({}, jwt_configured=True, engine="cel-expr-python")
COMPILERS = {CLOSURES: CLOSURE_COMPILER, INTERPRETER: INTERPRETER_COMPILER, CEL_EXPR_PYTHON: FAST_COMPILER}

EDGE_INTS = [
    0,
    1,
    -1,
    2,
    -2,
    3,
    7,
    2**31,
    2**53 - 1,
    2**53,
    2**53 + 1,
    -(2**53) - 1,
    INT64_MAX,
    INT64_MAX - 1,
    INT64_MIN,
    INT64_MIN + 1,
]
EDGE_DOUBLES = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.5,
    -2.5,
    2.0**53,
    2.0**53 + 2,
    2.0**63,
    -(2.0**63),
    2.0**64,
    9223372036854774784.0,
    -9223372036854774784.0,
    1e308,
    5e-324,
    math.inf,
    -math.inf,
    math.nan,
]
NUMBERS = st.one_of(
    st.sampled_from(EDGE_INTS),
    st.sampled_from(EDGE_DOUBLES),
    st.integers(INT64_MIN, INT64_MAX),
    st.floats(allow_nan=True, allow_infinity=True),
)


def run(text: str, claims: dict) -> dict[str, ev.Result]:
    results = {}
    for name, compiler in COMPILERS.items():
        compiled = compiler.compile(text)
        # uint is outside the compiled subset: by default it runs on the interpreter.
        assert compiled.runs_on == (INTERPRETER if name == CLOSURES and "uint" in text else name)
        plain = {
            "claims": claims,
            "token": "t",
            "scopes": [],
            "auth": {"provider": "p"},
            "request": {},
            "now_unix": int(NOW),
        }
        results[name] = ev.evaluate(compiled, ev.activation_for(compiled.engine, plain))
    return results


def cel_compare(a, b):
    """CEL's (docs/cel-numbers.md): a comparison with a double is made in doubles."""
    return (float(a), float(b)) if isinstance(a, float) or isinstance(b, float) else (a, b)


_RELATIONS = {
    "==": lambda x, y: x == y,
    "!=": lambda x, y: x != y,
    "<": lambda x, y: x < y,
    "<=": lambda x, y: x <= y,
    ">": lambda x, y: x > y,
    ">=": lambda x, y: x >= y,
}


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(NUMBERS, NUMBERS, st.sampled_from(sorted(_RELATIONS)))
def test_generated_numeric_claims_compare_as_cel_says_on_every_path(a, b, relation):
    x, y = cel_compare(a, b)
    expected = ev.TRUE if _RELATIONS[relation](x, y) else ev.FALSE
    for name, result in run(f"claims.a {relation} claims.b", {"a": a, "b": b}).items():
        assert result.kind == expected, (name, a, relation, b)
    for name, result in run("claims.a in [claims.b]", {"a": a, "b": b}).items():
        assert result.kind == (ev.TRUE if x == y else ev.FALSE), (name, a, b)


def _int_result(value):
    return value if INT64_MIN <= value <= INT64_MAX else "error"


def _ieee_divide(a: float, b: float) -> float:
    if b == 0.0:
        return math.nan if a == 0.0 or a != a else math.copysign(math.inf, a) * math.copysign(1.0, b)
    return a / b


def _expected_arithmetic(a, b, op):
    if type(a) is not type(b):
        return "error"  # no mixed arithmetic
    if isinstance(a, float):
        return {
            "+": lambda: a + b,
            "-": lambda: a - b,
            "*": lambda: a * b,
            "/": lambda: _ieee_divide(a, b),
            "%": lambda: "error",
        }[op]()
    if op in "/%" and b == 0:
        return "error"
    if op == "/":
        quotient = abs(a) // abs(b)
        return _int_result(quotient if (a < 0) == (b < 0) else -quotient)
    if op == "%":
        if a == INT64_MIN and b == -1:
            return "error"
        return -(abs(a) % abs(b)) if a < 0 else abs(a) % abs(b)
    return _int_result({"+": a + b, "-": a - b, "*": a * b}[op])


def _same(result: ev.Result, expected) -> bool:
    if expected == "error":
        return result.kind == ev.ERROR
    if result.kind != ev.NON_BOOL:
        return False
    got = ev.to_plain(result.value)
    if isinstance(expected, float):
        return type(got) is float and (
            (got == expected and math.copysign(1, got) == math.copysign(1, expected))
            or (got != got and expected != expected)
        )
    return type(got) is int and got == expected


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(NUMBERS, NUMBERS, st.sampled_from(["+", "-", "*", "/", "%"]))
def test_generated_arithmetic_on_numeric_claims_is_cels_on_every_path(a, b, op):
    expected = _expected_arithmetic(a, b, op)
    for name, result in run(f"claims.a {op} claims.b", {"a": a, "b": b}).items():
        assert _same(result, expected), (name, a, op, b, result)


def _expected_int(value):
    if isinstance(value, float):
        return int(value) if -(2.0**63) < value < 2.0**63 else "error"
    return value


def _expected_uint_as_int(value):
    if isinstance(value, float):
        return int(value) if 0.0 <= value < 2.0**64 else "error"
    return value if value >= 0 else "error"


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(NUMBERS)
def test_generated_conversions_of_numeric_claims_are_cels_on_every_path(value):
    expected = _expected_int(value)
    for name, result in run("int(claims.a)", {"a": value}).items():
        assert _same(result, expected), (name, value, result)
    expected = _expected_uint_as_int(value)
    for name, result in run("uint(claims.a) == claims.a || int(uint(claims.a)) >= 0", {"a": value}).items():
        if expected == "error":
            assert result.kind == ev.ERROR, (name, value, result)
        else:
            assert result.kind == ev.TRUE, (name, value, result)
    for name, result in run("double(claims.a)", {"a": value}).items():
        assert _same(result, float(value)), (name, value, result)
    for name, result in run("int(string(claims.a))", {"a": value}).items():
        if isinstance(value, int):
            assert _same(result, value), (name, value, result)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(
    st.one_of(st.integers(INT64_MIN - 10, INT64_MAX + 10), st.integers(-(10**30), 10**30)),
    st.sampled_from(["{}", " {} ", "+{}", "{}_0", "0x{}"]),
)
def test_generated_integer_strings_convert_within_int64_on_every_path(number, form):
    text = form.format(number)
    if text.startswith(("+-", "0x-")):
        return
    fits = form in ("{}", " {} ", "+{}") and INT64_MIN <= number <= INT64_MAX
    for name, result in run("int(claims.s)", {"s": text}).items():
        assert _same(result, number if fits else "error"), (name, text, result)
