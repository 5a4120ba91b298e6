"""Provider configuration: what `provider_problems` and the constructor refuse, and bundled keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ruleauth.jwt.fetch import check_https_url
from ruleauth.jwt.verifier import JwtConfigError, JwtError, JwtVerifier, provider_problems
from tests.jwt_support import (
    FakeClock,
    FakeFetcher,
    ec_key,
    forbid_network,
    jwks_bytes,
    provider,
    public_jwk,
    rsa_key,
    token,
)


def test_good_provider_has_no_problems() -> None:
    assert provider_problems(provider()) == []
    assert provider_problems(provider(jwks_uri=None)) == []  # discovery
    assert provider_problems(provider(audience=(), client_ids=("app",), token_use="access")) == []


@pytest.mark.parametrize(
    "overrides,needle",
    [
        ({"algorithms": ()}, "non-empty"),
        ({"algorithms": ("HS256",)}, "'HS256' is not allowed"),
        ({"algorithms": ("HS512", "RS256")}, "'HS512' is not allowed"),
        ({"algorithms": ("rs256",)}, "did you mean RS256"),
        ({"algorithms": ("ES521",)}, "unknown algorithm 'ES521'"),
        ({"algorithms": ("RS1",)}, "unknown algorithm"),
        ({"issuer": "http://idp.example.test"}, "https://"),
        ({"issuer": "idp.example.test"}, "issuer"),
        ({"issuer": "https://idp.example.test/?a=b"}, "query"),
        ({"issuer": "https:///path"}, "no host"),
        ({"issuer": "https://idp.example.test/ x"}, "whitespace"),
        ({"jwks_uri": "http://idp.example.test/jwks"}, "jwks_uri is not https://"),
        ({"jwks_file": "/tmp/x.json"}, "not both"),
        ({"typ": ""}, "typ must be a non-empty string"),
        ({"token_use": " "}, "token_use must be a non-empty string"),
        ({"leeway": 301}, "leeway"),
        ({"leeway": True}, "leeway"),
        ({"leeway": 1.5}, "leeway"),
        ({"audience": ("",)}, "non-empty"),
        ({"name": ""}, "name"),
    ],
)
def test_provider_problems(overrides: dict[str, Any], needle: str) -> None:
    problems = provider_problems(provider(**overrides))
    assert any(needle in p for p in problems), problems


def test_constructor_refuses_bad_config_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    attempts = forbid_network(monkeypatch)
    with pytest.raises(JwtConfigError, match=r"issuer .* is also provider 'corp'"):
        JwtVerifier([provider(), provider(name="other")])
    with pytest.raises(JwtConfigError, match="used twice"):
        JwtVerifier([provider(), provider(issuer="https://other.example.test")])
    with pytest.raises(JwtConfigError, match="fetch_timeout"):
        JwtVerifier([provider()], fetch_timeout=10)
    JwtVerifier([provider(), provider(name="b", issuer="https://b.example.test", jwks_uri=None)])
    assert attempts == []


def test_jwks_file_bundled_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    attempts = forbid_network(monkeypatch)
    path = tmp_path / "corp.json"
    path.write_bytes(jwks_bytes(public_jwk(rsa_key(), "k1"), public_jwk(ec_key(), "e1")))
    verifier = JwtVerifier([provider(jwks_uri=None, jwks_file=str(path))], clock=FakeClock())
    assert verifier.verify(token()).claims["sub"] == "user-1"
    assert verifier.verify(token(alg="ES256", kid="e1")).claims["sub"] == "user-1"
    with pytest.raises(JwtError) as info:
        verifier.verify(token(kid="unknown"))
    assert info.value.reason == "jwt_invalid"
    assert attempts == []


def test_jwks_file_pem_verifies_tokens_without_kid(tmp_path: Path) -> None:
    path = tmp_path / "corp.pem"
    path.write_bytes(rsa_key().public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    verifier = JwtVerifier([provider(jwks_uri=None, jwks_file=str(path), algorithms=("RS256",))], clock=FakeClock())
    assert verifier.verify(token(kid=None))
    with pytest.raises(JwtError):
        verifier.verify(token(kid="k1"))


@pytest.mark.parametrize(
    "content,needle",
    [
        (b"", "not a JSON document"),
        (b"{}", "not a JWK set"),
        (b'{"keys": []}', "no keys"),
        (jwks_bytes({"kty": "oct", "k": "c2VjcmV0"}), "not allowed"),
        (jwks_bytes(public_jwk(rsa_key(1024), "w")), "too weak"),
        (jwks_bytes(public_jwk(rsa_key(), "a"), public_jwk(ec_key(), "a")), "different keys"),
        (b'{"keys": [], "keys": []}', "not a JSON document"),
        (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "only PEM 'PUBLIC KEY'"),
        (b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "cannot parse"),
        (jwks_bytes(public_jwk(ec_key(), "e1")), "no key in it can verify RS256"),
    ],
)
def test_bad_jwks_file_is_config_error(tmp_path: Path, content: bytes, needle: str) -> None:
    path = tmp_path / "keys.json"
    path.write_bytes(content)
    cfg = provider(jwks_uri=None, jwks_file=str(path), algorithms=("RS256",))
    problems = provider_problems(cfg)
    assert any(needle in p for p in problems), problems
    with pytest.raises(JwtConfigError, match="jwks_file"):
        JwtVerifier([cfg], fetcher=FakeFetcher())


def test_missing_jwks_file_is_config_error(tmp_path: Path) -> None:
    cfg = provider(jwks_uri=None, jwks_file=str(tmp_path / "nope.json"))
    assert any("cannot read it" in p for p in provider_problems(cfg))
    json.dumps(cfg.__dict__)  # plain data, loggable


# ---------------------------------------------------------------- URL hosts

BAD_HOSTS = [
    "bad..host",  # an empty label
    ".idp.example.test",
    "idp.example.test..",
    "a" * 64 + ".example.test",  # a label over 63 characters
    ("a" * 62 + ".") * 4 + "com",  # 255 characters, over 253
    "-idp.example.test",
    "idp-.example.test",
    "idp_1.example.test",
    "ex%41mple.test",
    "xn--",
]
GOOD_HOSTS = [
    "a" * 63 + ".example.test",
    ("a" * 62 + ".") * 3 + "a" * 61,  # 253 characters
    "idp.example.test.",
    "IDP.Example.Test",
    "münchen.example",
    "127.0.0.1",
    "[::1]",
]


@pytest.mark.parametrize("host", BAD_HOSTS)
def test_a_url_whose_host_cannot_be_a_dns_name_is_refused_as_issuer_and_jwks_uri(host: str) -> None:
    url = f"https://{host}/jwks"
    assert check_https_url(url) is not None and "host" in check_https_url(url)
    problems = provider_problems(provider(jwks_uri=url))
    assert any(p.startswith("jwks_uri has a host") for p in problems), problems
    problems = provider_problems(provider(issuer=f"https://{host}", jwks_uri=None))
    assert any(p.startswith("issuer has a host") for p in problems), problems


@pytest.mark.parametrize("host", GOOD_HOSTS)
def test_a_url_with_a_valid_host_is_accepted(host: str) -> None:
    assert check_https_url(f"https://{host}/jwks") is None
    assert provider_problems(provider(jwks_uri=f"https://{host}/jwks")) == []


def test_a_configured_jwks_uri_with_a_bad_host_is_a_load_error_at_the_providers_line(load_problems: Any) -> None:
    problems = load_problems(
        """\
        version: 1
        jwt:
          issuer: https://idp.example.test
          audience: [api]
          jwks_uri: https://bad..host/jwks
        rules:
          - name: read
            route: GET /orders
            allow: "true"
        """
    )
    assert len(problems) == 1
    assert "jwks_uri has a host 'bad..host' with an empty label" in problems[0].message
    assert problems[0].pos is not None and problems[0].pos.line == 3
