"""Signing keys: JWK parsing, the public-key checks, and the key-layer errors.

Remote key sets are semi-trusted input: only asymmetric signing keys are kept. One
bad key is dropped without affecting the others (and logged once while it stays
published, by the key cache); a `kid` published twice with different key material
is unusable, the same key listed twice is one key. A bundled `jwks_file` is read
strictly: every key in it must be good (a bad key is a configuration error, not a
silent drop).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

try:  # where the serialization package has them from: it also imports SSH and cipher support (4 ms)
    from cryptography.hazmat.primitives._serialization import Encoding, PublicFormat
except ImportError:  # pragma: no cover - a cryptography that moved them
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ruleauth.errors import KeysError, safe_text
from ruleauth.jwt.codecs import b64url_decode, strict_json

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

DEFAULT_MAX_BYTES = 256 * 1024
DEFAULT_MAX_KEYS = 100


class JwksError(KeysError):
    """Base of the key-layer errors; messages are safe to log (no key material)."""


class JwksFormatError(JwksError):
    """A key set or key file could not be used."""


class FetchError(JwksError):
    """A discovery or JWKS fetch failed (network, TLS, status, size, deadline, content)."""


class KeysUnavailable(JwksError):
    """No usable key set for the provider (nothing cached and the fetch failed)."""


class KeyNotFound(JwksError):
    """The set is available but holds no usable key for this kid and alg."""


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
    def build(cls, keys: list[VerificationKey], dropped: list[str]) -> KeySet:
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
        from cryptography.hazmat.primitives.serialization import load_pem_public_key  # PEM key files only

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
