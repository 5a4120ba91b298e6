"""Claims at the seams: time claims at the edges of JSON numbers, `auth: token`
beside `jwt:`, the default principal, array scopes, and offline claims picking providers as real
tokens do. Every case goes through the real Authorizer with really signed tokens, under identity
caching and without it, and through the command line where the offline paths differ."""

from __future__ import annotations

import dataclasses
import json

import pytest

from ruleauth.jwt.verifier import JwtError, JwtVerifier
from ruleauth.policy import iam as policy_eval
from ruleauth.runtime.authorizer import Authorizer
from ruleauth.tools.synthetic_events import build_event
from tests.cli_support import ROOT, no_traceback, run_cli, run_json, write
from tests.jwt_support import (
    AUDIENCE,
    ISSUER,
    JWKS_URI,
    NOW,
    FakeClock,
    FakeFetcher,
    claims,
    default_jwks,
    ec_key,
    forge,
    jwks_bytes,
    provider,
    public_jwk,
    rsa_key,
    token,
)

OTHER_ISSUER = "https://other.example.test"
NOW_TEXT = "2027-01-15T08:00:00Z"  # NOW

RULES = """\
version: 1
token: {header: Authorization, scheme: Bearer}
cache: {mode: MODE, sources: {headers: [Authorization]}}
jwt:
  - name: corp
    issuer: %s
    audience: [%s]
    algorithms: [RS256]
    jwks_file: corp.json
  - name: other
    issuer: %s
    audience: [%s]
    algorithms: [ES256]
    jwks_file: other.json
context:
  provider: auth.provider
rules:
  - name: read
    route: GET /orders/{id}
    allow: "'read:orders' in scopes"
  - name: corp only
    route: POST /orders
    auth: {jwt: [corp]}
    allow: "true"
  - name: api keys
    route: GET /reports
    auth: token
    allow: "token.startsWith('key-') || token.contains('.')"
  - name: public
    route: GET /health
    auth: none
    allow: "true"
""" % (ISSUER, AUDIENCE, OTHER_ISSUER, AUDIENCE)

ROUTES = [("GET", "/orders/1"), ("POST", "/orders"), ("GET", "/reports"), ("GET", "/health")]
MODES = ["identity", "disabled"]


def rules_dir(tmp_path, mode: str, extra: str = ""):
    (tmp_path / "corp.json").write_bytes(default_jwks())
    (tmp_path / "other.json").write_bytes(jwks_bytes(public_jwk(ec_key(n=7), "o1")))
    return write(tmp_path / "rules.yaml", RULES.replace("MODE", mode) + extra)


def load(tmp_path, mode: str, extra: str = "", clock=None) -> Authorizer:
    authorizer = Authorizer.load(rules_dir(tmp_path, mode, extra))
    if clock is not None:  # the verifier's own clock: its token cache is used, as in Lambda
        authorizer = Authorizer(authorizer.ruleset, verifier=JwtVerifier(authorizer.ruleset.providers, clock=clock))
    return authorizer


def ask(authorizer, bearer, method="GET", path="/orders/1", now=NOW + 1, claims=None):
    event = build_event("rest-request", method, path, headers={"Authorization": f"Bearer {bearer}"})
    return authorizer.authorize(event, now=now, claims=claims)


def arn_of(method: str, path: str) -> str:
    return f"arn:aws:execute-api:us-east-1:123456789012:abc123/prod/{method}/{path.lstrip('/')}"


def other_token(**overrides) -> str:
    return token(ec_key(n=7), alg="ES256", kid="o1", iss=OTHER_ISSUER, **overrides)


def raw_token(payload_json: str) -> str:
    """A validly signed token whose payload is this exact JSON text (numbers no encoder writes)."""
    return forge({"alg": "RS256", "typ": "JWT", "kid": "k1"}, payload_json.encode(), key=rsa_key())


# ---------------------------------------------------------------- time claims out of range

HUGE = [
    "1" + "0" * 309,  # the first integer that is no float: OverflowError in float()
    "1" + "0" * 400,
    "-1" + "0" * 400,
    "1e308",  # a float, but no date
    "1E+400",
    "-1e400",  # inf and -inf once parsed
    "1.5e309",
    "253402300800",  # 10000-01-01T00:00:00Z, one second past the last CEL timestamp
    "-62135596801",  # one second before 0001-01-01
    "9223372036854775808",  # 2^63
]


def payload_with(name: str, number: str) -> str:
    base = claims()
    base.pop(name, None)
    text = json.dumps(base)
    return text[:-1] + f', "{name}": {number}}}'


@pytest.mark.parametrize("number", HUGE)
@pytest.mark.parametrize("name", ["exp", "nbf", "iat"])
def test_a_time_claim_out_of_range_is_jwt_invalid_in_the_verifier_and_its_token_cache(name, number):
    clock = FakeClock()
    verifier = JwtVerifier(
        [provider(algorithms=("RS256",))], clock=clock, fetcher=FakeFetcher({JWKS_URI: default_jwks()})
    )
    bad = raw_token(payload_with(name, number))
    for _ in range(2):  # the second time through the token cache's lookup, which must not hold it
        with pytest.raises(JwtError) as caught:
            verifier.verify(bad)
        assert caught.value.reason == "jwt_invalid"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("number", HUGE)
@pytest.mark.parametrize("name", ["exp", "nbf", "iat"])
def test_a_token_whose_time_claim_overflows_is_jwt_invalid_on_every_route_and_path(tmp_path, mode, name, number):
    authorizer = load(tmp_path, mode)
    clocked = load(tmp_path, mode, clock=FakeClock())
    bad = raw_token(payload_with(name, number))
    for method, path in ROUTES[:2]:
        for result in (
            ask(authorizer, bad, method, path),
            ask(clocked, bad, method, path, now=None),
            ask(clocked, bad, method, path, now=None),
        ):
            assert (result.decision.outcome, result.decision.reason) == ("unauthorized", "jwt_invalid")
            assert result.internal_error is None


def test_time_claims_at_the_edges_of_the_range_are_still_accepted(tmp_path):
    authorizer = load(tmp_path, "identity")
    good = raw_token(payload_with("exp", "253402300799"))  # 9999-12-31T23:59:59Z
    assert ask(authorizer, good).decision.outcome == "allow"
    early = raw_token(payload_with("nbf", "-62135596800"))
    assert ask(authorizer, early).decision.outcome == "allow"
    as_float = raw_token(payload_with("exp", "%r" % (NOW + 600.5)))
    assert ask(authorizer, as_float).decision.outcome == "allow"


@pytest.mark.parametrize("number", ["1" + "0" * 400, "1e308", "-1e400"])
def test_dry_run_says_jwt_invalid_for_an_overflowing_exp_with_a_token_and_with_claims(tmp_path, number):
    rules = str(rules_dir(tmp_path, "identity"))
    code, report = run_json(
        "dry-run",
        rules,
        "--method",
        "GET",
        "--path",
        "/orders/1",
        "--token",
        raw_token(payload_with("exp", number)),
        "--now",
        NOW_TEXT,
    )
    assert (report["decision"], report["reason"]) == ("unauthorized", "jwt_invalid")
    claims_file = write(tmp_path / "claims.json", payload_with("exp", number))
    done = run_cli("dry-run", rules, "--method", "GET", "--path", "/orders/1", "--claims", f"@{claims_file}", "--json")
    no_traceback(done)
    report = json.loads(done.stdout)
    assert (report["decision"], report["reason"]) == ("unauthorized", "jwt_invalid")


# ---------------------------------------------------------------- auth: token beside jwt:


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("opaque", ["key-123", "opaque-api-key", "a.b.c", "key-" + "x" * 2000])
def test_an_opaque_credential_is_accepted_on_token_routes_and_401_on_jwt_routes(tmp_path, mode, opaque):
    authorizer = load(tmp_path, mode)
    result = ask(authorizer, opaque, "GET", "/reports")
    expected = "allow" if opaque.startswith("key-") or "." in opaque else "deny"
    assert result.decision.outcome == expected and result.decision.reason in ("rule_true", "rule_false")
    assert result.decision.principal == "anonymous" and result.decision.provider == ""
    for method, path in ROUTES[:2]:
        denied = ask(authorizer, opaque, method, path)
        assert (denied.decision.outcome, denied.decision.reason) == ("unauthorized", "jwt_invalid")
    assert ask(authorizer, opaque, "GET", "/health").decision.outcome == "allow"


def test_the_cached_answer_for_an_opaque_credential_allows_its_token_routes_and_denies_every_jwt_route(tmp_path):
    authorizer = load(tmp_path, "identity")
    for asked in (("GET", "/reports"), ("GET", "/health")):
        result = ask(authorizer, "key-123", *asked)
        assert result.gateway_outcome == "allow"
        grants = {route: policy_eval.evaluate_response(result.response, arn_of(*route)) == "allow" for route in ROUTES}
        # One cached response cannot be a 401 on some routes: API Gateway answers 403 on the JWT routes.
        assert grants == {
            ("GET", "/orders/1"): False,
            ("POST", "/orders"): False,
            ("GET", "/reports"): True,
            ("GET", "/health"): True,
        }


@pytest.mark.parametrize("mode", MODES)
def test_a_jwt_on_a_token_route_is_a_credential_and_still_names_its_user(tmp_path, mode):
    authorizer = load(tmp_path, mode)
    for bearer, name in ((token(), "corp"), (other_token(sub="o-user"), "other")):
        result = ask(authorizer, bearer, "GET", "/reports")
        assert result.decision.outcome == "allow"
        assert result.decision.principal == ("user-1" if name == "corp" else "o-user")
        assert result.decision.context == {"provider": name}
    # An expired JWT is still a non-empty credential there, and 401 on the JWT routes.
    expired = token(exp=int(NOW) - 100)
    assert ask(authorizer, expired, "GET", "/reports").decision.outcome == "allow"
    assert ask(authorizer, expired).decision.reason == "jwt_expired"


def test_rules_on_a_token_route_see_no_claims_as_the_loader_warns(tmp_path):
    extra = """\
  - name: reads claims
    route: GET /claims
    auth: token
    allow: "size(claims) == 0 && auth.provider == ''"
"""
    for mode in MODES:
        authorizer = load(tmp_path, mode, extra)
        assert ask(authorizer, token(), "GET", "/claims").decision.outcome == "allow"
    done = run_cli("validate", str(rules_dir(tmp_path, "disabled", extra)))
    assert "claims are always empty here" in done.stdout + done.stderr


def test_ruleauth_test_and_dry_run_accept_an_opaque_credential_on_a_token_route(tmp_path):
    extra = """\
tests:
  - name: an api key reads reports
    request: {method: GET, path: /reports, headers: {Authorization: Bearer key-1}}
    expect: {decision: allow, principal: anonymous}
  - name: an api key is no JWT
    request: {method: GET, path: /orders/1, headers: {Authorization: Bearer key-1}}
    expect: {decision: unauthorized, reason: jwt_invalid}
"""
    rules = str(rules_dir(tmp_path, "identity", extra))
    done = run_cli("test", rules)
    assert done.returncode == 0 and "2 passed, 0 failed" in done.stdout, done.stdout
    code, report = run_json("dry-run", rules, "--method", "GET", "--path", "/reports", "--token", "key-1")
    assert (report["decision"], report["status"]) == ("allow", 200)
    assert sorted(report["policy_grants"]) == ["GET /health", "GET /reports"]


# ---------------------------------------------------------------- the default principal


@pytest.mark.parametrize("mode", MODES)
def test_the_default_principal_is_the_whole_sub_up_to_256_characters(tmp_path, mode):
    authorizer = load(tmp_path, mode)
    for sub in ("u", "a" * 255, "é" * 256, "b" * 256):
        result = ask(authorizer, token(sub=sub))
        assert result.decision.outcome == "allow" and result.response["principalId"] == sub


UNUSABLE_SUBS = [
    {"sub": "a" * 257},
    {"sub": "a" * 256 + "b"},
    {"sub": "x" * 4000},
    {"sub": ""},
    {"sub": None},
    {"sub": "anonymous"},
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("sub", UNUSABLE_SUBS, ids=["257", "256+1", "4000", "empty", "missing", "anonymous"])
def test_a_token_without_a_usable_sub_has_no_default_principal_and_is_denied(tmp_path, mode, sub, capsys):
    authorizer = load(tmp_path, mode)
    bearer = token(**sub)
    # Under identity caching one response serves every route, the public one too; without
    # caching a public route never reads the credential.
    for method, path in ROUTES if mode == "identity" else ROUTES[:3]:
        result = ask(authorizer, bearer, method, path)
        assert (result.decision.outcome, result.decision.reason, result.status) == ("deny", "principal_error", 403)
        assert "no default principal" in result.decision.detail
        assert result.response is not None
        assert all(policy_eval.evaluate_response(result.response, arn_of(*route)) != "allow" for route in ROUTES)
    assert ask(authorizer, bearer, "GET", "/orders/1").decision.provider == "corp"


def test_the_decision_log_says_why_a_token_has_no_principal(tmp_path):
    authorizer = load(tmp_path, "identity")
    import io

    from ruleauth.runtime.decision_log import DecisionLog

    stream = io.StringIO()
    authorizer_log = DecisionLog(stream=stream)
    result = ask(authorizer, token(sub="a" * 300))
    authorizer_log.write(result.decision, 1.0)
    line = json.loads(stream.getvalue())
    assert line["reason"] == "principal_error" and "no default principal" in line["detail"]
    assert "a" * 300 not in stream.getvalue()


@pytest.mark.parametrize("mode", MODES)
def test_a_non_string_sub_is_an_invalid_token(tmp_path, mode):
    authorizer = load(tmp_path, mode)
    for sub in (7, ["u"], {"id": "u"}, True):
        assert ask(authorizer, token(sub=sub)).decision.reason == "jwt_invalid"


def test_a_principal_expression_names_callers_the_default_cannot(tmp_path):
    extra = "principal: \"has(claims.sub) && claims.sub != '' ? claims.sub : 'client:' + claims.client_id\"\n"
    authorizer = load(tmp_path, "identity", extra)
    result = ask(authorizer, token(sub=None, client_id="svc-1"))
    assert result.decision.outcome == "allow" and result.response["principalId"] == "client:svc-1"


def test_offline_claims_without_a_usable_sub_get_principal_error_in_ruleauth_test(tmp_path):
    cases = "".join(
        f"""\
  - name: sub {i}
    request: {{method: GET, path: /orders/1}}
    claims: {json.dumps({"scope": "read:orders", **sub})}
    expect: {{decision: deny, reason: principal_error}}
"""
        for i, sub in enumerate([{"sub": "a" * 257}, {"sub": ""}, {}, {"sub": "anonymous"}])
    )
    done = run_cli("test", str(rules_dir(tmp_path, "identity", "tests:\n" + cases)))
    assert done.returncode == 0 and "4 passed, 0 failed" in done.stdout, done.stdout


# ---------------------------------------------------------------- scopes as a JSON array


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ["scope", "scp"])
def test_a_scope_array_of_strings_is_read_as_the_list(tmp_path, mode, name):
    authorizer = load(tmp_path, mode)
    other = "scp" if name == "scope" else "scope"
    for value, expected in (
        (["read:orders", "write:orders"], "allow"),
        (["read:orders"], "allow"),
        (["write:orders"], "deny"),
        ([], "deny"),
        (["read:orders write:orders"], "deny"),
        ("write:orders read:orders", "allow"),
    ):
        result = ask(authorizer, token(**{name: value, other: None}))
        assert result.decision.outcome == expected, value


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("value", [["read:orders", 1], ["read:orders", None], [["read:orders"]], 7, {"a": 1}, True])
def test_a_scope_that_is_neither_a_string_nor_a_list_of_strings_is_an_invalid_token(tmp_path, mode, value):
    authorizer = load(tmp_path, mode)
    for name in ("scope", "scp"):
        result = ask(authorizer, token(**{name: value, "scope" if name == "scp" else "scp": None}))
        assert (result.decision.outcome, result.decision.reason) == ("unauthorized", "jwt_invalid")


def test_offline_claims_read_scope_arrays_and_refuse_malformed_ones(tmp_path):
    rules = str(rules_dir(tmp_path, "identity"))
    for scope, decision in ((["read:orders"], "allow"), (["read:orders", 1], "unauthorized")):
        code, report = run_json(
            "dry-run",
            rules,
            "--method",
            "GET",
            "--path",
            "/orders/1",
            "--claims",
            json.dumps({"sub": "u", "scope": scope}),
        )
        assert report["decision"] == decision


# ---------------------------------------------------------------- offline claims pick providers


@pytest.mark.parametrize(
    "iss, production, offline",
    [
        (OTHER_ISSUER, "unauthorized", "unauthorized"),  # provider other, on a corp-only route
        (ISSUER, "allow", "allow"),
        ("https://unknown.example.test", None, "unauthorized"),
        (7, None, "unauthorized"),
    ],
)
def test_offline_claims_select_providers_as_real_tokens_do(tmp_path, iss, production, offline):
    authorizer = load(tmp_path, "identity")
    if production is not None:
        real = token() if iss == ISSUER else other_token()
        assert ask(authorizer, real, "POST", "/orders").decision.outcome == production
    offline_claims = {"iss": iss, "sub": "u1"}
    result = ask(authorizer, "t", "POST", "/orders", claims=offline_claims)
    assert result.decision.outcome == offline
    if offline == "unauthorized":
        assert result.decision.reason == "jwt_invalid"
    rules = str(rules_dir(tmp_path, "identity"))
    code, report = run_json(
        "dry-run", rules, "--method", "POST", "--path", "/orders", "--claims", json.dumps(offline_claims)
    )
    assert report["decision"] == offline
    case = f"""\
tests:
  - name: narrowed
    request: {{method: POST, path: /orders}}
    claims: {json.dumps(offline_claims)}
    expect: {offline}
"""
    done = run_cli("test", str(rules_dir(tmp_path, "identity", case)))
    assert done.returncode == 0 and "1 passed, 0 failed" in done.stdout, done.stdout


def test_offline_claims_without_iss_stand_for_the_routes_first_accepted_provider(tmp_path):
    authorizer = load(tmp_path, "disabled")
    result = ask(authorizer, "t", "GET", "/orders/1", claims={"sub": "u", "scope": "read:orders"})
    assert result.decision.outcome == "allow" and result.decision.provider == "corp"
    assert result.decision.context == {"provider": "corp"}


# ---------------------------------------------------------------- examples/jwt-api

EXAMPLE = ROOT / "examples" / "jwt-api"
PARTNERS = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Example"
PARTNER_CLIENT = "4k2example1client2id"


def example_authorizer(tmp_path) -> Authorizer:
    """The example's rules, with the providers' keys bundled (its issuers are not reachable here)."""
    ruleset = Authorizer.load(EXAMPLE).ruleset
    (tmp_path / "keys.json").write_bytes(jwks_bytes(public_jwk(rsa_key(), "k1")))
    providers = tuple(dataclasses.replace(p, jwks_file=str(tmp_path / "keys.json")) for p in ruleset.providers)
    return Authorizer(
        dataclasses.replace(ruleset, providers=providers), verifier=JwtVerifier(providers, clock=FakeClock())
    )


def partner_token(**extra) -> str:
    payload = {
        "iss": PARTNERS,
        "sub": "p1",
        "client_id": PARTNER_CLIENT,
        "token_use": "access",
        "iat": int(NOW) - 10,
        "exp": int(NOW) + 600,
        **extra,
    }
    return forge({"alg": "RS256", "kid": "k1"}, payload, key=rsa_key())


def corp_token(**extra) -> str:
    payload = {
        "iss": "https://login.example.com",
        "aud": "https://api.example.com",
        "sub": "u1",
        "iat": int(NOW) - 10,
        "exp": int(NOW) + 600,
        **extra,
    }
    return forge({"alg": "RS256", "kid": "k1", "typ": "at+jwt"}, payload, key=rsa_key())


def test_the_example_refuses_a_partner_token_claiming_admin_on_the_company_routes(tmp_path):
    authorizer = example_authorizer(tmp_path)
    admin_partner = partner_token(groups=["admin"], scope="orders/read orders:write orders:read")
    for method, path in (
        ("POST", "/orders"),
        ("PUT", "/orders/1"),
        ("GET", "/orders/1"),
        ("GET", "/orders/1/items"),
        ("DELETE", "/admin/users/7"),
    ):
        result = ask(authorizer, admin_partner, method, path)
        assert (result.decision.outcome, result.decision.reason) == ("unauthorized", "jwt_invalid"), (method, path)
    allowed = ask(authorizer, admin_partner, "GET", "/partner/orders")
    assert allowed.decision.outcome == "allow"
    for method, path in (("POST", "/orders"), ("GET", "/orders/1"), ("DELETE", "/admin/users/7")):
        assert policy_eval.evaluate_response(allowed.response, arn_of(method, path)) != "allow"
    # The company's admins still write.
    assert ask(authorizer, corp_token(groups=["admin"]), "POST", "/orders").decision.outcome == "allow"


def test_the_example_tests_pass_including_the_partner_refusal():
    done = run_cli("test", str(EXAMPLE))
    assert done.returncode == 0, done.stdout
    assert "0 failed" in done.stdout and "partner token is refused" in (EXAMPLE / "rules.yaml").read_text()


# ---------------------------------------------------------------- claim limits: one rule on every path


def nest(depth: int, innermost, container: str):
    """`depth` containers (objects or arrays) around `innermost`."""
    value = innermost
    for _ in range(depth):
        value = {"n": value} if container == "object" else [value]
    return value


INNERMOST = {"empty object": {}, "empty array": [], "scalar": 1}


@pytest.mark.parametrize("container", ["object", "array"])
@pytest.mark.parametrize("innermost", list(INNERMOST))
@pytest.mark.parametrize("depth", [31, 32, 33])
def test_claims_nested_past_32_are_jwt_invalid_on_the_token_path_and_the_offline_claims_path(
    tmp_path, container, innermost, depth
):
    # docs/spec.md "Limits": the claims object is depth 1 and only objects and arrays count, so
    # an innermost {} or [] is one level and a scalar none.
    inner = INNERMOST[innermost]
    wrappers = depth - 1 - (1 if isinstance(inner, (dict, list)) else 0)
    deep = nest(wrappers, inner, container)
    authorizer = load(tmp_path, "identity")
    by_token = ask(authorizer, token(deep=deep)).decision.reason
    offline = ask(authorizer, "offline", claims=claims(deep=deep)).decision.reason
    expected = "jwt_invalid" if depth > 32 else "rule_true"
    assert (by_token, offline) == (expected, expected)


@pytest.mark.parametrize("items, expected", [(256, "rule_true"), (257, "jwt_invalid")])
def test_a_claim_list_past_256_items_is_jwt_invalid_on_the_token_path_and_the_offline_claims_path(
    tmp_path, items, expected
):
    authorizer = load(tmp_path, "identity")
    groups = ["g"] * items
    assert ask(authorizer, token(groups=groups)).decision.reason == expected
    assert ask(authorizer, "offline", claims=claims(groups=groups)).decision.reason == expected
