"""The tree helpers the compiler, the closure builder and explain share (ruleauth/cel/tree.py):
one rule for which map keys are known, and parentheses that only group."""

import pytest

from ruleauth.cel import evaluation as ev
from ruleauth.cel.compiler import CLOSURES, Compiler, Read
from ruleauth.tools.explain import explain_expression
from tests.test_cel_closures import CLOSURE_COMPILER, PLAIN, both, same_answer

SECRET = "s3cret-value"
ACTIVATION = {**PLAIN, "request": {**PLAIN["request"], "headers": {"x-api-key": SECRET, "x-tenant": "acme"}}}

# How a key is written → the key the compiler records (None: "the whole map is read") and
# whether explain must hide `x-api-key`'s value (a credential header) when it reads it.
LITERALS = {
    "single quotes": ("'x-api-key'", "x-api-key"),
    "double quotes": ('"x-api-key"', "x-api-key"),
    "an escape": (r"'x\x2dapi-key'", None),
    "a raw string": ("r'x-api-key'", None),
    "triple quotes": ("'''x-api-key'''", None),
    "a computed key": ("'x-' + 'api-key'", None),
    "parenthesised": ("('x-api-key')", "x-api-key"),
    "empty": ("''", ""),
}


@pytest.fixture(scope="module")
def compiler():
    return Compiler({}, jwt_configured=True, engine="cel-python")


@pytest.mark.parametrize("written, key", list(LITERALS.values()), ids=list(LITERALS))
def test_a_header_key_is_recorded_only_when_its_literal_is_exact(compiler, written, key):
    reads = compiler.compile(f"request.headers[{written}] == 'x'").reads
    assert reads == frozenset({Read("request.headers", key)})


@pytest.mark.parametrize("written, key", list(LITERALS.values()), ids=list(LITERALS))
def test_dry_run_hides_a_credential_header_however_its_key_is_written(compiler, written, key):
    compiled = compiler.compile(f"request.headers[{written}] == 'x'")
    explained = explain_expression(
        compiled, ev.activation_for("cel-python", ACTIVATION), (frozenset({"x-api-key"}), frozenset())
    )
    text = repr([step.as_dict() for step in explained.steps])
    if written != "''":  # the empty key reads no credential
        assert SECRET not in text
    tenant = explain_expression(
        compiler.compile("request.headers['x-tenant'] == 'acme'"),
        ev.activation_for("cel-python", ACTIVATION),
        (frozenset({"x-api-key"}), frozenset()),
    )
    assert "acme" in repr([step.as_dict() for step in tenant.steps])  # not every value is hidden


@pytest.mark.parametrize(
    "text, kind",
    [
        ("has((request.headers))", ev.TRUE),
        ("has(((request).headers))", ev.TRUE),
        ("has((claims.nested.team))", ev.TRUE),
        ("has(((claims.nested).missing))", ev.FALSE),
        ("((1)) == 1", ev.TRUE),
        ("[(1), ((2))] == [1, 2]", ev.TRUE),
        ("((claims.n)) in [(7), 8]", ev.TRUE),
        ("(('a')) + 'b' == 'ab'", ev.TRUE),
    ],
)
def test_parentheses_only_group_so_they_compile_to_closures_that_answer_as_the_interpreter(text, kind):
    assert CLOSURE_COMPILER.compile(text).runs_on == CLOSURES
    closures, interpreter = both(text)
    assert same_answer(closures, interpreter) and closures.kind == kind


def test_a_comprehension_variable_is_no_input_read(compiler):
    reads = compiler.compile("claims.groups.exists(g, g == 'a') && [{'y': 1}].exists(x, x.y == 1)").reads
    assert reads == frozenset({Read("claims", "groups")})
