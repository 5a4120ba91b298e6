"""Helpers for the JWT tests: keys, JWKs, hand-forged tokens, a fake clock and fetcher.

Tokens are signed for real (cryptography keys through PyJWT's algorithm
objects); `forge` builds the compact form by hand so tests can send headers
and payloads no well-behaved library would produce.
"""

from __future__ import annotations

import base64
import functools
import json
import socket
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import get_default_algorithms

from ruleauth.jwt.keys import FetchError
from ruleauth.model import JwtProvider

ISSUER = "https://idp.example.test"
AUDIENCE = "https://api.example.test"
JWKS_URI = ISSUER + "/jwks"
NOW = 1_800_000_000.0

_ALGS = get_default_algorithms()
_CURVES = {"P-256": ec.SECP256R1, "P-384": ec.SECP384R1, "P-521": ec.SECP521R1}


@functools.cache
def rsa_key(bits: int = 2048, n: int = 0) -> rsa.RSAPrivateKey:
    """RSA keys are slow to make; `n` names distinct cached keys of one size."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@functools.cache
def ec_key(crv: str = "P-256", n: int = 0) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(_CURVES[crv]())


@functools.cache
def ed_key(n: int = 0) -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64uint(value: int, length: int | None = None) -> str:
    length = length or max(1, (value.bit_length() + 7) // 8)
    return b64(value.to_bytes(length, "big"))


def public_jwk(
    private_key: Any, kid: str | None = "k1", alg: str | None = None, use: str | None = "sig"
) -> dict[str, Any]:
    """The public JWK of a private (or public) key."""
    public = private_key.public_key() if hasattr(private_key, "public_key") else private_key
    jwk: dict[str, Any]
    if isinstance(public, rsa.RSAPublicKey):
        nums = public.public_numbers()
        jwk = {"kty": "RSA", "n": b64uint(nums.n), "e": b64uint(nums.e)}
    elif isinstance(public, ec.EllipticCurvePublicKey):
        nums = public.public_numbers()
        crv = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}[public.curve.name]
        size = (public.curve.key_size + 7) // 8
        jwk = {"kty": "EC", "crv": crv, "x": b64uint(nums.x, size), "y": b64uint(nums.y, size)}
    elif isinstance(public, ed25519.Ed25519PublicKey):
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64(public.public_bytes(Encoding.Raw, PublicFormat.Raw))}
    else:
        raise TypeError(type(public))
    if kid is not None:
        jwk["kid"] = kid
    if alg is not None:
        jwk["alg"] = alg
    if use is not None:
        jwk["use"] = use
    return jwk


def jwks_bytes(*keys: dict[str, Any]) -> bytes:
    return json.dumps({"keys": list(keys)}).encode()


def _segment(part: dict[str, Any] | bytes | str) -> str:
    if isinstance(part, dict):
        return b64(json.dumps(part, separators=(",", ":")).encode())
    if isinstance(part, bytes):
        return b64(part)
    return part  # already encoded, used verbatim


def forge(
    header: dict[str, Any] | bytes | str,
    payload: dict[str, Any] | bytes | str,
    key: Any = None,
    alg: str | None = None,
    signature: bytes | None = None,
) -> str:
    """A compact JWS. dict parts are JSON-encoded, bytes base64url-encoded, str used as is.

    With `key`, the signature is computed by PyJWT's algorithm `alg` (default:
    the header's alg) over the segments; otherwise `signature` (default empty).
    HS* algorithms accept any bytes as the key, which is how key-confusion
    tokens (J2-J4) are made.
    """
    h, p = _segment(header), _segment(payload)
    if key is not None:
        alg = alg or (header["alg"] if isinstance(header, dict) else None)
        assert alg, "alg needed to sign"
        signer = _ALGS[alg]
        if alg.startswith("HS"):  # any bytes as the MAC key, bypassing PyJWT's PEM guard on purpose
            prepared = key if isinstance(key, bytes) else str(key).encode()
        else:
            prepared = signer.prepare_key(key)
        signature = signer.sign(f"{h}.{p}".encode(), prepared)
    return f"{h}.{p}.{b64(signature or b'')}"


def claims(**overrides: Any) -> dict[str, Any]:
    """Valid access-token claims at NOW; a None override removes the claim."""
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-1",
        "iat": int(NOW) - 10,
        "exp": int(NOW) + 600,
        "scope": "read:orders",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def token(
    key: Any = None,
    alg: str = "RS256",
    kid: str | None = "k1",
    header: dict[str, Any] | None = None,
    **claim_overrides: Any,
) -> str:
    """A properly signed token (default key: rsa_key(); extra header members merge in)."""
    if key is None:
        key = {"RS": rsa_key(), "PS": rsa_key(), "ES": ec_key(), "Ed": ed_key()}[alg[:2]]
    hdr: dict[str, Any] = {"alg": alg, "typ": "JWT"}
    if kid is not None:
        hdr["kid"] = kid
    hdr.update(header or {})
    hdr = {k: v for k, v in hdr.items() if v is not None}
    return forge(hdr, claims(**claim_overrides), key=key, alg=alg)


def provider(**overrides: Any) -> JwtProvider:
    base = JwtProvider(
        name="corp",
        issuer=ISSUER,
        audience=(AUDIENCE,),
        algorithms=("RS256", "ES256", "PS256", "EdDSA"),
        jwks_uri=JWKS_URI,
    )
    return replace(base, **overrides)


def default_jwks() -> bytes:
    return jwks_bytes(
        public_jwk(rsa_key(), "k1"),
        public_jwk(ec_key(), "e1"),
        public_jwk(ed_key(), "d1"),
    )


@dataclass
class FakeClock:
    now: float = NOW

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class FakeFetcher:
    """Serves canned bodies by URL; an Exception value is raised, a callable is called."""

    routes: dict[str, bytes | Exception | Callable[[], bytes]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def fetch(self, url: str, *, deadline: float, max_bytes: int) -> bytes:
        self.calls.append(url)
        result = self.routes.get(url, FetchError("HTTP 404"))
        if isinstance(result, Exception):
            raise result
        if callable(result):
            result = result()
        if len(result) > max_bytes:
            raise FetchError("response is larger than the cap")
        return result


def forbid_network(monkeypatch: Any) -> list[Any]:
    """Make any outbound connection or DNS lookup fail the test; returns the attempts."""
    attempts: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args)
        raise AssertionError(f"unexpected network access: {args!r}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts
