"""Opaque tokens by RFC 7662 introspection, against real endpoints on 127.0.0.1.

panva's oidc-provider (tests/oidc/provider.mjs, run by node over HTTPS) issues opaque access
tokens to `opaque-client` through the client_credentials grant, introspects them for the
authorizer's own client `ruleauth-authorizer` (client_secret_basic) and revokes them (RFC
7009). A small Python HTTPS server (tests/oidc/harness.py FaultServer) answers slowly,
hugely, wrongly or not at all. Install the provider with tests/oidc/setup.sh.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ruleauth.errors import RulesError
from ruleauth.jwt.verifier import JwtVerifier
from ruleauth.rules import loader as rules_loader
from ruleauth.runtime.authorizer import Authorizer
from ruleauth.runtime.decision_log import DecisionLog
from ruleauth.runtime.lambda_handler import make_handler
from ruleauth.tools.cli import main as cli_main
from ruleauth.tools.synthetic_events import build_event
from tests.jwt_support import FakeClock, rsa_key
from tests.oidc.fixtures import *  # noqa: F403
from tests.oidc.fixtures import private_jwks
from tests.oidc.harness import FaultServer, OidcProvider, TlsFiles, endless, redirect, reply, slow_drip

AUDIENCE = "https://api.example.test"
SECRET_ENV = "RULEAUTH_TEST_INTROSPECTION_SECRET"
SECRET = "authorizer-secret"  # ruleauth-authorizer's secret in tests/oidc/provider.mjs
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "events"


def rules_text(issuer: str, url: str, *, cache_ttl: int = 60, client_id: str = "ruleauth-authorizer") -> str:
    return f"""\
version: 1
cache: {{mode: disabled}}
token: {{header: Authorization, scheme: Bearer}}
jwt:
  - name: idp
    issuer: {issuer}
    audience: [{AUDIENCE}]
  - name: opaque
    issuer: {issuer}
    audience: [{AUDIENCE}]
    introspection:
      url: {url}
      client_id: {client_id}
      client_secret_env: {SECRET_ENV}
      cache_ttl: {cache_ttl}
principal: claims.client_id
context:
  client: claims.client_id
rules:
  - name: orders
    route: GET /orders
    allow: "'read:orders' in scopes"
  - name: jwt only
    route: GET /jwt-only
    auth: {{jwt: [idp]}}
    allow: "true"
  - name: opaque only
    route: GET /opaque-only
    auth: {{jwt: [opaque]}}
    allow: "true"
"""


def write_rules(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return path


def authorizer_for(
    rules: Path, clock: FakeClock, secret: str = SECRET, fetch_timeout: float = 3.0, cache_size: int = 1024
) -> Authorizer:
    ruleset = rules_loader.load(rules)
    verifier = JwtVerifier(
        ruleset.providers,
        clock=clock,
        environ={SECRET_ENV: secret},
        fetch_timeout=fetch_timeout,
        introspection_cache_size=cache_size,
    )
    return Authorizer(ruleset, verifier=verifier)


def request(token: str, path: str = "/orders") -> dict[str, Any]:
    return build_event("rest-request", "GET", path, headers={"Authorization": f"Bearer {token}"})


def stats(authorizer: Authorizer) -> tuple[int, int, int, int]:
    return authorizer.verifier.introspection_stats()["opaque"]


@pytest.fixture(scope="module")
def provider(tls_files: TlsFiles, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    """One real provider for the module: starting node costs about a second."""
    op = OidcProvider(tls_files, tmp_path_factory.mktemp("op"))
    op.start(private_jwks(("r1", rsa_key(2048, 0))))
    try:
        yield op
    finally:
        op.stop()


@pytest.fixture
def op(provider: OidcProvider, trust_test_ca: TlsFiles) -> OidcProvider:
    return provider


@pytest.fixture
def op_rules(op: OidcProvider, tmp_path: Path) -> Path:
    return write_rules(tmp_path, rules_text(op.issuer, op.introspection_endpoint))


# ---------------------------------------------------------------- the real provider


def test_an_active_opaque_token_is_allowed_with_the_introspection_answer_as_claims(
    op: OidcProvider, op_rules: Path
) -> None:
    token = op.client_credentials_token("opaque-client", "opaque-secret")
    assert token.count(".") != 2  # opaque: no JWT
    authorizer = authorizer_for(op_rules, FakeClock(time.time()))
    result = authorizer.authorize(request(token))
    decision = result.decision
    assert (decision.outcome, decision.reason, decision.provider) == ("allow", "rule_true", "opaque")
    claims = decision.identity.claims
    assert claims["active"] is True and claims["client_id"] == "opaque-client"
    assert claims["aud"] == AUDIENCE and claims["iss"] == op.issuer and claims["token_type"] == "Bearer"
    assert claims["scope"] == "read:orders" and isinstance(claims["exp"], int)
    assert token not in json.dumps(claims)  # the endpoint leaves out a jti equal to the token
    assert decision.principal == "opaque-client" and result.response is not None
    assert result.response["context"] == {"client": "opaque-client"}
    assert stats(authorizer) == (1, 0, 0, 1)


def test_K11_a_jwt_goes_to_the_jwt_provider_and_an_opaque_token_to_introspection(
    op: OidcProvider, op_rules: Path
) -> None:
    jwt_token = op.client_credentials_token("rs-client", "rs-secret")
    opaque = op.client_credentials_token("opaque-client", "opaque-secret")
    authorizer = authorizer_for(op_rules, FakeClock(time.time()))
    on_jwt = authorizer.authorize(request(jwt_token)).decision
    assert (on_jwt.outcome, on_jwt.provider) == ("allow", "idp")
    assert stats(authorizer) == (0, 0, 0, 0)  # a JWT is never posted to the endpoint
    # a route naming one provider accepts only its kind of token
    assert authorizer.authorize(request(jwt_token, "/jwt-only")).decision.outcome == "allow"
    assert authorizer.authorize(request(opaque, "/opaque-only")).decision.outcome == "allow"
    refused_jwt = authorizer.authorize(request(jwt_token, "/opaque-only")).decision
    assert (refused_jwt.outcome, refused_jwt.reason) == ("unauthorized", "jwt_invalid")
    refused_opaque = authorizer.authorize(request(opaque, "/jwt-only")).decision
    assert (refused_opaque.outcome, refused_opaque.reason) == ("unauthorized", "jwt_invalid")
    assert "not a JWT" in refused_opaque.detail
    assert stats(authorizer)[0] == 1  # the refused opaque token was not sent either


def test_a_token_the_provider_never_issued_is_token_inactive_and_its_answer_is_cached(
    op: OidcProvider, op_rules: Path
) -> None:
    authorizer = authorizer_for(op_rules, FakeClock(time.time()))
    for _ in range(3):
        decision = authorizer.authorize(request("never-issued-" + "x" * 30)).decision
        assert (decision.outcome, decision.reason) == ("unauthorized", "token_inactive")
    assert stats(authorizer) == (1, 0, 2, 1)


def test_K15_a_revoked_token_is_inactive_once_the_cache_ttl_has_passed(op: OidcProvider, op_rules: Path) -> None:
    token = op.client_credentials_token("opaque-client", "opaque-secret")
    clock = FakeClock(time.time())
    authorizer = authorizer_for(op_rules, clock)
    assert authorizer.authorize(request(token)).decision.outcome == "allow"
    op.revoke(token, "opaque-client", "opaque-secret")
    clock.advance(59)  # within cache_ttl 60: the warm container still trusts its answer
    assert authorizer.authorize(request(token)).decision.outcome == "allow"
    assert stats(authorizer) == (1, 0, 1, 1)
    clock.advance(1)
    decision = authorizer.authorize(request(token)).decision
    assert (decision.outcome, decision.reason) == ("unauthorized", "token_inactive")
    assert stats(authorizer) == (2, 0, 1, 2)


def test_cache_ttl_0_asks_the_endpoint_every_time(op: OidcProvider, tmp_path: Path) -> None:
    rules = write_rules(tmp_path, rules_text(op.issuer, op.introspection_endpoint, cache_ttl=0))
    token = op.client_credentials_token("opaque-client", "opaque-secret")
    authorizer = authorizer_for(rules, FakeClock(time.time()))
    assert authorizer.authorize(request(token)).decision.outcome == "allow"
    op.revoke(token, "opaque-client", "opaque-secret")
    assert authorizer.authorize(request(token)).decision.reason == "token_inactive"
    assert stats(authorizer) == (2, 0, 0, 0)


def test_K13_wrong_client_credentials_are_an_outage_not_a_bad_token(
    op: OidcProvider, op_rules: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """RFC 7662 §2.3: a 401 from the endpoint refuses the authorizer, not the caller's token."""
    token = op.client_credentials_token("opaque-client", "opaque-secret")
    clock = FakeClock(time.time())
    authorizer = authorizer_for(op_rules, clock, secret="not-the-secret")
    with caplog.at_level(logging.WARNING, logger="ruleauth.jwt.introspection"):
        decision = authorizer.authorize(request(token)).decision
        assert (decision.outcome, decision.reason) == ("unauthorized", "introspection_unavailable")
        assert "HTTP 401" in decision.detail and "client_id and secret" in decision.detail
        clock.advance(0.5)  # within a second of the failure: refused at once, without a request
        decision = authorizer.authorize(request(token)).decision
        assert (decision.reason, "not asked again yet" in decision.detail) == ("introspection_unavailable", True)
        assert stats(authorizer) == (1, 1, 0, 2)  # a failure is never cached
        clock.advance(0.5)
        assert authorizer.authorize(request(token)).decision.reason == "introspection_unavailable"
    assert stats(authorizer) == (2, 2, 0, 3)
    assert [r.getMessage().count("HTTP 401") for r in caplog.records] == [1, 1]  # one line per failed request
    assert all("not-the-secret" not in r.getMessage() for r in caplog.records)


def test_K12_after_a_failure_the_endpoint_is_asked_again_a_second_later(endpoint: tuple[FaultServer, Path]) -> None:
    server, rules = endpoint
    clock = FakeClock(time.time())
    authorizer = authorizer_for(rules, clock)
    server.routes["/introspect"] = reply(b"", status=503)
    assert authorizer.authorize(request("opaque-1")).decision.reason == "introspection_unavailable"
    server.routes["/introspect"] = reply(active())  # the endpoint recovers
    assert authorizer.authorize(request("opaque-1")).decision.reason == "introspection_unavailable"
    clock.advance(1)
    assert authorizer.authorize(request("opaque-1")).decision.outcome == "allow"
    assert authorizer.authorize(request("opaque-2")).decision.outcome == "allow"  # and the window is over
    assert len(server.posts) == 3


def test_K13_an_unknown_authorizer_client_is_an_outage_too(op: OidcProvider, tmp_path: Path) -> None:
    rules = write_rules(tmp_path, rules_text(op.issuer, op.introspection_endpoint, client_id="nobody"))
    token = op.client_credentials_token("opaque-client", "opaque-secret")
    decision = authorizer_for(rules, FakeClock(time.time())).authorize(request(token)).decision
    assert (decision.outcome, decision.reason) == ("unauthorized", "introspection_unavailable")


def test_K14_the_secret_is_in_no_log_line_message_repr_snapshot_or_validate_output(
    op: OidcProvider,
    op_rules: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = op.client_credentials_token("opaque-client", "opaque-secret")
    monkeypatch.setenv(SECRET_ENV, SECRET)
    monkeypatch.setenv("RULEAUTH_METRICS", "1")
    fragments = {SECRET, base64.b64encode(f"ruleauth-authorizer:{SECRET}".encode()).decode()}
    with caplog.at_level(logging.DEBUG):
        handler = make_handler(op_rules, environ=dict(os.environ))
        handler(request(token))  # allowed
        for bad in ("never-issued-token", "a.b.c"):
            with pytest.raises(Exception, match=r"^Unauthorized$"):
                handler(request(bad))
        # and an outage, whose message is logged
        failing = Authorizer.load(op_rules, environ={SECRET_ENV: "wrong-" + SECRET})
        failed = failing.authorize(request(token))
        assert failed.decision.reason == "introspection_unavailable"
        DecisionLog(1.0).write(failed.decision, failed.latency_ms, failed.internal_error)
        statuses = [
            cli_main(["validate", str(op_rules), "--json"]),
            cli_main(["dry-run", str(op_rules), "--method", "GET", "--path", "/orders", "--token", token]),
            cli_main(["snapshot", str(op_rules)]),
        ]
    out = capsys.readouterr()
    assert statuses == [0, 0, 0], (out.out[-2000:], out.err[-2000:])
    snapshots = [f.read_bytes().decode("latin-1") for f in op_rules.parent.glob(".*snapshot")]
    assert snapshots and all(SECRET_ENV in text for text in snapshots)  # the variable's name only
    texts = [out.out, out.err, *snapshots, *(r.getMessage() for r in caplog.records)]
    verifier = failing.verifier
    texts += [repr(verifier), repr(verifier.introspector), repr(vars(verifier.introspector)), failed.decision.detail]
    assert '"IntrospectionRequests"' in out.out  # the EMF lines were written, and are checked too
    assert '"decision":"allow"' in out.out.replace(" ", "") or '"decision": "allow"' in out.out
    leaks = [text[max(0, text.find(f) - 80) : text.find(f) + 80] for text in texts for f in fragments if f in text]
    assert leaks == []


# ---------------------------------------------------------------- the request the authorizer sends


@pytest.fixture
def endpoint(fault_server: FaultServer, tmp_path: Path) -> tuple[FaultServer, Path]:
    rules = write_rules(tmp_path, rules_text(fault_server.base, fault_server.url("/introspect")))
    return fault_server, rules


def active(**claims: Any) -> dict[str, Any]:
    return {"active": True, "aud": AUDIENCE, "client_id": "c1", "scope": "read:orders", **claims}


def test_the_request_is_a_form_post_with_basic_client_authentication(endpoint: tuple[FaultServer, Path]) -> None:
    server, rules = endpoint
    server.routes["/introspect"] = reply(active())
    token = "opaque+token/with=odd&chars"
    decision = authorizer_for(rules, FakeClock(time.time())).authorize(request(token)).decision
    assert decision.outcome == "allow"
    ((path, headers, body),) = server.posts
    assert path == "/introspect"
    assert urllib.parse.parse_qs(body.decode("ascii"), strict_parsing=True) == {
        "token": [token],
        "token_type_hint": ["access_token"],
    }
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert headers["Authorization"] == "Basic " + base64.b64encode(f"ruleauth-authorizer:{SECRET}".encode()).decode()


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (reply(b"not json"), "not JSON"),
        (reply(b'[{"active": true}]'), "not a JSON object"),
        (reply({"scope": "read:orders"}), "boolean `active`"),
        (reply({"active": "true"}), "boolean `active`"),
        (reply(b'{"active": true, "active": false}'), "not JSON"),
        (reply({"error": "server_error"}, status=500), "HTTP 500"),
        (reply({"error": "invalid_client"}, status=401), "HTTP 401"),
        (redirect("https://127.0.0.1:1/elsewhere"), "redirect refused"),
    ],
    ids=["not-json", "array", "no-active", "string-active", "duplicate-member", "500", "401", "redirect"],
)
def test_K12_a_malformed_or_failed_answer_is_introspection_unavailable(
    endpoint: tuple[FaultServer, Path], answer: Any, why: str
) -> None:
    server, rules = endpoint
    server.routes["/introspect"] = answer
    authorizer = authorizer_for(rules, FakeClock(time.time()))
    decision = authorizer.authorize(request("opaque-1")).decision
    assert (decision.outcome, decision.reason) == ("unauthorized", "introspection_unavailable")
    assert why in decision.detail
    assert stats(authorizer) == (1, 1, 0, 1)


def test_K12_a_slow_endpoint_is_introspection_unavailable_at_the_deadline(endpoint: tuple[FaultServer, Path]) -> None:
    server, rules = endpoint
    server.routes["/introspect"] = slow_drip(interval=0.05)
    authorizer = authorizer_for(rules, FakeClock(time.time()), fetch_timeout=0.3)
    decision = authorizer.authorize(request("opaque-1")).decision
    assert (decision.outcome, decision.reason) == ("unauthorized", "introspection_unavailable")
    assert "deadline" in decision.detail


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
def test_K12_a_huge_answer_is_introspection_unavailable_at_the_byte_cap(
    endpoint: tuple[FaultServer, Path], chunked: bool
) -> None:
    server, rules = endpoint
    server.routes["/introspect"] = endless(chunked=chunked)
    decision = authorizer_for(rules, FakeClock(time.time())).authorize(request("opaque-1")).decision
    assert (decision.outcome, decision.reason) == ("unauthorized", "introspection_unavailable")
    assert "cap" in decision.detail


def test_K12_a_down_endpoint_is_introspection_unavailable(endpoint: tuple[FaultServer, Path]) -> None:
    server, rules = endpoint
    server.stop()
    decision = authorizer_for(rules, FakeClock(time.time())).authorize(request("opaque-1")).decision
    assert (decision.outcome, decision.reason) == ("unauthorized", "introspection_unavailable")


# ---------------------------------------------------------------- the claim checks


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (active(aud="https://other.example.test"), "jwt_invalid"),
        (active(iss="https://other.example.test"), "jwt_invalid"),
        (active(exp=int(time.time()) - 10), "jwt_expired"),
        (active(nbf=int(time.time()) + 3600), "jwt_invalid"),
        (active(exp="soon"), "jwt_invalid"),
        (active(scope=7), "jwt_invalid"),
        (active(sub=["a"]), "jwt_invalid"),
        ({"active": True, "client_id": "c1", "scope": "read:orders"}, "jwt_invalid"),  # no aud
        ({"active": False, "aud": AUDIENCE, "scope": "read:orders"}, "token_inactive"),
    ],
    ids=["aud", "iss", "expired", "nbf", "exp-string", "scope-number", "sub-list", "no-aud", "inactive"],
)
def test_an_active_answer_gets_the_claim_checks_of_a_jwt(
    endpoint: tuple[FaultServer, Path], answer: dict[str, Any], reason: str
) -> None:
    server, rules = endpoint
    server.routes["/introspect"] = reply(answer)
    decision = authorizer_for(rules, FakeClock(time.time())).authorize(request("opaque-1")).decision
    assert (decision.outcome, decision.reason) == ("unauthorized", reason)


def test_an_answer_without_exp_or_iss_is_accepted_for_the_ttl(endpoint: tuple[FaultServer, Path]) -> None:
    server, rules = endpoint
    server.routes["/introspect"] = reply(active())
    clock = FakeClock(time.time())
    authorizer = authorizer_for(rules, clock)
    assert authorizer.authorize(request("opaque-1")).decision.outcome == "allow"
    clock.advance(60)
    assert authorizer.authorize(request("opaque-1")).decision.outcome == "allow"
    assert stats(authorizer) == (2, 0, 0, 2)


# ---------------------------------------------------------------- the cache


def test_K15_a_cached_answer_never_outlives_the_tokens_exp(endpoint: tuple[FaultServer, Path]) -> None:
    server, rules = endpoint
    clock = FakeClock(float(int(time.time())))
    server.routes["/introspect"] = reply(active(exp=int(clock.now) + 10))
    authorizer = authorizer_for(rules, clock)
    assert authorizer.authorize(request("opaque-1")).decision.outcome == "allow"
    clock.advance(9)
    assert authorizer.authorize(request("opaque-1")).decision.outcome == "allow"
    assert stats(authorizer) == (1, 0, 1, 1)
    clock.advance(1)  # exp reached, well within cache_ttl 60: the entry is gone, the endpoint asked again
    assert authorizer.authorize(request("opaque-1")).decision.reason == "jwt_expired"
    assert stats(authorizer) == (2, 0, 1, 2)


def test_K15_the_cache_is_keyed_by_the_tokens_sha256_and_bounded(endpoint: tuple[FaultServer, Path]) -> None:
    server, rules = endpoint
    server.routes["/introspect"] = reply(active())
    authorizer = authorizer_for(rules, FakeClock(time.time()), cache_size=2)
    tokens = ["opaque-a", "opaque-b", "opaque-c"]
    for token in tokens:
        assert authorizer.authorize(request(token)).decision.outcome == "allow"
    cache = authorizer.verifier.introspector._cache
    assert len(cache) == 2
    keys = set(cache._items)
    assert keys == {hashlib.sha256(t.encode()).digest() for t in tokens[1:]}
    assert not any(t.encode() in key for key in keys for t in tokens)
    assert authorizer.authorize(request("opaque-c")).decision.outcome == "allow"  # a hit
    assert authorizer.authorize(request("opaque-a")).decision.outcome == "allow"  # evicted: asked again
    assert stats(authorizer) == (4, 0, 1, 4)
    assert len(server.posts) == 4


def test_K15_claims_from_the_cache_are_a_fresh_copy_per_request(endpoint: tuple[FaultServer, Path]) -> None:
    server, rules = endpoint
    server.routes["/introspect"] = reply(active(groups=["user"]))
    verifier = authorizer_for(rules, FakeClock(time.time())).verifier
    first = verifier.verify("opaque-1")
    first.claims["groups"].append("admin")
    again = verifier.verify("opaque-1")
    assert again.claims["groups"] == ["user"] and verifier.introspection_stats()["opaque"][2] == 1


def test_metrics_count_requests_failures_hits_and_misses(
    endpoint: tuple[FaultServer, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    server, rules = endpoint
    server.routes["/introspect"] = reply(active())
    handler = make_handler(rules, environ={SECRET_ENV: SECRET, "RULEAUTH_METRICS": "1"})
    handler(request("opaque-1"))
    handler(request("opaque-1"))
    server.routes["/introspect"] = reply(b"", status=503)
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        handler(request("opaque-2"))
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "Introspection" in line]
    names = ("IntrospectionRequests", "IntrospectionFailures", "IntrospectionCacheHits", "IntrospectionCacheMisses")
    counts = [tuple(line[name] for name in names) for line in lines]
    assert counts == [(1, 0, 0, 1), (0, 0, 1, 0), (1, 1, 0, 1)]
    assert {line["Provider"] for line in lines} == {"opaque"}


# ---------------------------------------------------------------- the secret's variable


def test_K14_an_unset_secret_variable_fails_the_cold_start_naming_it_with_its_line(
    endpoint: tuple[FaultServer, Path],
) -> None:
    server, rules = endpoint
    with pytest.raises(RulesError) as info:
        make_handler(rules, environ={})
    message = str(info.value)
    assert SECRET_ENV in message and f"{rules}:14:" in message
    assert server.posts == []


def test_without_the_variable_the_cli_loads_and_introspection_is_unavailable(
    endpoint: tuple[FaultServer, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The build (`ruleauth snapshot`) and the CLI run where the deployment's secret is not."""
    server, rules = endpoint
    server.routes["/introspect"] = reply(active())
    monkeypatch.delenv(SECRET_ENV, raising=False)
    assert cli_main(["validate", str(rules)]) == 0
    capsys.readouterr()
    status = cli_main(["dry-run", str(rules), "--method", "GET", "--path", "/orders", "--token", "opaque-1", "--json"])
    shown = json.loads(capsys.readouterr().out)
    assert (status, shown["decision"], shown["reason"]) == (0, "unauthorized", "introspection_unavailable")
    assert SECRET_ENV in json.dumps(shown)  # the explanation names the variable to set
    assert server.posts == []


# ---------------------------------------------------------------- configuration at load

PROVIDER = """\
version: 1
jwt:
  - name: opaque
    issuer: https://idp.example.test
    audience: [https://api.example.test]
{extra}    introspection:
{introspection}
rules:
  - name: any
    route: GET /x
    allow: "true"
"""
GOOD = """\
      url: https://idp.example.test/introspect
      client_id: ruleauth
      client_secret_env: IDP_SECRET"""


def load_problems(tmp_path: Path, introspection: str = GOOD, extra: str = "", more: str = "") -> list[str]:
    text = PROVIDER.format(introspection=introspection, extra=extra).replace("rules:\n", more + "rules:\n")
    try:
        rules_loader.load(write_rules(tmp_path, text))
    except RulesError as exc:
        return [p.format() for p in exc.problems]
    return []


def test_a_good_introspection_provider_loads_and_keeps_only_the_variables_name(tmp_path: Path) -> None:
    assert load_problems(tmp_path) == []
    (provider,) = rules_loader.load(tmp_path / "rules.yaml").providers
    assert provider.introspection is not None
    assert (provider.introspection.client_secret_env, provider.introspection.cache_ttl) == ("IDP_SECRET", 60)


@pytest.mark.parametrize(
    ("introspection", "extra", "expected"),
    [
        (GOOD.replace("https://idp.example.test/introspect", "http://idp.example.test/introspect"), "", "https://"),
        (GOOD.replace("IDP_SECRET", "'s3cr3t value'"), "", "NAME of an environment variable"),
        (GOOD + "\n      cache_ttl: 3601", "", "cache_ttl must be a whole number of seconds from 0 to 3600"),
        (GOOD + "\n      cache_ttl: 1.5", "", "cache_ttl must be a whole number of seconds"),
        (GOOD + "\n      cache_tll: 5", "", "cache_ttl"),  # a typo gets its suggestion
        ("\n".join(GOOD.splitlines()[:2]), "", "needs client_secret_env"),
        (GOOD, "    algorithms: [RS256]\n", "jwt.algorithms is not used by an introspection provider"),
        (GOOD, "    jwks_uri: https://idp.example.test/jwks\n", "jwt.jwks_uri is not used"),
    ],
    ids=["http", "secret-in-rules", "ttl-too-long", "ttl-float", "typo", "no-secret-env", "algorithms", "jwks_uri"],
)
def test_a_bad_introspection_provider_is_a_load_error_at_its_line(
    tmp_path: Path, introspection: str, extra: str, expected: str
) -> None:
    problems = load_problems(tmp_path, introspection, extra)
    assert problems and any(expected in p for p in problems), problems
    assert all(p.startswith(str(tmp_path / "rules.yaml") + ":") for p in problems)
    assert all("s3cr3t value" not in p for p in problems)


def test_K11_two_introspection_providers_are_a_load_error(tmp_path: Path) -> None:
    second = (
        "  - name: other\n    issuer: https://other.example.test\n    audience: [https://api.example.test]\n"
        "    introspection:\n" + GOOD.replace("IDP_SECRET", "OTHER_SECRET") + "\n"
    )
    problems = load_problems(tmp_path, GOOD + "\n" + second.rstrip("\n"))
    assert any("only one provider may use introspection" in p for p in problems), problems


# ---------------------------------------------------------------- with the rest of ruleauth


def test_offline_claims_naming_a_shared_issuer_stand_for_the_provider_the_route_accepts(
    endpoint: tuple[FaultServer, Path],
) -> None:
    server, rules = endpoint
    authorizer = authorizer_for(rules, FakeClock(time.time()))
    claims = {"iss": server.base, "client_id": "c1", "scope": "read:orders"}
    for path, provider in (("/jwt-only", "idp"), ("/opaque-only", "opaque"), ("/orders", "idp")):
        decision = authorizer.authorize(request("offline", path), claims=claims).decision
        assert (decision.outcome, decision.provider) == ("allow", provider), path
    assert server.posts == []


def test_an_introspected_token_under_identity_caching_gets_the_table_of_its_routes(
    endpoint: tuple[FaultServer, Path], tmp_path: Path
) -> None:
    server, rules = endpoint
    rules.write_text(rules.read_text().replace("cache: {mode: disabled}\n", ""))
    server.routes["/introspect"] = reply(active())
    authorizer = authorizer_for(rules, FakeClock(time.time()))
    result = authorizer.authorize(request("opaque-1", "/opaque-only"))
    assert result.decision.outcome == "allow" and result.response is not None
    statements = result.response["policyDocument"]["Statement"]
    allowed = {r.rsplit("/", 2)[-1] for s in statements if s["Effect"] == "Allow" for r in s["Resource"]}
    # the routes the opaque token satisfies, and not the one that takes only JWTs
    assert allowed == {"orders", "opaque-only"}
    assert stats(authorizer)[0] == 1  # one request, whatever the number of (auth, providers) pairs asked


def test_rules_from_a_snapshot_keep_the_introspection_provider(
    endpoint: tuple[FaultServer, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    server, rules = endpoint
    server.routes["/introspect"] = reply(active())
    assert cli_main(["snapshot", str(rules)]) == 0
    capsys.readouterr()
    handler = make_handler(rules, environ={SECRET_ENV: SECRET})
    assert "snapshot not used" not in capsys.readouterr().out
    assert handler(request("opaque-1"))["principalId"] == "c1"
    assert len(server.posts) == 1


def test_dry_run_says_the_token_was_introspected_not_verified_as_a_jwt(
    endpoint: tuple[FaultServer, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    server, rules = endpoint
    server.routes["/introspect"] = reply(active())
    monkeypatch.setenv(SECRET_ENV, SECRET)
    args = ["dry-run", str(rules), "--method", "GET", "--path", "/orders", "--token", "opaque-1"]
    assert cli_main(args) == 0
    text = capsys.readouterr().out
    assert "opaque token, active by provider 'opaque'" in text and "verified JWT" not in text
    assert cli_main([*args, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["decision"], shown["verified"], shown["principal"]) == ("allow", True, "c1")
