"""JWT verification for `auth: jwt` (SPEC "JWT providers", "Credentials", "Limits").

The token is hostile until its signature verifies, so the order matters:
  1. bounds before any decoding: 8 KiB, ASCII, exactly three strict base64url segments;
  2. header: JSON object without duplicate members; `alg` an asymmetric
     algorithm; `crit`, `b64`, `zip`, `enc` and `cty` refused (nothing here
     understands them); `kid` a short string used only as a dict key;
     `jku`/`x5u`/`jwk`/`x5c` are never read, so no token can make us connect anywhere;
  3. payload parsed the same way; its `iss` (exact string) picks the provider,
     only among those configured (an unknown issuer costs no network request);
  4. `alg` must be in that provider's allowlist, the key comes from that
     provider's set only and must fit the alg (type, curve, the JWK's own alg);
  5. signature, by cryptography's verify for the alg's scheme (RFC 7518 §3.3-3.5, RFC 8037 §3.1);
  6. claims: exp (required), nbf, iat as NumericDates of the years 1-9999; sub, jti
     strings; scope, scp a string or a list of strings; aud / client_id / azp;
     typ, token_use; size and shape limits.
Every failure is a JwtError with one of its reasons; nothing else escapes.

A token that is not a JWT (three base64url segments, the first a JSON object) goes to the
introspection provider, where one is configured (jwt/introspection.py); its answer's claims
then get the checks of step 6, exp optional (RFC 7662 makes it so).

A small cache of verified tokens skips step 5 for a token seen before. It is
keyed on a hash of the decoded segments (so padded and unpadded spellings are
one entry), holds an entry no longer than the token's exp and the key set's
lifespan, and only while the provider still serves the very same key for the kid.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ruleauth.cache import Cache
from ruleauth.errors import LoadError, Problem, RequestError, safe_text
from ruleauth.jwt.codecs import b64url_decode, strict_json
from ruleauth.jwt.fetch import DEFAULT_FETCH_TIMEOUT, HttpsFetcher, KeyFetcher, check_https_url
from ruleauth.jwt.key_cache import DEFAULT_COOLDOWN, DEFAULT_LIFESPAN, DEFAULT_MAX_STALE, CachePolicy, ProviderKeys
from ruleauth.jwt.keys import (
    ALGORITHMS,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_KEYS,
    JwksFormatError,
    KeyNotFound,
    KeySet,
    KeysUnavailable,
    VerificationKey,
    check_public_key,
    load_key_file,
)
from ruleauth.model import JwtProvider, VerifiedToken
from ruleauth.reasons import Reason

if TYPE_CHECKING:  # jwt/introspection.py is imported only where a provider introspects
    from ruleauth.jwt.introspection import Introspector

__all__ = [
    "JWKS_UNAVAILABLE",
    "JWT_EXPIRED",
    "JWT_INVALID",
    "JwtConfigError",
    "JwtError",
    "JwtVerifier",
    "check_claim_formats",
    "provider_problems",
    "select_provider",
]

JWT_INVALID = Reason.JWT_INVALID
JWT_EXPIRED = Reason.JWT_EXPIRED
JWKS_UNAVAILABLE = Reason.JWKS_UNAVAILABLE
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

MAX_TOKEN_BYTES = 8 * 1024
MAX_CLAIM_DEPTH = 32  # the claims object itself is depth 1
MAX_LIST_ITEMS = 256
MAX_KID_LENGTH = 256
MAX_LEEWAY = 300
DEFAULT_TOKEN_CACHE_SIZE = 1024

# Header members whose meaning we would have to implement to honour them.
_REFUSED_HEADER_MEMBERS = ("crit", "b64", "zip", "enc", "cty")


# Each alg's check, called with cryptography directly: importing PyJWT for its algorithm objects
# (which make these same calls) costs a fifth of the cold start (its package imports x509 and an
# HTTP client). Each raises (InvalidSignature, ValueError, TypeError) unless the signature is valid.
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}


def _rsa_pkcs1(bits: str) -> Callable[[Any, bytes, bytes], None]:
    def verify(key: Any, signing_input: bytes, signature: bytes) -> None:
        if not isinstance(key, rsa.RSAPublicKey):
            raise TypeError("not an RSA public key")
        key.verify(signature, signing_input, padding.PKCS1v15(), _HASHES[bits]())

    return verify


def _rsa_pss(bits: str) -> Callable[[Any, bytes, bytes], None]:
    def verify(key: Any, signing_input: bytes, signature: bytes) -> None:
        if not isinstance(key, rsa.RSAPublicKey):
            raise TypeError("not an RSA public key")
        digest = _HASHES[bits]()
        # RFC 7518 §3.5: MGF1 with the same hash, a salt as long as the hash's output.
        key.verify(signature, signing_input, padding.PSS(padding.MGF1(digest), digest.digest_size), digest)

    return verify


def _ecdsa(bits: str, curve: type[ec.EllipticCurve]) -> Callable[[Any, bytes, bytes], None]:
    def verify(key: Any, signing_input: bytes, signature: bytes) -> None:
        if not (isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, curve)):
            raise TypeError("not a public key on the alg's curve")
        # RFC 7518 §3.4: R and S as fixed-length big-endian integers, one after the other.
        size = (key.curve.key_size + 7) // 8
        if len(signature) != 2 * size:
            raise ValueError("an ECDSA signature of the wrong length")
        r, s = int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
        key.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(_HASHES[bits]()))

    return verify


def _eddsa(key: Any, signing_input: bytes, signature: bytes) -> None:
    if not isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        raise TypeError("not an Ed25519 or Ed448 public key")
    key.verify(signature, signing_input)


_SIGNERS: dict[str, Callable[[Any, bytes, bytes], None]] = {
    "RS256": _rsa_pkcs1("256"),
    "RS384": _rsa_pkcs1("384"),
    "RS512": _rsa_pkcs1("512"),
    "PS256": _rsa_pss("256"),
    "PS384": _rsa_pss("384"),
    "PS512": _rsa_pss("512"),
    "ES256": _ecdsa("256", ec.SECP256R1),
    "ES384": _ecdsa("384", ec.SECP384R1),
    "ES512": _ecdsa("512", ec.SECP521R1),
    "EdDSA": _eddsa,
}
assert set(_SIGNERS) == set(ALGORITHMS)


class JwtError(RequestError):
    """Verification failed. `reason` is jwt_invalid, jwt_expired or jwks_unavailable; for an
    opaque token also token_inactive or introspection_unavailable.

    str(e) is safe to log: no token or signature, token-derived text escaped and cut.
    """

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class JwtConfigError(LoadError, ValueError):
    """A provider's configuration cannot work; the message says what to change."""


def _invalid(message: str) -> JwtError:
    return JwtError(JWT_INVALID, message)


# ---------------------------------------------------------------- configuration


def _is_str_list(value: object) -> bool:
    return isinstance(value, (tuple, list)) and all(isinstance(v, str) for v in value)


def _check_provider(p: JwtProvider) -> tuple[list[str], KeySet | None]:
    problems: list[str] = []
    if not isinstance(p.name, str) or not p.name:
        problems.append("name must be a non-empty string")

    why = check_https_url(p.issuer)
    if why:
        problems.append(f"issuer {why}; it must be the exact https:// URL the tokens carry in `iss`")
    elif "?" in p.issuer:
        problems.append("issuer must not have a query string")

    if p.introspection is not None:
        problems.extend(_introspection_problems(p))
    algs = p.algorithms  # an introspection provider's are the default's: the loader refuses others
    if not _is_str_list(algs) or not algs:
        problems.append("algorithms must be a non-empty list, e.g. [RS256]")
    else:
        for alg in algs:
            if alg.lower() == "none" or alg.upper().startswith("HS"):
                problems.append(
                    f"algorithm {alg!r} is not allowed: only asymmetric algorithms "
                    f"({', '.join(ALGORITHMS)}); shared secrets are not supported"
                )
            elif alg not in ALGORITHMS:
                close = [a for a in ALGORITHMS if a.lower() == alg.lower()]
                hint = f" (did you mean {close[0]}?)" if close else f"; expected one of {', '.join(ALGORITHMS)}"
                problems.append(f"unknown algorithm {alg!r}{hint}")

    if not _is_str_list(p.audience) or not _is_str_list(p.client_ids):
        problems.append("audience and client_ids must be lists of strings")
    else:
        if not p.audience and not p.client_ids:
            problems.append(
                "set audience (the API identifier in the tokens' `aud`) or client_ids "
                "(Cognito access tokens: `client_id`); without one any token from the issuer would pass"
            )
        if any(not v for v in (*p.audience, *p.client_ids)):
            problems.append("audience and client_ids entries must be non-empty")

    if isinstance(p.leeway, bool) or not isinstance(p.leeway, int) or not 0 <= p.leeway <= MAX_LEEWAY:
        problems.append(f"leeway must be a whole number of seconds from 0 to {MAX_LEEWAY}")

    for name in ("typ", "token_use"):
        value = getattr(p, name)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            problems.append(f"{name} must be a non-empty string when set")

    if p.jwks_uri is not None and p.jwks_file is not None:
        problems.append("set jwks_uri or jwks_file, not both")
    if p.jwks_uri is not None:
        why = check_https_url(p.jwks_uri)
        if why:
            problems.append(f"jwks_uri {why}" + ("; keys are fetched over https:// only" if "https" in why else ""))

    keys: KeySet | None = None
    if p.jwks_file is not None:
        if not isinstance(p.jwks_file, str) or not p.jwks_file:
            problems.append("jwks_file must be a path")
        else:
            try:
                keys = load_key_file(p.jwks_file)
            except JwksFormatError as exc:
                problems.append(f"jwks_file {p.jwks_file}: {exc}")
            else:
                if _is_str_list(algs) and not any(k.fits(a) for k in keys.keys for a in algs):
                    problems.append(
                        f"jwks_file {p.jwks_file}: no key in it can verify {', '.join(algs)} "
                        "(check each key's kty, crv and alg)"
                    )
    return problems, keys


def _introspection_problems(p: JwtProvider) -> list[str]:
    config = p.introspection
    assert config is not None
    problems: list[str] = []
    why = check_https_url(config.url)
    if why:
        problems.append(
            f"introspection.url {why}" + ("; tokens are introspected over https:// only" if "https" in why else "")
        )
    if not isinstance(config.client_id, str) or not config.client_id:
        problems.append("introspection.client_id must be a non-empty string")
    if not isinstance(config.client_secret_env, str) or not _ENV_NAME.fullmatch(config.client_secret_env):
        problems.append(
            "introspection.client_secret_env must be the NAME of an environment variable "
            "(letters, digits, _), the variable that holds the client secret; never the secret"
        )
    from ruleauth.jwt.introspection import MAX_CACHE_TTL

    ttl = config.cache_ttl
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 <= ttl <= MAX_CACHE_TTL:
        problems.append(f"introspection.cache_ttl must be a whole number of seconds from 0 to {MAX_CACHE_TTL}")
    if p.jwks_uri is not None or p.jwks_file is not None or p.typ is not None:
        problems.append("jwks_uri, jwks_file and typ are not used by an introspection provider")
    return problems


def provider_problems(p: JwtProvider) -> list[str]:
    """Static configuration problems of one provider; empty when it is usable.

    Reads `jwks_file` if set (a local file); never touches the network.
    """
    try:
        return _check_provider(p)[0]
    except Exception as exc:  # a malformed model object must still yield a message
        return [f"provider cannot be checked ({type(exc).__name__})"]


# ---------------------------------------------------------------- signatures


def _verify_signature(alg: str, key: VerificationKey | Any, signing_input: bytes, signature: bytes) -> bool:
    """True iff `signature` is valid for `signing_input` under `key` with `alg`.

    The one signature check used by the token path (and by the Wycheproof
    tests). `key` is a VerificationKey or a cryptography public key; it must
    fit `alg` (type, curve, and a JWK's own alg) or the answer is False.
    """
    if not isinstance(key, VerificationKey):
        try:
            kty, crv = check_public_key(key)
        except JwksFormatError:
            return False
        key = VerificationKey(kid=None, kty=kty, crv=crv, alg=None, key=key, material=b"")
    if not key.fits(alg):
        return False
    try:
        # The signer re-checks the key class and, for ECDSA, the curve.
        _SIGNERS[alg](key.key, signing_input, signature)
    except Exception:
        return False
    return True


# ---------------------------------------------------------------- parsing helpers


_MISSING = object()


def _decode_segment(segment: str, what: str) -> bytes:
    try:
        return b64url_decode(segment)
    except ValueError:
        raise _invalid(f"{what} is not strict base64url") from None


def _parse_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = strict_json(data)
    except RecursionError:
        raise _invalid(f"{what} is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        detail = "duplicate member names" if "duplicate member" in str(exc) else "not UTF-8 JSON"
        raise _invalid(f"{what}: {detail}") from None
    if not isinstance(value, dict):
        raise _invalid(f"{what} is not a JSON object")
    _check_shape(value, what)
    return value


def _check_shape(root: dict[str, Any], what: str) -> None:
    problem = claims_problem(root, what)
    if problem is not None:
        raise _invalid(problem)


def claims_problem(root: Mapping[str, Any], what: str = "claims") -> str | None:
    """What breaks SPEC "Limits" in a claim set, or None: nesting ≤ 32 (the claims object is
    depth 1 and only objects and arrays count), lists ≤ 256 items, finite numbers and
    well-formed strings. The one rule for a verified token's claims and for the offline
    claims of `ruleauth test` and `dry-run --claims`, so a tool never accepts a claim set
    that a real token carrying it would have refused."""
    stack: list[tuple[Any, int]] = [(root if isinstance(root, dict) else dict(root), 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            if depth > MAX_CLAIM_DEPTH:
                return f"{what} is nested more than {MAX_CLAIM_DEPTH} deep"
            for name, item in value.items():
                if not isinstance(name, str) or not _well_formed(name):
                    return f"{what} has an invalid string"
                stack.append((item, depth + 1))
        elif isinstance(value, list):
            if depth > MAX_CLAIM_DEPTH:
                return f"{what} is nested more than {MAX_CLAIM_DEPTH} deep"
            if len(value) > MAX_LIST_ITEMS:
                return f"{what} has a list of more than {MAX_LIST_ITEMS} items"
            stack.extend((item, depth + 1) for item in value)
        elif isinstance(value, str):
            if not _well_formed(value):
                return f"{what} has an invalid string"
        elif isinstance(value, float) and not math.isfinite(value):
            return f"{what} has a number out of range"
    return None


def _well_formed(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a \ud800 escape
        return False
    return True


# RFC 7519 NumericDate, bounded to the years 1 to 9999 (0001-01-01T00:00:00Z to
# 9999-12-31T23:59:59Z, what CEL timestamps and Python datetimes hold; docs/spec.md "JWT
# providers"): beyond them a time is no date, and a JSON integer of 10^309 or more is not even
# a float, which nothing downstream (token cache, caller views, rules) should have to guard against.
MIN_NUMERIC_DATE = -62_135_596_800
MAX_NUMERIC_DATE = 253_402_300_799


def _number(claims: Mapping[str, Any], name: str, *, required: bool) -> float | None:
    """A NumericDate claim as a finite float within the range above, or JwtError."""
    value = claims.get(name, _MISSING)
    if value is _MISSING:
        if required:
            raise _invalid(f"token has no {name} claim")
        return None
    # bool is an int in Python; RFC 7519 NumericDate is a JSON number only.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _invalid(f"{name} claim is not a number")
    # Compared before any conversion: Python compares int and float exactly, so 10^400 (an int)
    # and NaN or an infinity (floats) are all refused here without an OverflowError.
    if not MIN_NUMERIC_DATE <= value <= MAX_NUMERIC_DATE:
        raise _invalid(f"{name} claim is not a time between the years 1 and 9999")
    return float(value)


def _scopes_claim(claims: Mapping[str, Any], name: str) -> None:
    """`scope`/`scp`: a space-separated string or a list of strings (what `scopes` reads)."""
    value = claims.get(name, _MISSING)
    if value is _MISSING or isinstance(value, str) or _is_str_list(value):
        return
    raise _invalid(f"{name} claim is not a string or a list of strings")


def check_claim_formats(
    claims: Mapping[str, Any], *, exp_required: bool = True
) -> tuple[float | None, float | None, float | None]:
    """The claims whose form ruleauth relies on: exp, nbf, iat as NumericDates, sub and jti
    strings, scope and scp a string or a list of strings. Returns (exp, nbf, iat).

    The one check of these forms, for verified tokens and for the unverified claims of
    `ruleauth test` and `dry-run --claims` alike (those need no exp).
    """
    exp = _number(claims, "exp", required=exp_required)
    nbf = _number(claims, "nbf", required=False)
    iat = _number(claims, "iat", required=False)
    for name in ("sub", "jti"):
        _string_claim(claims, name)
    for name in ("scope", "scp"):
        _scopes_claim(claims, name)
    return exp, nbf, iat


_P = TypeVar("_P", bound="_Named")


class _Named(Protocol):
    @property
    def name(self) -> str: ...


def select_provider(by_issuer: Mapping[str, _P], iss: object, allowed: Sequence[str] | None) -> _P:
    """The provider a token's `iss` selects, among those configured (`by_issuer`: issuer →
    provider) and accepted on the route (`allowed`: provider names, None for all). The one
    selection, for verified tokens and for the unverified claims of `ruleauth test` and
    `dry-run --claims`."""
    if not isinstance(iss, str):
        raise _invalid("iss claim is missing or not a string")
    provider = by_issuer.get(iss)
    if provider is None:
        raise _invalid(f"issuer {safe_text(iss)} is not configured")
    if allowed is not None and provider.name not in allowed:
        raise _invalid(f"provider {provider.name!r} is not accepted on this route")
    return provider


def is_jwt(token: str) -> bool:
    """A JWT in the compact serialization, as routing reads it: three base64url segments, the
    first a JSON object. Anything else is opaque, for the introspection provider."""
    segments = token.split(".")
    if len(segments) != 3:
        return False
    try:
        header = strict_json(b64url_decode(segments[0]))
    except (ValueError, RecursionError, UnicodeDecodeError):
        return False
    return isinstance(header, dict)


def _string_claim(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name, _MISSING)
    if value is _MISSING:
        return None
    if not isinstance(value, str):
        raise _invalid(f"{name} claim is not a string")
    return value


def _normal_typ(typ: str) -> str:
    # RFC 9068 §4 / RFC 7515 §4.1.9: media types compare case-insensitively, "application/" optional.
    typ = typ.strip().lower()
    return typ[len("application/") :] if typ.startswith("application/") else typ


# ---------------------------------------------------------------- the verifier


@dataclass(frozen=True)
class _Entry:
    provider: str
    kid: str | None
    alg: str
    key: VerificationKey
    payload: bytes


@dataclass(frozen=True)
class _Checked:
    """What the claim checks read of a provider, JWT or introspection."""

    config: JwtProvider
    audience: frozenset[str]
    client_ids: frozenset[str]

    @property
    def name(self) -> str:
        return self.config.name


@dataclass(frozen=True)
class _Provider(_Checked):
    keys: ProviderKeys
    typ: str | None


class JwtVerifier:
    """Verifies bearer JWTs against the configured providers.

    Construction does no network I/O (it may read bundled jwks_file keys and
    raises JwtConfigError for bad configuration); keys are fetched lazily by
    the first verify() that needs them.
    """

    def __init__(
        self,
        providers: Sequence[JwtProvider],
        *,
        fetcher: KeyFetcher | None = None,
        clock: Callable[[], float] = time.time,
        lifespan: float = DEFAULT_LIFESPAN,
        cooldown: float = DEFAULT_COOLDOWN,
        max_stale: float = DEFAULT_MAX_STALE,
        fetch_timeout: float = DEFAULT_FETCH_TIMEOUT,
        max_jwks_bytes: int = DEFAULT_MAX_BYTES,
        max_keys: int = DEFAULT_MAX_KEYS,
        token_cache_size: int = DEFAULT_TOKEN_CACHE_SIZE,
        environ: Mapping[str, str] | None = None,
        introspection_cache_size: int = DEFAULT_TOKEN_CACHE_SIZE,  # answers kept, as many as verified tokens
    ) -> None:
        policy = CachePolicy(
            lifespan=lifespan,
            cooldown=cooldown,
            max_stale=max_stale,
            fetch_timeout=fetch_timeout,
            max_bytes=max_jwks_bytes,
            max_keys=max_keys,
        )
        problems = [f"jwt settings: {msg}" for msg in policy.problems()]
        if isinstance(token_cache_size, bool) or not isinstance(token_cache_size, int) or token_cache_size < 0:
            problems.append("jwt settings: token_cache_size must be an integer >= 0")
        fetcher = fetcher if fetcher is not None else HttpsFetcher()
        by_issuer: dict[str, _Provider] = {}
        names: set[str] = set()
        introspected: list[JwtProvider] = []
        for p in providers:
            found, static = _check_provider(p)
            problems.extend(f"jwt provider {p.name!r}: {msg}" for msg in found)
            if p.name in names:
                problems.append(f"jwt provider {p.name!r}: the name is used twice")
            names.add(p.name)
            if p.introspection is not None:
                # Not selected by iss: an opaque token is introspected, so it may share a JWT provider's issuer.
                introspected.append(p)
                continue
            if p.issuer in by_issuer:
                problems.append(
                    f"jwt provider {p.name!r}: issuer {p.issuer} is also provider "
                    f"{by_issuer[p.issuer].config.name!r}'s; a token's iss must pick one provider"
                )
            if found:
                continue
            keys = ProviderKeys(p, fetcher=fetcher, clock=clock, policy=policy, static=static)
            by_issuer.setdefault(
                p.issuer,
                _Provider(
                    config=p,
                    keys=keys,
                    typ=_normal_typ(p.typ) if p.typ is not None else None,
                    audience=frozenset(p.audience),
                    client_ids=frozenset(p.client_ids),
                ),
            )
        if len(introspected) > 1:
            problems.append(
                f"jwt providers {', '.join(repr(p.name) for p in introspected)}: only one provider may use "
                "introspection (an opaque token names no issuer to choose by)"
            )
        if problems:
            raise JwtConfigError("; ".join(problems))
        self._introspected: _Checked | None = None
        self._introspector: Introspector | None = None
        if introspected:
            p = introspected[0]
            self._introspected = _Checked(config=p, audience=frozenset(p.audience), client_ids=frozenset(p.client_ids))
            from ruleauth.jwt.introspection import Introspector, Poster

            # The one HTTPS client: the key fetcher itself, unless a test substituted a GET-only one.
            poster: Poster = fetcher if isinstance(fetcher, HttpsFetcher) else HttpsFetcher()
            self._introspector = Introspector(
                p,
                environ=os.environ if environ is None else environ,
                poster=poster,
                clock=clock,
                fetch_timeout=fetch_timeout,
                max_bytes=max_jwks_bytes,
                cache_size=introspection_cache_size,
            )
        self._providers = by_issuer
        self._by_name = {p.config.name: p for p in by_issuer.values()}
        self._clock = clock
        # Each entry lives until the token's exp, and at most `lifespan` seconds.
        self._cache: Cache[bytes, _Entry] = Cache(token_cache_size, lifespan, clock)

    @property
    def providers(self) -> tuple[JwtProvider, ...]:
        return tuple(p.config for p in self._providers.values())

    def keys_for(self, name: str) -> ProviderKeys:
        """The key cache of one provider (for diagnostics and tests)."""
        return self._by_name[name].keys

    def fetch_stats(self) -> dict[str, tuple[int, int]]:
        """Per provider name: key-set fetch attempts and failures so far (for metrics)."""
        return {p.config.name: (p.keys.fetch_count, p.keys.fetch_failures) for p in self._providers.values()}

    @property
    def introspector(self) -> Introspector | None:
        """The introspection provider's client and cache, if one is configured (for metrics and tests)."""
        return self._introspector

    def introspection_stats(self) -> dict[str, tuple[int, int, int, int]]:
        """Per introspection provider: requests, failures, cache hits and misses so far (for metrics)."""
        found = self._introspector
        return {} if found is None else {found.provider.name: found.stats()}

    def missing_secrets(self) -> list[Problem]:
        """An introspection provider without its client secret (the variable unset), at the
        position of `client_secret_env`: the cold start fails on it (lambda_handler)."""
        found = self._introspector
        if found is None or not found.secret_problem:
            return []
        assert found.provider.introspection is not None
        return [Problem(found.secret_problem, found.provider.introspection.pos)]

    def verify(self, token: str, allowed: Sequence[str] | None = None, now: float | None = None) -> VerifiedToken:
        """Verified claims of `token`, or JwtError.

        allowed: provider names this route accepts (None: all). now: decide at
        this time instead of the clock (dry runs); it also bypasses the cache.
        """
        try:
            return self._verify(token, allowed, now)
        except JwtError as exc:
            raise JwtError(exc.reason, str(exc)) from None
        except Exception as exc:  # fail closed: any surprise is an invalid token, never a 500
            raise JwtError(JWT_INVALID, f"token could not be processed ({type(exc).__name__})") from None

    # The steps, in the order described in the module docstring.
    def _verify(self, token: str, allowed: Sequence[str] | None, now_override: float | None) -> VerifiedToken:
        if not isinstance(token, str):
            raise _invalid("token is not a string")
        if len(token) > MAX_TOKEN_BYTES:
            raise _invalid(f"token is longer than {MAX_TOKEN_BYTES} bytes")
        if not token.isascii():
            raise _invalid("token has non-ASCII characters")
        if self._introspected is not None and not is_jwt(token):
            return self._introspect(token, allowed, now_override)
        segments = token.split(".")
        if len(segments) != 3:
            raise _invalid(f"token has {len(segments)} segments, not 3 (JWE and JSON serialization are not accepted)")
        header_b = _decode_segment(segments[0], "header")
        header = _parse_object(header_b, "header")
        alg = header.get("alg")
        if not isinstance(alg, str):
            raise _invalid("header alg is missing or not a string")
        if alg not in ALGORITHMS:
            raise _invalid(f"header alg {safe_text(alg)} is not an accepted asymmetric algorithm")
        for name in _REFUSED_HEADER_MEMBERS:
            if name in header:
                raise _invalid(f"header {name} is not supported")
        kid = header.get("kid")
        if kid is not None and (not isinstance(kid, str) or not kid or len(kid) > MAX_KID_LENGTH):
            raise _invalid(f"header kid must be a string of 1-{MAX_KID_LENGTH} characters")
        typ = header.get("typ")
        if typ is not None and not isinstance(typ, str):
            raise _invalid("header typ is not a string")

        # Only now the payload: a header we refuse (b64, crit, ...) never gets it decoded.
        payload_b = _decode_segment(segments[1], "payload")
        signature = _decode_segment(segments[2], "signature")
        digest = b""
        if now_override is None and self._cache.maxsize:
            digest = hashlib.sha256(
                b"%d.%d." % (len(header_b), len(payload_b)) + header_b + payload_b + signature
            ).digest()
            hit = self._cached(digest, allowed)
            if hit is not None:
                return hit

        claims = _parse_object(payload_b, "payload")
        provider = select_provider(self._providers, claims.get("iss"), allowed)
        cfg = provider.config
        if alg not in cfg.algorithms:
            raise _invalid(f"alg {alg} is not allowed for provider {cfg.name!r}")
        if provider.typ is not None and (typ is None or _normal_typ(typ) != provider.typ):
            raise _invalid(f"header typ {safe_text(typ) if typ else 'missing'} is not {cfg.typ!r}")

        try:
            key = provider.keys.get(kid, alg)
        except KeysUnavailable as exc:
            raise JwtError(JWKS_UNAVAILABLE, f"keys for provider {cfg.name!r} are unavailable: {exc}") from None
        except KeyNotFound:
            raise _invalid(
                f"no key of provider {cfg.name!r} for kid {safe_text(kid) if kid else 'missing'} and alg {alg}"
            ) from None

        signing_input = (segments[0].rstrip("=") + "." + segments[1].rstrip("=")).encode("ascii")
        if not _verify_signature(alg, key, signing_input, signature):
            raise _invalid(
                f"signature does not verify (provider {cfg.name!r}, kid {safe_text(kid) if kid else 'missing'})"
            )

        now = self._clock() if now_override is None else now_override
        exp = self._check_claims(provider, claims, now)

        if digest:
            self._remember(
                digest,
                _Entry(
                    provider=cfg.name,
                    kid=kid,
                    alg=alg,
                    key=key,
                    payload=payload_b,
                ),
                exp,
                now,
            )
        return VerifiedToken(provider=cfg.name, claims=claims)

    def _introspect(self, token: str, allowed: Sequence[str] | None, now_override: float | None) -> VerifiedToken:
        provider, introspector = self._introspected, self._introspector
        assert provider is not None and introspector is not None
        name = provider.name
        if allowed is not None and name not in allowed:
            raise _invalid(f"the token is not a JWT, and introspection provider {name!r} is not accepted on this route")
        from ruleauth.jwt.introspection import IntrospectionUnavailable

        try:
            claims = introspector.introspect(token, use_cache=now_override is None)
        except IntrospectionUnavailable as exc:
            raise JwtError(Reason.INTROSPECTION_UNAVAILABLE, str(exc)) from None
        if claims is None:
            raise JwtError(Reason.TOKEN_INACTIVE, f"introspection provider {name!r} says the token is not active")
        _check_shape(claims, "introspection answer")
        iss = claims.get("iss", _MISSING)
        if iss is not _MISSING and iss != provider.config.issuer:
            raise _invalid(f"introspection answer's iss {safe_text(iss)} is not provider {name!r}'s issuer")
        self._check_claims(
            provider, claims, self._clock() if now_override is None else now_override, exp_required=False
        )
        return VerifiedToken(provider=name, claims=claims)

    def _check_claims(self, provider: _Checked, claims: dict[str, Any], now: float, exp_required: bool = True) -> float:
        cfg = provider.config
        leeway = cfg.leeway
        exp, nbf, iat = check_claim_formats(claims, exp_required=exp_required)
        if exp is not None and now >= exp + leeway:
            raise JwtError(JWT_EXPIRED, "token has expired")
        if nbf is not None and nbf > now + leeway:
            raise _invalid("token is not valid yet (nbf)")
        if iat is not None and iat > now + leeway:
            raise _invalid("token was issued in the future (iat)")

        aud = claims.get("aud", _MISSING)
        auds: list[str] = []
        if aud is not _MISSING:
            if isinstance(aud, str):
                auds = [aud]
            elif isinstance(aud, list) and aud and all(isinstance(a, str) for a in aud):
                auds = aud
            else:
                raise _invalid("aud claim is not a string or a list of strings")
        if provider.audience:
            if not auds:
                raise _invalid("token has no aud claim")
            if provider.audience.isdisjoint(auds):
                raise _invalid("aud claim does not name this API")
        if provider.client_ids:
            client_id = _string_claim(claims, "client_id")
            azp = _string_claim(claims, "azp")
            presented = [c for c in (client_id, azp) if c is not None]
            if not presented and not provider.audience:
                presented = auds  # an OIDC ID token names its client in aud
            if not presented:
                raise _invalid("token names no client (client_id or azp)")
            if any(c not in provider.client_ids for c in presented):
                raise _invalid("token's client is not in client_ids")

        if cfg.token_use is not None and claims.get("token_use") != cfg.token_use:
            raise _invalid(f"token_use is not {cfg.token_use!r}")
        return math.inf if exp is None else exp

    def _cached(self, digest: bytes, allowed: Sequence[str] | None) -> VerifiedToken | None:
        entry = self._cache.get(digest)
        if entry is None:
            return None
        if allowed is not None and entry.provider not in allowed:
            return None  # the full path gives the precise error
        provider = self._by_name[entry.provider]
        # Only while the provider serves the very same key: a rotated-out key ends the entry.
        if provider.keys.current(entry.kid, entry.alg) is not entry.key:
            self._cache.pop(digest)
            return None
        # A fresh object per request so no caller can alter another's claims (docs/threats.md K10).
        return VerifiedToken(provider=entry.provider, claims=json.loads(entry.payload))

    def _remember(self, digest: bytes, entry: _Entry, exp: float, now: float) -> None:
        self._cache.put(digest, entry, expires_at=exp, now=now)
