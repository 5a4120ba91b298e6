"""The rule compiler: static checks on the CEL parse tree, limits, functions, and recorded reads."""

import pytest

from ruleauth.cel import evaluation as ev
from ruleauth.cel.compiler import CEL_EXPR_PYTHON, MAX_DEPTH, MAX_SOURCE_CHARS, Compiler, ExpressionError, Read


@pytest.fixture(scope="module")
def compiler():
    return Compiler(
        {"is_admin": "'admin' in scopes", "has_x": "scopes.exists(s, s == 'x')", "groups": "claims.groups"},
        jwt_configured=True,
    )


def error_of(compiler, text):
    with pytest.raises(ExpressionError) as caught:
        compiler.compile(text)
    return str(caught.value)


def reads(compiler, text):
    return {str(r) for r in compiler.compile(text).reads}


def run(compiled, **variables):
    activation = {
        "token": variables.get("token", ""),
        "claims": variables.get("claims", {}),
        "scopes": variables.get("scopes", []),
        "request": variables.get("request", {}),
    }
    return ev.evaluate(compiled, ev.activation_for(compiled.engine, activation))


@pytest.mark.parametrize(
    "text, message",
    [
        ("tokn == 'a'", "unknown variable 'tokn'; did you mean 'token'?"),
        ("claim.sub == 'a'", "unknown variable 'claim'; did you mean 'claims'?"),
        ("is_admn", "unknown variable 'is_admn'; did you mean 'is_admin'?"),
        ("sise(token) > 1", "unknown function 'sise'; did you mean 'size'?"),
        ("token.statsWith('a')", "unknown function 'statsWith'; did you mean 'startsWith'?"),
        ("token.splt(' ').size() > 0", "unknown function 'splt'; did you mean 'split'?"),
        ("request.hedaers['x'] == 'a'", "unknown field of request 'hedaers'; did you mean 'headers'?"),
        ("request.souce_ip == ''", "unknown field of request 'souce_ip'; did you mean 'source_ip'?"),
        ("auth.provder == 'a'", "unknown field of auth 'provder'; did you mean 'provider'?"),
        ("request.headers['X-Tenant'] == 'a'", "header names are lower case"),
        ("frobnicate(1)", "unknown function 'frobnicate'"),
    ],
)
def test_unknown_variables_functions_and_fields_are_load_errors_with_did_you_mean(compiler, text, message):
    assert message in error_of(compiler, text)


def test_every_declared_variable_compiles(compiler):
    compiler.compile(
        "token == '' && claims.sub == '' && 'a' in scopes && auth.provider == '' && request.method == ''"
        " && request.path == '' && request.route == '' && request.resource == '' && request.params.id == ''"
        " && request.headers.h == '' && request.query.q == '' && request.cookies.c == ''"
        " && request.stage_variables.s == '' && request.source_ip == '' && request.stage == ''"
        " && request.api_id == '' && request.account_id == '' && request.region == ''"
        " && now > timestamp('2020-01-01T00:00:00Z') && now_unix > 0"
    )


def test_claims_without_a_jwt_provider_is_a_load_error():
    assert "`claims` needs a `jwt:` provider" in error_of(Compiler({}, jwt_configured=False), "claims.sub == 'a'")


def test_comprehension_variables_are_scoped_to_their_macro(compiler):
    for macro in ("exists", "all", "exists_one", "map", "filter"):
        compiler.compile(
            f"size(scopes.{macro}(s, s == 'a')) >= 0" if macro in ("map", "filter") else f"scopes.{macro}(s, s == 'a')"
        )
    assert "unknown variable 's'" in error_of(compiler, "scopes.exists(s, s == 'a') && s == 'b'")
    assert "unknown variable 't'" in error_of(compiler, "scopes.exists(s, t == 'a')")


def test_a_comprehension_variable_may_shadow_nothing_it_does_not_declare(compiler):
    # `g` inside the macro is the element; outside it is unknown.
    assert reads(compiler, "scopes.all(g, g.startsWith('read:'))") == {"scopes"}
    assert "unknown variable 'g'" in error_of(compiler, "g == 'a'")


def test_macros_need_a_variable_name_first(compiler):
    assert "takes a variable name" in error_of(compiler, "scopes.exists('s', true)")


@pytest.mark.parametrize(
    "text",
    [
        "claims.groups.exists(a, claims.groups.exists(b, a + b == 'zz'))",
        "scopes.all(s, request.headers.exists(h, h == s))",
        "claims.groups.exists(g, g.exists(c, c == 'x'))",
        "claims.groups.map(g, scopes.filter(s, s == g)).size() > 0",
        "claims.groups.exists(g, has_x)",  # the inner comprehension comes from a define
        "groups.exists(a, groups.exists(b, a == b))",  # both lists come from a define
    ],
)
def test_E06_nested_comprehensions_over_request_or_claims_data_are_load_errors(compiler, text):
    assert "nested inside another comprehension" in error_of(compiler, text)


@pytest.mark.parametrize(
    "text",
    [
        "[1, 2].exists(a, [3, 4].exists(b, a == b))",
        "scopes.exists(a, ['x', 'y'].exists(b, a == b))",
        "['x', 'y'].exists(a, scopes.exists(b, a == b))",
        "scopes.exists(s, s == 'a') && claims.groups.exists(g, g == 'b')",
    ],
)
def test_E06_comprehensions_over_literals_or_side_by_side_are_accepted(compiler, text):
    compiler.compile(text)


def test_E08_expressions_longer_than_2000_characters_are_load_errors(compiler):
    text = "token == '" + "a" * (MAX_SOURCE_CHARS - 12) + "'"
    assert len(text) == MAX_SOURCE_CHARS - 1
    compiler.compile(text)
    message = error_of(compiler, text + "   ")
    assert f"limit is {MAX_SOURCE_CHARS}" in message and "define" in message


def test_E08_two_hundred_nested_parentheses_are_a_load_error_not_a_recursion_error(compiler):
    message = error_of(compiler, "(" * 200 + "true" + ")" * 200)
    assert f"more than {MAX_DEPTH} levels" in message


def test_E08_a_3000_term_or_chain_is_a_load_error_not_a_recursion_error(compiler):
    assert "limit is 2000" in error_of(compiler, " || ".join(["token == 'a'"] * 3000))
    # The longest chain that fits in 2000 characters is still far too deep.
    assert "nests" in error_of(compiler, "||".join(["1"] * 666))


@pytest.mark.parametrize(
    "text",
    [
        "-" * 100 + "1 > 0",
        "!" * 100 + "true",
        "+".join(["1"] * 100) + " > 0",
        "token" + ".size()" * 60 + " > 0",
        "token" + "[0]" * 60 + " == 'a'",
        "[" * 60 + "1" + "]" * 60 + " == []",
        "{'a':" * 51 + "1" + "}" * 51 + " == {}",
    ],
)
def test_E08_depth_over_50_is_a_load_error_for_every_kind_of_nesting(compiler, text):
    message = error_of(compiler, text)
    assert "nests" in message and str(MAX_DEPTH) in message


@pytest.mark.parametrize(
    "make",
    [
        lambda n: "(" * n + "true" + ")" * n,
        lambda n: "[" * n + "1" + "]" * n + " != []",
        lambda n: "{'a':" * n + "true" + "}" * n + " != {}",
        lambda n: "string(" * n + "'a'" + ")" * n + " == 'a'",
        lambda n: "[1].exists(x, " * n + "true" + ")" * n,
        lambda n: "true && " + "!" * (2 * (n // 2)) + "true",
    ],
    ids=["parens", "lists", "maps", "calls", "macros", "nots"],
)
def test_E08_every_expression_accepted_at_the_depth_limit_evaluates_without_recursion_error(compiler, make):
    deepest = None
    for n in range(MAX_DEPTH, 0, -1):
        try:
            deepest = compiler.compile(make(n))
            break
        except ExpressionError:
            continue
    assert deepest is not None
    result = run(deepest)
    assert result.error_class != "RecursionError" and result.kind in ("true", "false"), result


@pytest.mark.parametrize(
    "text, expected",
    [
        ("split('a b c', ' ') == ['a', 'b', 'c']", True),
        ("'a b c'.split(' ').size() == 3", True),
        ("join(['a', 'b'], ',') == 'a,b'", True),
        ("['a', 'b'].join('-') == 'a-b'", True),
        ("lowerAscii('AbC') == 'abc'", True),
        ("'AbC'.lowerAscii() == 'abc'", True),
        ("'ÄB'.lowerAscii() == 'Äb'", True),  # ASCII only
        ("upperAscii('ab') == 'AB'", True),
        ("' a '.trim() == 'a'", True),
    ],
)
def test_split_join_and_lowerascii_work_as_functions_and_methods(compiler, text, expected):
    result = run(compiler.compile(text))
    assert result.kind == ("true" if expected else "false"), result


def test_split_on_real_claims_scope(compiler):
    compiled = compiler.compile("'orders:read' in claims.scope.split(' ')")
    assert run(compiled, claims={"scope": "openid orders:read"}).allows
    assert not run(compiled, claims={"scope": "openid"}).allows


def test_string_functions_on_wrong_types_are_errors_not_crashes(compiler):
    if compiler.engine == CEL_EXPR_PYTHON:
        # cel-cpp type-checks at load: a literal of the wrong type is a load error there.
        assert "no matching overload for 'split'" in error_of(compiler, "split(1, ' ') == []")
    else:
        assert run(compiler.compile("split(1, ' ') == []")).kind == "error"
    # A claim is only known at run time: an error, which denies, on both engines.
    assert run(compiler.compile("split(claims.n, ' ') == []"), claims={"n": 1}).kind == "error"
    assert run(compiler.compile("''.split('') == []")).kind == "error"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("request.headers['x-tenant'] == 'a'", {"request.headers['x-tenant']"}),
        ("request.headers.x_y == 'a'", {"request.headers['x_y']"}),
        ("has(request.query.q)", {"request.query['q']"}),
        ("'x' in request.headers", {"request.headers"}),
        ("request.headers[token] == 'a'", {"request.headers", "token"}),
        ("request.params.id == request.cookies.c", {"request.params['id']", "request.cookies['c']"}),
        ("request.stage_variables.env == 'prod'", {"request.stage_variables['env']"}),
        ("request.source_ip == '' && request.method == 'GET'", {"request.source_ip", "request.method"}),
        ("claims.sub == 'a' && 'x' in scopes && auth.provider == 'p'", {"claims['sub']", "scopes", "auth.provider"}),
        (
            "claims.groups.exists(g, g == 'a') && has(claims.tenant) && claims['org'] == 'o'",
            {"claims['groups']", "claims['tenant']", "claims['org']"},
        ),
        ("size(claims) > 0", {"claims"}),
        ("claims[token] == 'a'", {"claims", "token"}),
        ("claims.org[token].name == 'a'", {"claims['org']", "token"}),
        ("now_unix > 0", {"now_unix"}),
        ("is_admin", {"scopes"}),
        ("[1, 2].exists(x, x == 1)", set()),
        ("scopes.exists(s, s == token)", {"scopes", "token"}),
    ],
)
def test_the_recorded_reads_name_each_input_and_map_key(compiler, text, expected):
    assert reads(compiler, text) == expected


def test_read_keys_are_recorded_as_read_objects(compiler):
    assert compiler.compile("request.headers['x-a'] == ''").reads == frozenset({Read("request.headers", "x-a")})


def test_uses_now_reports_time_dependence(compiler):
    assert compiler.compile("now > timestamp('2020-01-01T00:00:00Z')").uses_now
    assert compiler.compile("now_unix > 0").uses_now
    assert not compiler.compile("token == ''").uses_now


def test_defines_are_inlined_and_recorded_transitively():
    compiler = Compiler({"a": "token == 'x'", "b": "a || token == 'y'"}, jwt_configured=False)
    compiled = compiler.compile("b")
    assert compiled.defines == {"a", "b"}
    assert run(compiled, token="x").allows and run(compiled, token="y").allows and not run(compiled, token="z").allows


def test_a_define_referring_to_itself_is_a_load_error():
    assert "refers to itself" in error_of(Compiler({"a": "b", "b": "a"}, jwt_configured=False), "a")


@pytest.mark.parametrize("text", ["token ==", "'unterminated", "a b", ")"])
def test_syntax_errors_are_load_errors_with_one_line(compiler, text):
    message = error_of(compiler, text)
    assert message.startswith("CEL syntax error") and "\n" not in message


@pytest.mark.parametrize(
    "text, fragment",
    [
        (".token == ''", "leading-dot"),
        ("google.protobuf.Int64Value{value: 1} == 1", "message construction"),
    ],
)
def test_unsupported_syntax_is_a_load_error(compiler, text, fragment):
    assert fragment in error_of(compiler, text)


@pytest.mark.parametrize(
    "text, message",
    [
        ("token == '\\q'", "invalid escape \\q in a string literal"),
        ("token == '\\400'", "invalid escape \\4"),
        ("token == '\\x4'", "\\x needs two hex digits"),
        ("token == '\\uD800'", "is not a Unicode code point"),
        ("token == '\\U00110000'", "is not a Unicode code point"),
        ("b'\\u0041' == b'A'", "invalid escape \\u in a bytes literal"),
    ],
)
def test_a_literal_with_an_escape_cel_does_not_define_is_a_load_error_on_every_engine(compiler, text, message):
    assert message in error_of(compiler, text)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("'\\x4a\\X4c\\101\\u01aB\\U0001F62C\\?\\`\\'\\\"\\\\'", "JLAƫ😬?`'\"\\"),
        ("'''a\nb'''", "a\nb"),
        ("r'\\n\\x4a'", "\\n\\x4a"),
        ("R'''\\?'''", "\\?"),
    ],
)
def test_string_literals_mean_what_cel_says_on_every_engine(compiler, text, expected):
    result = run(compiler.compile(f"token == {text}"), token=expected)
    assert result.kind == ev.TRUE
    assert run(compiler.compile(f"token != {text}"), token=expected).kind == ev.FALSE


@pytest.mark.parametrize(
    "text",
    [
        "b'''\n''' == b'\\n'",
        "b'\\xff\\XFE\\377' == b'\\377\\376\\xff'",
        "B'\\x4a' == b'J'",
        "size(b'\\xc3\\xa9') == 2 && b'\\xc3\\xa9' == b'\u00e9'",
    ],
)
def test_bytes_literals_mean_what_cel_says_on_every_engine(compiler, text):
    assert run(compiler.compile(text)).kind == ev.TRUE


@pytest.mark.parametrize(
    "text",
    [
        "token.split(' ', 1) == ['a']",
        "split(token, ' ', 0) == []",
        "lowerAscii(token, 'x') == ''",
        "token.trim(1) == ''",
    ],
)
def test_strings_extension_forms_ruleauth_does_not_implement_are_load_errors(compiler, text):
    assert "argument" in error_of(compiler, text)


@pytest.mark.parametrize(
    "text",
    ["'admin' in scopes", "is_admin || claims.sub == 'root'", "scopes.exists(s, s.startsWith('x'))"],
)
def test_a_repeated_expression_is_parsed_once_and_compiled_alike_into_its_own_program(text, monkeypatch) -> None:
    compiler = Compiler({"is_admin": "'admin' in scopes"}, jwt_configured=True)
    parsed: list[tuple[str, bool]] = []
    parse = compiler.parse
    monkeypatch.setattr(
        compiler, "parse", lambda t, positions=True: parsed.append((t, positions)) or parse(t, positions)
    )
    first, second = compiler.compile(text), compiler.compile(text)
    # Once for deciding; cel-python's interpreter (RULEAUTH_CEL_INTERPRETER) also takes it once
    # with source positions, for its error reports. Never again for the second use.
    assert parsed.count((text, False)) == 1 and parsed.count((text, True)) <= 1
    assert first is not second and first.program is not second.program
    assert (first.reads, first.defines, first.runs_on) == (second.reads, second.defines, second.runs_on)
    for scopes in ([], ["admin"], ["xy"]):
        claims = {"sub": "root"}
        # Results compare by identity (evaluation.py): compare what they say.
        answers = [run(c, scopes=scopes, claims=claims) for c in (first, second)]
        assert len({(r.kind, r.value, r.error_class) for r in answers}) == 1


@pytest.mark.parametrize("text", ["tokn == 'a'", "(" * (MAX_DEPTH + 1) + "1" + ")" * (MAX_DEPTH + 1)])
def test_a_repeated_bad_expression_is_refused_every_time(compiler, text) -> None:
    assert error_of(compiler, text) == error_of(compiler, text)
