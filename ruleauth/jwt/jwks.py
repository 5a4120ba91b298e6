"""Signing keys for JWT providers: parsing, fetching and caching.

Where keys come from, in order of preference in a provider's config:
  * `jwks_file`: bundled with the function, read once at construction; every
    key in it must be good (a bad key is a configuration error, not a silent drop).
  * `jwks_uri`: fetched over HTTPS.
  * neither: OIDC discovery at `{issuer}/.well-known/openid-configuration`, whose
    `issuer` member must equal the configured issuer exactly.

Remote key sets are semi-trusted input: a fetch is HTTPS only, refuses
redirects, is bounded by one overall deadline and a byte cap, and keeps only
asymmetric signing keys. One bad key is dropped without affecting the others
(and logged once while it stays published); a `kid` published twice with
different key material is unusable, the same key listed twice is one key.

Cache policy for remote sets (all times on the injected clock):
  * fetched lazily, on the first lookup, never at construction;
  * fresh for `lifespan` seconds after a successful fetch;
  * an unknown `kid` triggers a refetch, but fetch attempts of any kind are at
    most one per `cooldown` seconds, so a flood of random kids (or an outage)
    costs one request per cooldown, not one per token;
  * when a refresh fails, the last good set keeps serving until `lifespan +
    max_stale` seconds after it was fetched (default one hour beyond the
    lifespan); after that the provider is unavailable until a fetch succeeds.
"""

from __future__ import annotations

import binascii
import http.client
import io
import ipaddress
import json
import logging
import math
import re
import socket
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)

from ruleauth.errors import KeysError, safe_text
from ruleauth.model import JwtProvider

log = logging.getLogger("ruleauth.jwt.jwks")

# RFC 7518 names only. Each maps to the key type it needs and, for curve-based
# keys, the curves it may use (RFC 7518 §3.4, RFC 8037 §3.1).
ALGORITHMS: dict[str, tuple[str, frozenset[str] | None]] = {
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
    "ES256": ("EC", frozenset({"P-256"})),
    "ES384": ("EC", frozenset({"P-384"})),
    "ES512": ("EC", frozenset({"P-521"})),
    "EdDSA": ("OKP", frozenset({"Ed25519", "Ed448"})),
}

_EC_CURVES: dict[str, tuple[type[ec.EllipticCurve], int]] = {
    "P-256": (ec.SECP256R1, 32),
    "P-384": (ec.SECP384R1, 48),
    "P-521": (ec.SECP521R1, 66),
}
_CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}  # cryptography's names
_OKP_CURVES = {"Ed25519": 32, "Ed448": 57}

MIN_RSA_BITS = 2048
# Verification cost grows with the modulus; nobody signs tokens with more.
MAX_RSA_BITS = 8192
# An RSA public exponent must be odd, above 2**16 (rules out e=1, e=3) and below 2**32:
# above 64 bits OpenSSL never verifies with a modulus over 3072 bits, and the cost of
# a verification grows with e's length (docs/keys.md has the sources and figures).
MIN_RSA_EXPONENT = 2**16 + 1
MAX_RSA_EXPONENT = 2**32 - 1

DEFAULT_LIFESPAN = 300.0
DEFAULT_COOLDOWN = 30.0
DEFAULT_MAX_STALE = 3600.0
DEFAULT_FETCH_TIMEOUT = 3.0
MAX_FETCH_TIMEOUT = 3.0
DEFAULT_MAX_BYTES = 256 * 1024
DEFAULT_MAX_KEYS = 100
# Status line and headers are not part of the body cap but still bounded.
_MAX_HEADER_BYTES = 32 * 1024
# Neither is chunked framing, which can outweigh the body: a server writing one byte
# at a time sends `1\r\n` + the byte + `\r\n`, six bytes on the wire per byte of body.
# The body itself is held to the cap; the bytes read from the socket to `_WIRE_FACTOR`
# times the cap (plus headers), so no framing an honest server uses is refused.
_WIRE_FACTOR = 6

_B64URL = re.compile(r"[A-Za-z0-9_-]*")


class JwksError(KeysError):
    """Base of the key-layer errors; messages are safe to log (no key material)."""


class JwksFormatError(JwksError):
    """A key set or key file could not be used."""


class FetchError(JwksError):
    """A discovery or JWKS fetch failed (network, TLS, status, size, deadline, content)."""


class KeysUnavailable(JwksError):
    """No usable key set for the provider (nothing cached and the fetch failed)."""


def b64url_decode(segment: str) -> bytes:
    """Strict base64url: URL-safe alphabet only, canonical trailing bits.

    Correct `=` padding is tolerated (the same bytes as without it) because
    some issuers (ALB) pad; wrong padding, whitespace, `+/` and non-canonical
    last characters are refused, so each byte string has one spelling.
    """
    body = segment.rstrip("=")
    pad = len(segment) - len(body)
    if pad and (len(segment) % 4 != 0 or pad > 2):
        raise ValueError("bad base64url padding")
    if len(body) % 4 == 1 or not _B64URL.fullmatch(body):
        raise ValueError("not base64url")
    try:
        data = binascii.a2b_base64(body.replace("-", "+").replace("_", "/") + "=" * (-len(body) % 4), strict_mode=True)
    except binascii.Error:
        raise ValueError("not base64url") from None
    if b64url_encode(data) != body:
        raise ValueError("non-canonical base64url")
    return data


def b64url_encode(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii").rstrip("=").replace("+", "-").replace("/", "_")


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in pairs:
        if name in out:
            raise ValueError(f"duplicate member {name[:64]!r}")
        out[name] = value
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strict_json(data: bytes) -> Any:
    """UTF-8 JSON with no duplicate member names and no NaN/Infinity."""
    text = data.decode("utf-8")  # strict: json.loads(bytes) would also guess UTF-16/32
    return json.loads(text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant)


@dataclass(frozen=True)
class VerificationKey:
    """One public key usable for signature verification."""

    kid: str | None
    kty: str  # RSA | EC | OKP
    crv: str | None  # EC and OKP
    alg: str | None  # the JWK's own `alg`, which then binds the key to that algorithm
    key: Any = field(repr=False, compare=False)  # a cryptography public key
    material: bytes = field(repr=False)  # SubjectPublicKeyInfo DER: identity of the key

    def fits(self, alg: str) -> bool:
        """Key type, curve and the JWK's own `alg` all agree with `alg` (J5, J8)."""
        want = ALGORITHMS.get(alg)
        if want is None or want[0] != self.kty:
            return False
        if want[1] is not None and self.crv not in want[1]:
            return False
        return self.alg is None or self.alg == alg


@dataclass(frozen=True)
class KeySet:
    """Keys by kid. A kid mapped to None was published with different key material.

    The same key listed more than once (with and without `alg`, with and without
    a `kid`, under two algs) is one key: each listing stays, so a token verifies
    when any of them fits, and no listing makes another ambiguous. Different keys
    under one kid make that kid unusable: which one the issuer signs with is a
    guess, and "first wins" would let a set's order decide.
    """

    keys: tuple[VerificationKey, ...]
    by_kid: dict[str, tuple[VerificationKey, ...] | None] = field(repr=False)
    dropped: tuple[str, ...] = ()  # why keys were left out, for logs

    @classmethod
    def build(cls, keys: list[VerificationKey], dropped: list[str]) -> "KeySet":
        by_kid: dict[str, tuple[VerificationKey, ...] | None] = {}
        listings: dict[str | None, list[VerificationKey]] = {}
        for k in keys:
            same = listings.setdefault(k.kid, [])
            if not any(u.material == k.material and u.alg == k.alg for u in same):
                same.append(k)
        for kid, same in listings.items():
            if kid is None:
                continue
            if len({u.material for u in same}) > 1:
                dropped.append(f"kid {safe_text(kid)} is published with different keys; it is unusable")
                by_kid[kid] = None
            else:
                by_kid[kid] = tuple(same)
        unique = tuple(k for kid, same in listings.items() if kid is None or by_kid[kid] is not None for k in same)
        return cls(keys=unique, by_kid=by_kid, dropped=tuple(dropped))

    def find(self, kid: str | None, alg: str) -> VerificationKey | None:
        """The key for this kid and alg, or None.

        With a kid, only that kid's listings. Without one, the single key
        (however often listed) that fits the algorithm: several different keys
        would make the choice a guess.
        """
        if kid is not None:
            return next((k for k in self.by_kid.get(kid) or () if k.fits(alg)), None)
        fitting = [k for k in self.keys if k.fits(alg)]
        return fitting[0] if fitting and all(k.material == fitting[0].material for k in fitting) else None


# ---------------------------------------------------------------- JWK parsing


def _b64_member(jwk: dict[str, Any], name: str) -> bytes:
    value = jwk.get(name)
    if not isinstance(value, str) or not value:
        raise JwksFormatError(f"member {name!r} is missing or not a string")
    try:
        return b64url_decode(value)
    except ValueError:
        raise JwksFormatError(f"member {name!r} is not base64url") from None


def _spki(public_key: Any) -> bytes:
    return public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def check_public_key(public_key: Any) -> tuple[str, str | None]:
    """(kty, crv) for an allowed public key, else JwksFormatError saying why."""
    if isinstance(public_key, rsa.RSAPublicKey):
        bits = public_key.key_size
        numbers = public_key.public_numbers()
        e = numbers.e
        if numbers.n % 2 == 0:  # cryptography accepts an even modulus; no real RSA key has one
            raise JwksFormatError("RSA modulus is even")
        if bits < MIN_RSA_BITS:
            raise JwksFormatError(f"RSA key of {bits} bits is too weak (at least {MIN_RSA_BITS})")
        if bits > MAX_RSA_BITS:
            raise JwksFormatError(f"RSA key of {bits} bits is larger than {MAX_RSA_BITS}")
        if not MIN_RSA_EXPONENT <= e <= MAX_RSA_EXPONENT or e % 2 == 0:
            raise JwksFormatError(
                f"RSA public exponent {e if e < 2**64 else 'of ' + str(e.bit_length()) + ' bits'} is not allowed "
                "(odd, from 65537 to 2**32 - 1)"
            )
        return "RSA", None
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        crv = _CURVE_NAMES.get(public_key.curve.name)
        if crv is None:
            raise JwksFormatError(f"elliptic curve {public_key.curve.name} is not allowed (P-256, P-384 or P-521)")
        return "EC", crv
    if isinstance(public_key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        from ruleauth.jwt import edwards  # only when a key set has EdDSA keys

        crv = "Ed25519" if isinstance(public_key, ed25519.Ed25519PublicKey) else "Ed448"
        # cryptography takes any bytes of the right length; some of them verify forgeries.
        why = edwards.problem(crv, public_key.public_bytes(Encoding.Raw, PublicFormat.Raw))
        if why:
            raise JwksFormatError(f"{crv} public key {why}")
        return "OKP", crv
    raise JwksFormatError(f"key type {type(public_key).__name__} is not allowed (RSA, EC or OKP)")


def parse_jwk(jwk: Any) -> VerificationKey:
    """One public JWK → VerificationKey. Private members are ignored, never parsed."""
    if not isinstance(jwk, dict):
        raise JwksFormatError("a key is not a JSON object")
    kty = jwk.get("kty")
    kid = jwk.get("kid")
    alg = jwk.get("alg")
    use = jwk.get("use")
    if kid is not None and (not isinstance(kid, str) or not kid or len(kid) > 256):
        raise JwksFormatError("kid is not a string of 1-256 characters")
    if use is not None and use != "sig":
        raise JwksFormatError(f"use {safe_text(use)} is not 'sig'")
    key_ops = jwk.get("key_ops")
    if key_ops is not None:
        # RFC 7517 §4.3 (docs/keys.md): without "verify" the publisher did not mean the key for it.
        if not isinstance(key_ops, list) or not all(isinstance(op, str) for op in key_ops):
            raise JwksFormatError("key_ops is not a list of strings")
        if "verify" not in key_ops:
            raise JwksFormatError("key_ops does not include 'verify': not a verification key")
    if alg is not None and (not isinstance(alg, str) or alg not in ALGORITHMS):
        raise JwksFormatError(f"alg {safe_text(alg)} is not an asymmetric signature algorithm")
    public_key: Any
    try:
        if kty == "RSA":
            n = int.from_bytes(_b64_member(jwk, "n"), "big")
            e = int.from_bytes(_b64_member(jwk, "e"), "big")
            public_key = rsa.RSAPublicNumbers(e, n).public_key()
        elif kty == "EC":
            crv = jwk.get("crv")
            if not isinstance(crv, str) or crv not in _EC_CURVES:
                raise JwksFormatError(f"EC curve {safe_text(crv)} is not allowed (P-256, P-384 or P-521)")
            curve_cls, size = _EC_CURVES[crv]
            x, y = _b64_member(jwk, "x"), _b64_member(jwk, "y")
            if len(x) != size or len(y) != size:
                raise JwksFormatError(f"EC coordinates must be {size} bytes for {crv}")
            public_key = ec.EllipticCurvePublicNumbers(
                int.from_bytes(x, "big"), int.from_bytes(y, "big"), curve_cls()
            ).public_key()
        elif kty == "OKP":
            crv = jwk.get("crv")
            if not isinstance(crv, str) or crv not in _OKP_CURVES:
                raise JwksFormatError(f"OKP curve {safe_text(crv)} is not allowed (Ed25519 or Ed448)")
            x = _b64_member(jwk, "x")
            if len(x) != _OKP_CURVES[crv]:
                raise JwksFormatError(f"OKP key must be {_OKP_CURVES[crv]} bytes for {crv}")
            cls = ed25519.Ed25519PublicKey if crv == "Ed25519" else ed448.Ed448PublicKey
            public_key = cls.from_public_bytes(x)
        else:
            # oct (shared secrets) above all: a published HMAC key would let anyone sign (J6).
            raise JwksFormatError(f"key type {safe_text(kty)} is not allowed (RSA, EC or OKP)")
    except (ValueError, OverflowError):
        raise JwksFormatError(f"invalid {kty} key parameters") from None
    kty_checked, crv_checked = check_public_key(public_key)
    key = VerificationKey(
        kid=kid, kty=kty_checked, crv=crv_checked, alg=alg, key=public_key, material=_spki(public_key)
    )
    if alg is not None and not key.fits(alg):
        raise JwksFormatError(
            f"alg {alg} does not fit a {kty_checked} key" + (f" on {crv_checked}" if crv_checked else "")
        )
    return key


def parse_jwks(data: bytes, *, max_keys: int = DEFAULT_MAX_KEYS, strict: bool = False) -> KeySet:
    """A JWKS document → KeySet.

    strict=False (remote sets): unusable keys are dropped and noted.
    strict=True (bundled files): any unusable key is an error, so a deploy
    cannot silently ship a key that never verifies anything.
    """
    try:
        doc = strict_json(data)
    except (ValueError, RecursionError) as exc:
        raise JwksFormatError(f"not a JSON document ({type(exc).__name__})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise JwksFormatError('not a JWK set (expected an object with a "keys" list)')
    entries = doc["keys"]
    if len(entries) > max_keys:
        raise JwksFormatError(f"{len(entries)} keys is more than the limit of {max_keys}")
    keys: list[VerificationKey] = []
    dropped: list[str] = []
    for i, entry in enumerate(entries):
        try:
            keys.append(parse_jwk(entry))
        except JwksFormatError as exc:
            kid = entry.get("kid") if isinstance(entry, dict) else None
            where = f"key {i}" + (f" (kid {safe_text(kid)})" if kid is not None else "")
            if strict:
                raise JwksFormatError(f"{where}: {exc}") from None
            dropped.append(f"{where}: {exc}")
    keyset = KeySet.build(keys, list(dropped))
    if strict and len(keyset.dropped) > len(dropped):
        raise JwksFormatError(keyset.dropped[-1])
    return keyset


_PEM_BLOCK = re.compile(rb"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", re.S)


def load_key_file(path: str, *, max_bytes: int = DEFAULT_MAX_BYTES, max_keys: int = DEFAULT_MAX_KEYS) -> KeySet:
    """A bundled key file: a JWK set (JSON) or one or more PEM `PUBLIC KEY` blocks.

    Raises JwksFormatError with a message naming the problem; the caller adds
    the provider and path. PEM keys carry no kid, so they verify tokens
    without a `kid` header only.
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise JwksFormatError(f"cannot read it ({exc.strerror or type(exc).__name__})") from None
    if len(data) > max_bytes:
        raise JwksFormatError(f"it is larger than {max_bytes} bytes")
    if data.lstrip().startswith(b"-----BEGIN"):
        blocks = _PEM_BLOCK.findall(data)
        if not blocks or data.count(b"-----BEGIN") != len(blocks):
            raise JwksFormatError("only PEM 'PUBLIC KEY' blocks are accepted (no private keys or certificates)")
        keys = []
        for i, block in enumerate(blocks):
            try:
                public_key = load_pem_public_key(block)
            except (ValueError, TypeError) as exc:
                raise JwksFormatError(f"PEM block {i}: cannot parse it ({type(exc).__name__})") from None
            except Exception as exc:  # cryptography raises UnsupportedAlgorithm for odd curves
                raise JwksFormatError(f"PEM block {i}: unsupported key ({type(exc).__name__})") from None
            try:
                kty, crv = check_public_key(public_key)
            except JwksFormatError as exc:
                raise JwksFormatError(f"PEM block {i}: {exc}") from None
            keys.append(
                VerificationKey(kid=None, kty=kty, crv=crv, alg=None, key=public_key, material=_spki(public_key))
            )
        return KeySet.build(keys, [])
    keyset = parse_jwks(data, max_keys=max_keys, strict=True)
    if not keyset.keys:
        raise JwksFormatError("it holds no keys")
    return keyset


# ---------------------------------------------------------------- fetching


class KeyFetcher(Protocol):
    """Fetches one HTTPS resource. Tests substitute their own."""

    def fetch(self, url: str, *, deadline: float, max_bytes: int) -> bytes:
        """The body of a 200 response. `deadline` is on time.monotonic(). Raises FetchError."""
        ...


_DNS_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
MAX_HOST_LENGTH = 253  # RFC 1035 §2.3.4: 255 octets on the wire, 253 characters written out


def check_host(host: str) -> str | None:
    """Why `host` (a URL's hostname) cannot be connected to, or None.

    An IP address, or a DNS name of labels of 1-63 letters, digits and inner
    hyphens, 253 characters at most (one trailing dot allowed); a name in
    Unicode is judged in its IDNA form, the one the resolver and TLS are given.
    """
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    try:
        ascii_host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        ascii_host = None
    if ascii_host is not None and ascii_host.endswith("."):
        ascii_host = ascii_host[:-1]
    if ascii_host is None or not ascii_host:
        return f"has a host {safe_text(host)} with an empty label or one over 63 characters"
    if len(ascii_host) > MAX_HOST_LENGTH:
        return f"has a host of {len(ascii_host)} characters (at most {MAX_HOST_LENGTH})"
    for label in ascii_host.split("."):
        if not label or len(label) > 63:
            return f"has a host {safe_text(host)} with an empty label or one over 63 characters"
        if not _DNS_LABEL.fullmatch(label):
            return f"has a host {safe_text(host)} that is not a DNS name (letters, digits, inner hyphens)"
    return None


def check_https_url(url: object) -> str | None:
    """Why `url` is not an acceptable HTTPS URL, or None if it is.

    The one check for configured URLs (issuer, jwks_uri) and for the jwks_uri a
    discovery document gives, so both refuse the same hosts.
    """
    if not isinstance(url, str) or not url:
        return "is not a string"
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        return "contains whitespace or control characters"
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme != "https":
        return "is not https://"
    if not parts.hostname:
        return "has no host"
    bad_host = check_host(parts.hostname)
    if bad_host:
        return bad_host
    if parts.username is not None or parts.password is not None:
        return "has credentials in it"
    if parts.fragment:
        return "has a fragment"
    if port == 0:
        return "has port 0"
    return None


class _DeadlineSocket:
    """Shrinks the socket timeout before every operation to what is left.

    urllib and http.client apply `timeout` to each socket operation, so a server
    dripping one byte per second could hold a fetch forever; here each call can
    only use the time remaining until the single deadline. CPython's SSL
    handshake and read loops honour one timeout as a total, so this bounds TLS too.
    """

    def __init__(self, sock: ssl.SSLSocket, deadline: float, read_cap: int) -> None:
        self._sock = sock
        self._deadline = deadline
        self._read_left = read_cap
        self._readers = 0
        self._closing = False

    def _arm(self) -> None:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("deadline reached")
        self._sock.settimeout(remaining)

    def sendall(self, data: bytes) -> None:
        self._arm()
        self._sock.sendall(data)

    def recv_into(self, buffer: Any, nbytes: int = 0) -> int:
        if self._read_left <= 0:
            raise FetchError("response is larger than the byte cap")
        self._arm()
        view = memoryview(buffer)
        limit = min(len(view) if nbytes == 0 else nbytes, self._read_left)
        n = self._sock.recv_into(view[:limit], limit)
        self._read_left -= n
        return n

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        self._readers += 1
        return io.BufferedReader(_SocketReader(self))

    def close(self) -> None:
        # The semantics of socket.socket.close(): while a file from makefile() is
        # open, the connection stays up. http.client relies on it: on a response
        # that ends the connection (`Connection: close`, HTTP/1.0, a body read
        # until close) it closes its socket at once and reads the body through
        # the response's file afterwards.
        self._closing = True
        if self._readers == 0:
            self._sock.close()

    def _reader_closed(self) -> None:
        self._readers -= 1
        if self._closing and self._readers == 0:
            self._sock.close()


class _SocketReader(io.RawIOBase):
    def __init__(self, sock: _DeadlineSocket) -> None:
        self._sock: _DeadlineSocket | None = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._sock is None:
            raise ValueError("read from a closed response")
        return self._sock.recv_into(buffer)

    def close(self) -> None:
        sock, self._sock = self._sock, None
        super().close()
        if sock is not None:
            sock._reader_closed()


def _resolve(host: str, port: int, deadline: float) -> list[tuple[Any, ...]]:
    """getaddrinfo bounded by the deadline (the resolver has no timeout of its own)."""
    try:
        ip = ipaddress.ip_address(host)
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 0, "", (host, port))]
    except ValueError:
        pass
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["ok"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except Exception as exc:  # UnicodeError for a name IDNA refuses, not only OSError
            box["err"] = exc

    worker = threading.Thread(target=run, name="ruleauth-dns", daemon=True)
    worker.start()
    worker.join(max(0.0, deadline - time.monotonic()))
    if worker.is_alive():
        raise FetchError("DNS resolution did not finish before the deadline")
    if "err" in box:
        raise FetchError(f"DNS resolution failed ({type(box['err']).__name__})")
    return box["ok"]


class _DeadlineHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, *, deadline: float, read_cap: int) -> None:
        self._ruleauth_context = ssl.create_default_context()  # honours SSL_CERT_FILE / SSL_CERT_DIR
        super().__init__(host, port, context=self._ruleauth_context)
        self._deadline = deadline
        self._read_cap = read_cap

    def connect(self) -> None:
        last: Exception | None = None
        sock: socket.socket | None = None
        for family, socktype, proto, _name, addr in _resolve(self.host, self.port, self._deadline):
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                break
            candidate = socket.socket(family, socktype, proto)
            try:
                candidate.settimeout(remaining)
                candidate.connect(addr)
                sock = candidate
                break
            except OSError as exc:
                candidate.close()
                last = exc
        if sock is None:
            raise last or TimeoutError("deadline reached")
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            sock.close()
            raise TimeoutError("deadline reached")
        sock.settimeout(remaining)
        tls = self._ruleauth_context.wrap_socket(sock, server_hostname=self.host)
        self.sock = _DeadlineSocket(tls, self._deadline, self._read_cap)


class HttpsFetcher:
    """GET over HTTPS with one overall deadline, a byte cap and no redirects."""

    user_agent = "ruleauth-jwks/1"

    def fetch(self, url: str, *, deadline: float, max_bytes: int) -> bytes:
        problem = check_https_url(url)
        if problem:
            raise FetchError(f"URL {problem}")
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or 443
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        wire_cap = _WIRE_FACTOR * max_bytes + _MAX_HEADER_BYTES
        conn = _DeadlineHTTPSConnection(host, port, deadline=deadline, read_cap=wire_cap)
        resp: http.client.HTTPResponse | None = None
        try:
            conn.putrequest("GET", target, skip_accept_encoding=True)
            conn.putheader("Accept", "application/json")
            conn.putheader("Accept-Encoding", "identity")
            conn.putheader("User-Agent", self.user_agent)
            conn.putheader("Connection", "close")
            conn.endheaders()
            resp = conn.getresponse()
            if 300 <= resp.status < 400:
                raise FetchError(f"HTTP {resp.status} redirect refused")
            if resp.status != 200:
                raise FetchError(f"HTTP {resp.status}")
            length = resp.getheader("Content-Length")
            if length is not None and length.isdigit() and int(length) > max_bytes:
                raise FetchError(f"response of {int(length)} bytes is larger than the cap of {max_bytes}")
            body = resp.read(max_bytes + 1)
            if len(body) > max_bytes:
                raise FetchError(f"response is larger than the cap of {max_bytes} bytes")
            return body
        except FetchError:
            raise
        except (TimeoutError, socket.timeout):
            raise FetchError("no complete response before the deadline") from None
        except ssl.SSLError as exc:
            raise FetchError(f"TLS failed ({exc.reason or type(exc).__name__})") from None
        except Exception as exc:  # OSError, HTTPException, ValueError...: FetchError is the only way out
            raise FetchError(f"request failed ({type(exc).__name__})") from None
        finally:
            if resp is not None:
                resp.close()  # with conn.close(), the last holder of the socket: the TLS socket closes here
            conn.close()


# ---------------------------------------------------------------- per-provider cache


def discovery_url(issuer: str) -> str:
    # OIDC Discovery 1.0 §4: remove a terminating "/" before appending.
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


@dataclass(frozen=True)
class CachePolicy:
    lifespan: float = DEFAULT_LIFESPAN
    cooldown: float = DEFAULT_COOLDOWN
    max_stale: float = DEFAULT_MAX_STALE
    fetch_timeout: float = DEFAULT_FETCH_TIMEOUT
    max_bytes: int = DEFAULT_MAX_BYTES
    max_keys: int = DEFAULT_MAX_KEYS

    def problems(self) -> list[str]:
        out = []
        for name in ("lifespan", "cooldown", "max_stale", "fetch_timeout"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
                out.append(f"{name} must be a finite number of seconds >= 0")
        if not out:
            if not 0 < self.fetch_timeout <= MAX_FETCH_TIMEOUT:
                out.append(f"fetch_timeout must be in (0, {MAX_FETCH_TIMEOUT}] seconds")
            if self.cooldown > self.lifespan:
                out.append("cooldown must not be longer than lifespan")
        if not isinstance(self.max_bytes, int) or self.max_bytes < 1024:
            out.append("max_bytes must be an integer >= 1024")
        if not isinstance(self.max_keys, int) or self.max_keys < 1:
            out.append("max_keys must be an integer >= 1")
        return out


class KeyNotFound(JwksError):
    """The set is available but holds no usable key for this kid and alg."""


class ProviderKeys:
    """The signing keys of one provider, static or fetched and cached."""

    def __init__(
        self,
        provider: JwtProvider,
        *,
        fetcher: KeyFetcher,
        clock: Callable[[], float],
        policy: CachePolicy,
        static: KeySet | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.provider = provider
        self._fetcher = fetcher
        self._clock = clock
        self._monotonic = monotonic
        self._policy = policy
        self._static = static
        self._keys: KeySet | None = None
        self._fetched_at: float | None = None
        self._last_attempt: float | None = None
        self._last_error: str | None = None
        self._dropped_logged: frozenset[str] = frozenset()
        self._lock = threading.Lock()
        self.fetch_count = 0  # attempts, for metrics and tests
        self.fetch_failures = 0

    @property
    def is_static(self) -> bool:
        return self._static is not None

    def get(self, kid: str | None, alg: str) -> VerificationKey:
        """The key for kid/alg. KeyNotFound → jwt_invalid; KeysUnavailable → jwks_unavailable."""
        if self._static is not None:
            key = self._static.find(kid, alg)
            if key is None:
                raise KeyNotFound("no bundled key fits this kid and algorithm")
            return key
        with self._lock:
            now = self._clock()
            if self._keys is None or self._age(now) >= self._policy.lifespan:
                self._refresh_if_allowed(now)
            keys = self._usable(now)
            if keys is None:
                raise KeysUnavailable(self._last_error or "key set not fetched yet (retry after cooldown)")
            key = keys.find(kid, alg)
            if key is None and self._refresh_if_allowed(now):
                keys = self._usable(now)
                key = keys.find(kid, alg) if keys is not None else None
            if key is None:
                raise KeyNotFound("no published key fits this kid and algorithm")
            return key

    def current(self, kid: str | None, alg: str) -> VerificationKey | None:
        """Like get() but never fetches and never raises: for cache revalidation."""
        if self._static is not None:
            return self._static.find(kid, alg)
        now = self._clock()
        keys = self._keys
        if keys is None or self._age(now) >= self._policy.lifespan:
            return None
        return keys.find(kid, alg)

    def _age(self, now: float) -> float:
        if self._fetched_at is None:
            return math.inf
        age = now - self._fetched_at
        return math.inf if age < 0 else age  # a clock stepping back makes the set stale, not eternal

    def _usable(self, now: float) -> KeySet | None:
        if self._keys is not None and self._age(now) >= self._policy.lifespan + self._policy.max_stale:
            log.warning("jwks for provider %s is too stale; dropped", self.provider.name)
            self._keys = None
        return self._keys

    def _refresh_if_allowed(self, now: float) -> bool:
        last = self._last_attempt
        if last is not None and 0 <= now - last < self._policy.cooldown:
            return False
        self._last_attempt = now
        self.fetch_count += 1
        try:
            keys = self._fetch()
        except Exception as exc:  # any fetcher's failure is a failed fetch: logged, counted, 401 jwks_unavailable
            if not isinstance(exc, JwksError):
                exc = FetchError(f"unexpected {type(exc).__name__}")
            self._last_error = str(exc)
            self.fetch_failures += 1
            log.warning("jwks fetch for provider %s failed: %s", self.provider.name, exc)
            return False
        for note in keys.dropped:
            if note not in self._dropped_logged:  # loud once, quiet on every refresh after
                log.warning("jwks for provider %s: key left out: %s", self.provider.name, note)
        self._dropped_logged = frozenset(keys.dropped)
        self._keys = keys
        self._fetched_at = now
        self._last_error = None
        return True

    def _fetch(self) -> KeySet:
        policy = self._policy
        deadline = self._monotonic() + policy.fetch_timeout
        jwks_uri = self.provider.jwks_uri
        if jwks_uri is None:
            url = discovery_url(self.provider.issuer)
            try:
                doc = strict_json(self._fetcher.fetch(url, deadline=deadline, max_bytes=policy.max_bytes))
            except (ValueError, RecursionError) as exc:
                raise FetchError(f"discovery document is not JSON ({type(exc).__name__})") from None
            except FetchError as exc:
                raise FetchError(f"discovery: {exc}") from None
            if not isinstance(doc, dict):
                raise FetchError("discovery document is not a JSON object")
            if doc.get("issuer") != self.provider.issuer:
                # OIDC Discovery §4.3: never fall back to what the document claims.
                raise FetchError(f"discovery issuer {safe_text(doc.get('issuer'))} is not the configured issuer")
            jwks_uri = doc.get("jwks_uri")
            problem = check_https_url(jwks_uri)
            if problem:
                raise FetchError(f"discovery jwks_uri {problem}")
        try:
            body = self._fetcher.fetch(jwks_uri, deadline=deadline, max_bytes=policy.max_bytes)
        except FetchError as exc:
            raise FetchError(f"jwks: {exc}") from None
        try:
            keys = parse_jwks(body, max_keys=policy.max_keys)
        except JwksFormatError as exc:
            raise FetchError(f"jwks: {exc}") from None
        if not keys.keys:
            raise FetchError("jwks: no usable signing keys in the set")
        return keys
