"""Evaluating rules: only an exact CEL true allows (E1–E5, E7), the deadline (E6), fixed inputs (E9)."""

import pytest
from celpy import celtypes
from celpy.evaluation import CELEvalError

from ruleauth.cel import evaluation as ev
from ruleauth.cel.compiler import INTERPRETER, Compiler
from ruleauth.jwt.verifier import MAX_CLAIM_DEPTH, MAX_LIST_ITEMS, claims_problem
from ruleauth.runtime import decision as decision_module
from ruleauth.tools.synthetic_events import build_event

NOW = 1_800_000_000.0


@pytest.fixture(scope="module")
def compiler():
    return Compiler({}, jwt_configured=True)


def evaluate(compiler, text, claims=None, headers=None, token="", budget=None):
    activation = {
        "token": token,
        "claims": claims or {},
        "scopes": [],
        "request": {"headers": headers or {}, "query": {}},
        "now": ev.utc_datetime(NOW),
        "now_unix": int(NOW),
    }
    compiled = compiler.compile(text)
    return ev.evaluate(compiled, ev.activation_for(compiled.engine, activation), budget)


RULES = """\
version: 1
cache: {{mode: disabled}}
rules:
  - name: r
    route: GET /r
    auth: none
    allow: {allow}
"""


def decide(authorizer, allow, headers=None):
    auth = authorizer(RULES.format(allow=allow))
    return auth.authorize(build_event("rest-request", "GET", "/r", headers=headers), now=NOW)


# --- only an exact true allows -----------------------------------------------------


@pytest.mark.parametrize(
    "value, kind",
    [
        (celtypes.BoolType(True), ev.TRUE),
        (celtypes.BoolType(False), ev.FALSE),
        (celtypes.IntType(1), ev.NON_BOOL),
        (celtypes.UintType(1), ev.NON_BOOL),
        (celtypes.DoubleType(1.0), ev.NON_BOOL),
        (celtypes.StringType("true"), ev.NON_BOOL),
        (celtypes.ListType([celtypes.BoolType(True)]), ev.NON_BOOL),
        (celtypes.MapType({}), ev.NON_BOOL),
        (True, ev.NON_BOOL),  # a Python bool is not a CEL result: refuse it too
        (1, ev.NON_BOOL),
        (None, ev.NON_BOOL),
        (CELEvalError("boom", KeyError, ("secret",)), ev.ERROR),
    ],
)
def test_only_a_cel_bool_true_allows(value, kind):
    result = ev.classify(value)
    assert result.kind == kind and result.allows is (kind == ev.TRUE)


def test_E01_an_error_value_is_truthy_in_python_but_never_allows():
    error = CELEvalError("no such key", KeyError, ("x",))
    assert bool(error)
    result = ev.classify(error)
    assert result.kind == ev.ERROR and not result.allows and result.error_class == "KeyError"


def test_E01_a_missing_header_is_an_error_and_the_rule_denies_with_rule_error(authorizer):
    result = decide(authorizer, "\"request.headers['x-missing'] == 'a'\"")
    assert (result.decision.outcome, result.decision.reason, result.status) == ("deny", "rule_error", 403)
    assert result.decision.result.error_class == "KeyError"


@pytest.mark.parametrize("allow", ["\"'abc'\"", "'[1]'", "'1'", "\"{'a': true}\"", "'1.5'", "\"b'x'\"", "'null'"])
def test_E02_non_bool_results_deny_with_rule_non_bool(authorizer, allow):
    result = decide(authorizer, allow)
    assert (result.decision.outcome, result.decision.reason, result.status) == ("deny", "rule_non_bool", 403)


def test_false_denies_with_rule_false_and_true_allows(authorizer):
    assert decide(authorizer, "false").decision.reason == "rule_false"
    allowed = decide(authorizer, "true")
    assert (allowed.decision.outcome, allowed.decision.reason, allowed.status) == ("allow", "rule_true", 200)


def test_E03_commutative_error_absorption_an_error_or_true_is_true(compiler):
    # CEL's logical operators absorb errors when the other side decides: documented behaviour,
    # so `missing || true` allows. Rules must not rely on an error to deny.
    assert evaluate(compiler, "request.headers['x'] == 'a' || true").kind == ev.TRUE
    assert evaluate(compiler, "true || request.headers['x'] == 'a'").kind == ev.TRUE
    assert evaluate(compiler, "request.headers['x'] == 'a' && false").kind == ev.FALSE


def test_E03_an_error_or_false_stays_an_error_and_denies(compiler):
    result = evaluate(compiler, "request.headers['x'] == 'a' || claims.admin == false")
    assert result.kind == ev.ERROR and not result.allows
    assert evaluate(compiler, "request.headers['x'] == 'a' || false").kind == ev.ERROR
    assert evaluate(compiler, "request.headers['x'] == 'a' && true").kind == ev.ERROR


def test_E03_absorption_end_to_end_missing_header_or_missing_claim_is_403(authorizer):
    result = decide(authorizer, "\"request.headers['x-missing'] == 'a' || request.headers['x-other'] == 'b'\"")
    assert result.decision.reason == "rule_error" and result.status == 403


@pytest.mark.parametrize(
    "text, kind",
    [
        ("claims.n == 1.0", ev.TRUE),  # numbers compare by value (CEL's heterogeneous equality)
        ("claims.n == '1'", ev.FALSE),  # values of different types are unequal
        ("claims.n + 'a' == '1a'", ev.ERROR),
        ("claims.s > 1", ev.ERROR),  # ordering across types is an error
    ],
)
def test_E04_heterogeneous_comparisons_are_cels_on_every_engine(compiler, text, kind):
    result = evaluate(compiler, text, claims={"n": 1, "s": "x"})
    assert result.kind == kind and result.allows is (kind == ev.TRUE)


def test_E04_inequality_across_types_is_true_so_compare_claims_of_unfixed_type_by_conversion(compiler):
    # CEL: `1 != '1'` is true on every engine, so a negated comparison against a claim of an
    # unexpected type allows; docs/spec.md tells rule authors to compare such claims through
    # string() or int().
    assert evaluate(compiler, "claims.n != '1'", claims={"n": 1}).kind == ev.TRUE
    assert evaluate(compiler, "string(claims.n) != '1'", claims={"n": 1}).kind == ev.FALSE


@pytest.mark.parametrize(
    "text",
    [
        "9223372036854775807 + 1 > 0",
        "-9223372036854775808 - 1 < 0",
        "9223372036854775807 * 2 > 0",
        "1 / 0 == 1",
        "1 % 0 == 1",
        "18446744073709551615u + 1u > 0u",
    ],
)
def test_E05_overflow_and_division_by_zero_are_errors_that_deny(compiler, text):
    result = evaluate(compiler, text)
    assert result.kind == ev.ERROR and not result.allows


def test_E05_division_by_zero_end_to_end_is_rule_error(authorizer):
    assert decide(authorizer, "'1 / 0 == 1'").decision.reason == "rule_error"


def test_E07_matches_uses_re2_so_a_redos_pattern_returns_its_answer(compiler):
    result = evaluate(compiler, "request.headers.x.matches('^(a+)+$')", headers={"x": "a" * 5000 + "!"})
    assert result.kind == ev.FALSE
    assert evaluate(compiler, "request.headers.x.matches('^(a+)+$')", headers={"x": "a" * 5000}).kind == ev.TRUE


@pytest.mark.parametrize("pattern", ["(a)\\\\1", "(?<=a)b", "[unclosed", "(?P<n>a)(?P=n)"])
def test_E07_patterns_re2_refuses_are_errors_that_deny(compiler, pattern):
    result = evaluate(compiler, f"request.headers.x.matches('{pattern}')", headers={"x": "aa"})
    assert result.kind == ev.ERROR and not result.allows


def test_E06_an_exhausted_budget_makes_the_rule_an_error_with_an_injected_clock(compiler):
    ticks = iter([0.0, 0.5, 2.0])
    budget = ev.Budget(1.0, clock=lambda: next(ticks))  # constructed at 0.0, deadline 1.0
    assert evaluate(compiler, "true", budget=budget).kind == ev.TRUE  # checked at 0.5
    late = evaluate(compiler, "true", budget=budget)  # checked at 2.0
    assert late.kind == ev.ERROR and late.error_class == "DeadlineExceeded" and not late.allows


def test_E06_the_deadline_is_one_second_by_default():
    now = [100.0]
    budget = ev.Budget(clock=lambda: now[0])
    now[0] = 101.0
    budget.check()
    now[0] = 101.001
    with pytest.raises(ev.DeadlineExceeded):
        budget.check()


def test_E06_a_request_whose_budget_is_spent_is_denied_with_rule_error(authorizer, monkeypatch):
    real_budget = ev.Budget

    def spent_budget():
        ticks = iter([0.0] + [5.0] * 100)  # created at 0 s; every check sees 5 s
        return real_budget(1.0, clock=lambda: next(ticks))

    monkeypatch.setattr(ev, "Budget", spent_budget)
    result = decide(authorizer, "true")
    assert (result.decision.outcome, result.decision.reason) == ("deny", "rule_error")
    assert result.decision.result.error_class == "DeadlineExceeded"
    assert decision_module.ev.Budget is not real_budget  # the decider took the patched budget


def test_E06_a_huge_list_claim_is_refused_before_evaluation():
    assert claims_problem({"groups": ["g"] * MAX_LIST_ITEMS}) is None
    assert claims_problem({"groups": ["g"] * (MAX_LIST_ITEMS + 1)}) is not None
    deep = "x"
    for _ in range(MAX_CLAIM_DEPTH - 1):
        deep = [deep]
    assert claims_problem({"d": deep}) is None  # 32 containers, the dict included
    assert claims_problem({"d": [deep]}) is not None  # 33


def test_E09_header_count_and_size_caps_apply_on_routes_without_a_token(authorizer):
    many = {f"x-h{i}": "v" for i in range(101)}
    result = decide(authorizer, "true", headers=many)
    assert (result.decision.outcome, result.decision.reason) == ("deny", "bad_event")
    big = decide(authorizer, "true", headers={"x-big": "v" * (8 * 1024 + 1)})
    assert (big.decision.outcome, big.decision.reason) == ("deny", "bad_event")
    ok = decide(authorizer, "true", headers={"x-big": "v" * (8 * 1024)})
    assert ok.decision.outcome == "allow"


def test_E09_rules_see_only_the_fixed_documented_activation(authorizer):
    auth = authorizer(RULES.format(allow="true"))
    request = __import__("ruleauth.runtime.events", fromlist=["parse_event"]).parse_event(
        build_event("rest-request", "GET", "/r", headers={"Authorization": "secret"})
    )
    match = auth.ruleset.router.find("GET", "/r")
    activation = auth.decider.activation(request, match, decision_module.Identity(), NOW)
    assert set(activation) == {"token", "claims", "scopes", "auth", "request", "now", "now_unix"}
    assert set(map(str, activation["request"])) == {
        "method",
        "path",
        "route",
        "resource",
        "params",
        "headers",
        "query",
        "cookies",
        "stage_variables",
        "source_ip",
        "stage",
        "api_id",
        "account_id",
        "region",
        "client_cert",
    }
    assert activation["token"] == "" and activation["claims"] == celtypes.MapType({})


def test_E09_an_auth_none_rule_never_sees_the_credential(authorizer):
    result = decide(authorizer, "\"!('authorization' in request.headers)\"", headers={"Authorization": "secret"})
    assert result.decision.outcome == "allow"


def test_now_and_now_unix_are_the_decision_time(compiler):
    assert evaluate(compiler, f"now_unix == {int(NOW)}").kind == ev.TRUE
    assert evaluate(compiler, "now == timestamp('2027-01-15T08:00:00Z')").kind == ev.TRUE


@pytest.mark.parametrize(
    "value, expected",
    [
        (celtypes.StringType("x"), "x"),
        (celtypes.IntType(3), 3),
        (celtypes.BoolType(False), False),
        (celtypes.DoubleType(1.5), 1.5),
        (celtypes.DoubleType(float("nan")), None),
        (celtypes.DoubleType(float("inf")), None),
        (None, None),
        (celtypes.ListType([celtypes.StringType("a"), celtypes.IntType(1)]), '["a",1]'),
        (
            celtypes.MapType(
                {celtypes.StringType("b"): celtypes.BoolType(True), celtypes.StringType("a"): celtypes.IntType(1)}
            ),
            '{"a":1,"b":true}',
        ),
        (celtypes.ListType([celtypes.DoubleType(float("nan"))]), None),
    ],
)
def test_context_values_are_converted_to_api_gateway_primitives(value, expected):
    assert ev.context_value(value) == expected


def test_scopes_come_from_scope_or_scp():
    assert ev.scopes_of({"scope": "a  b"}) == ["a", "b"]
    assert ev.scopes_of({"scp": "a b"}) == ["a", "b"]
    assert ev.scopes_of({"scp": ["a", 1, "b"]}) == ["a", "b"]
    assert ev.scopes_of({"scope": 7}) == []


def test_plain_python_results_from_cel_are_typed_for_principal_and_context(compiler):
    # cel-python returns `'a' + b` as a plain str and `x * 2.0` as a float; they must still be
    # usable as a principal or context value (and still never allow).
    concatenated = evaluate(compiler, "'user-' + token", token="7")
    assert concatenated.kind == ev.NON_BOOL and isinstance(concatenated.value, str)
    if compiler.compile("'user-' + token").runs_on == INTERPRETER:  # the others return plain Python
        assert isinstance(concatenated.value, celtypes.StringType)
    assert ev.context_value(concatenated.value) == "user-7"
    product = evaluate(compiler, "claims.f * 2.0", claims={"f": 1.5})
    assert ev.context_value(product.value) == 3.0
    assert ev.context_value(evaluate(compiler, "true").value) is True
