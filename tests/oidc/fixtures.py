"""pytest fixtures for the JWT/JWKS tests; tests/conftest.py may import them all.

from tests.oidc.fixtures import *  # noqa: F403
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.oidc.harness import FaultServer, OidcProvider, TlsFiles, make_tls

__all__ = ["fault_server", "oidc_provider", "private_jwks", "tls_files", "trust_test_ca"]


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A throwaway CA and a 127.0.0.1 server certificate."""
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def trust_test_ca(tls_files: TlsFiles, monkeypatch: pytest.MonkeyPatch) -> TlsFiles:
    """Trust the test CA the standard way (SSL_CERT_FILE), in this process only."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files.ca_pem))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    return tls_files


@pytest.fixture
def fault_server(trust_test_ca: TlsFiles) -> Iterator[FaultServer]:
    server = FaultServer(trust_test_ca).start()
    try:
        yield server
    finally:
        server.stop()


def private_jwks(*keys: tuple[str, Any]) -> dict[str, Any]:
    """A private JWK set for the provider from (kid, private key) pairs."""
    out = []
    for kid, key in keys:
        if isinstance(key, rsa.RSAPrivateKey):
            jwk = RSAAlgorithm.to_jwk(key, as_dict=True)
            jwk["alg"] = "RS256"
        elif isinstance(key, ec.EllipticCurvePrivateKey):
            jwk = ECAlgorithm.to_jwk(key, as_dict=True)
            jwk["alg"] = "ES256"
        else:
            raise TypeError(type(key))
        jwk.pop("key_ops", None)
        jwk.update(kid=kid, use="sig")
        out.append(jwk)
    return {"keys": out}


@pytest.fixture
def oidc_provider(trust_test_ca: TlsFiles, tmp_path: Path) -> Iterator[OidcProvider]:
    """The real OpenID provider, not started yet: call .start(private_jwks(...))."""
    provider = OidcProvider(trust_test_ca, tmp_path)
    try:
        yield provider
    finally:
        provider.stop()
