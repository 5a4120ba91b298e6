"""Against a real OpenID provider: panva/oidc-provider (npm) run by node on 127.0.0.1.

It serves discovery and JWKS over HTTPS (certificate from a throwaway CA trusted
via SSL_CERT_FILE) and issues RFC 9068 JWT access tokens to two clients through
the client_credentials grant: rs-client (RS256) and es-client (ES256).
Install it with tests/oidc/setup.sh.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.request
from typing import Any

import pytest

from ruleauth.jwt.codecs import b64url_decode
from ruleauth.jwt.verifier import JwtError, JwtVerifier
from ruleauth.model import JwtProvider
from tests.jwt_support import FakeClock, ec_key, rsa_key
from tests.oidc.fixtures import *  # noqa: F403
from tests.oidc.fixtures import private_jwks
from tests.oidc.harness import OidcProvider

AUDIENCE = "https://api.example.test"


def config(op: OidcProvider, **overrides: Any) -> JwtProvider:
    base: dict[str, Any] = dict(
        name="op",
        issuer=op.issuer,
        audience=(AUDIENCE,),
        client_ids=("rs-client", "es-client"),
        algorithms=("RS256", "ES256"),
        typ="at+jwt",
    )
    base.update(overrides)
    return JwtProvider(**base)


def header_of(tok: str) -> dict[str, Any]:
    return json.loads(b64url_decode(tok.split(".")[0]))


def reason(verifier: JwtVerifier, tok: str) -> str:
    with pytest.raises(JwtError) as info:
        verifier.verify(tok)
    return info.value.reason


def test_provider_discovery_and_jwks_are_real(oidc_provider: OidcProvider) -> None:
    oidc_provider.start(private_jwks(("r1", rsa_key(2048, 0)), ("e1", ec_key("P-256", 0))))
    ctx = ssl.create_default_context()  # trusts the CA through SSL_CERT_FILE, like the fetcher
    with urllib.request.urlopen(oidc_provider.issuer + "/.well-known/openid-configuration", context=ctx) as resp:
        doc = json.load(resp)
    assert doc["issuer"] == oidc_provider.issuer
    assert "client_credentials" in doc["grant_types_supported"]
    with urllib.request.urlopen(doc["jwks_uri"], context=ctx) as resp:
        published = json.load(resp)["keys"]
    assert {k["kid"] for k in published} == {"r1", "e1"}
    assert all("d" not in k for k in published)  # only public halves are published


def test_provider_tokens_verify_rs256_and_es256(oidc_provider: OidcProvider) -> None:
    oidc_provider.start(private_jwks(("r1", rsa_key(2048, 0)), ("e1", ec_key("P-256", 0))))
    rs = oidc_provider.client_credentials_token("rs-client", "rs-secret")
    es = oidc_provider.client_credentials_token("es-client", "es-secret", scope="read:orders write:orders")
    # The clock starts once the tokens exist: a clock read before issuance can sit in the
    # second before their `iat`, and a future iat is (rightly) refused.
    clock = FakeClock(time.time())
    verifier = JwtVerifier([config(oidc_provider)], clock=clock)
    rs_claims = verifier.verify(rs).claims
    es_claims = verifier.verify(es).claims
    assert rs_claims["client_id"] == "rs-client" and rs_claims["aud"] == AUDIENCE
    assert es_claims["client_id"] == "es-client" and es_claims["scope"] == "read:orders write:orders"
    assert header_of(rs)["alg"] == "RS256" and header_of(es)["alg"] == "ES256"
    assert header_of(rs)["typ"] == "at+jwt"
    keys = verifier.keys_for("op")
    assert keys.fetch_count == 1  # discovery + JWKS once, then cached
    # the same real tokens, checked against a stricter or different configuration
    assert (
        reason(JwtVerifier([config(oidc_provider, audience=("https://other.example",))], clock=clock), rs)
        == "jwt_invalid"
    )
    assert reason(JwtVerifier([config(oidc_provider, client_ids=("es-client",))], clock=clock), rs) == "jwt_invalid"
    assert reason(JwtVerifier([config(oidc_provider, algorithms=("RS256",))], clock=clock), es) == "jwt_invalid"
    assert (
        reason(JwtVerifier([config(oidc_provider, issuer=oidc_provider.issuer + "/")], clock=clock), rs)
        == "jwt_invalid"
    )
    clock.advance(601)  # the provider issues 600 s tokens
    assert reason(verifier, rs) == "jwt_expired"


def test_K09_J28_provider_key_rotation(oidc_provider: OidcProvider) -> None:
    r1, r2, e1 = rsa_key(2048, 0), rsa_key(2048, 1), ec_key("P-256", 0)
    oidc_provider.start(private_jwks(("r1", r1), ("e1", e1)))
    old = oidc_provider.client_credentials_token("rs-client", "rs-secret")
    clock = FakeClock(time.time())  # after issuance: see test_provider_tokens_verify_rs256_and_es256
    verifier = JwtVerifier([config(oidc_provider)], clock=clock)  # lifespan 300 s, cooldown 30 s
    assert verifier.verify(old)

    # rotation: r2 is published (and signs), r1 is withdrawn
    oidc_provider.restart(private_jwks(("r2", r2), ("e1", e1)))
    new = oidc_provider.client_credentials_token("rs-client", "rs-secret")
    assert header_of(new)["kid"] == "r2"
    clock.advance(10)
    assert reason(verifier, new) == "jwt_invalid"  # unknown kid, but the last fetch was < cooldown ago
    clock.advance(20)
    assert verifier.verify(new)  # once published and the cooldown has passed: accepted
    # r1 is gone from the refetched set: its tokens fail (the verified-token cache follows the keys)
    assert reason(verifier, old) == "jwt_invalid"

    # a verifier that cached r1 earlier keeps it only for the lifespan
    oidc_provider.restart(private_jwks(("r1", r1), ("e1", e1)))
    token_r1 = oidc_provider.client_credentials_token("rs-client", "rs-secret")
    clock2 = FakeClock(time.time())
    warm = JwtVerifier([config(oidc_provider)], clock=clock2)
    assert warm.verify(token_r1)
    oidc_provider.restart(private_jwks(("r2", r2), ("e1", e1)))
    clock2.advance(299)
    assert warm.verify(token_r1)  # within the lifespan, still trusted
    clock2.advance(2)
    assert reason(warm, token_r1) == "jwt_invalid"  # after the lifespan: rejected
    assert warm.verify(oidc_provider.client_credentials_token("es-client", "es-secret"))


def test_provider_down_cold_is_jwks_unavailable(oidc_provider: OidcProvider) -> None:
    oidc_provider.start(private_jwks(("r1", rsa_key(2048, 0))))
    tok = oidc_provider.client_credentials_token("rs-client", "rs-secret")
    oidc_provider.stop()
    verifier = JwtVerifier([config(oidc_provider)], clock=FakeClock(time.time()), fetch_timeout=1.0)
    assert reason(verifier, tok) == "jwks_unavailable"
