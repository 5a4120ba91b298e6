"""Opaque tokens vouched for by an introspection endpoint (RFC 7662; docs/spec.md
"Introspection providers").

The token is POSTed (`token=…&token_type_hint=access_token`, form-encoded) with the
authorizer's own client credentials in HTTP Basic (client_secret_basic), through the one
HTTPS client key fetching uses (jwt/fetch.py): HTTPS only, no redirects, one deadline, a
byte cap. The answer's `active` member decides; an active answer's members are the token's
claims, which the verifier checks as a JWT's. Anything but a 200 with a JSON object holding
a boolean `active` is an outage of the endpoint, not a verdict on the token (a 401 means
the authorizer's own credentials are refused, RFC 7662 §2.3): logged, counted, and 401
`introspection_unavailable`; for a second after a failed request no other is made (the
answer is the same 401 at once), as the key fetcher's cooldown spares a failing JWKS URL.

Answers are cached per warm container under the SHA-256 of the token (never the token),
for `cache_ttl` seconds and never past the token's `exp`; inactive answers too, so a
replayed dead token costs no request. The client secret lives only in this module's
`_BasicAuth`, whose repr hides it; no message built here contains it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from ruleauth.cache import Cache
from ruleauth.errors import RequestError
from ruleauth.jwt.codecs import strict_json
from ruleauth.jwt.keys import FetchError
from ruleauth.model import JwtProvider
from ruleauth.reasons import Reason

log = logging.getLogger(__name__)

MAX_CACHE_TTL = 3600
# After a failed request, none for this long: an endpoint that hangs costs each warm container
# one deadline per second, not one per uncached token (what the key fetcher's cooldown does for
# key sets), and a recovered endpoint is asked again a second later at most.
RETRY_AFTER = 1.0
_INACTIVE = b""  # the cached answer of an inactive token (an active one is its JSON, never empty)


class Poster(Protocol):
    def post(self, url: str, body: bytes, headers: Mapping[str, str], *, deadline: float, max_bytes: int) -> bytes:
        """The body of a 200 answer. `deadline` is on time.monotonic(). Raises FetchError."""
        ...


class IntrospectionUnavailable(RequestError):
    """The endpoint gave no usable answer; str(e) is safe to log (no token, no secret)."""

    reason = Reason.INTROSPECTION_UNAVAILABLE


class _BasicAuth:
    """The Authorization header value for client_secret_basic: RFC 6749 §2.3.1 form-encodes
    the client id and secret before joining them with ":" and base64-encoding the pair."""

    __slots__ = ("_value",)

    def __init__(self, client_id: str, secret: str) -> None:
        pair = f"{urllib.parse.quote_plus(client_id, safe='')}:{urllib.parse.quote_plus(secret, safe='')}"
        self._value = "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")

    @property
    def header(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<client secret hidden>"

    __str__ = __repr__

    def __reduce__(self) -> Any:  # nothing built on pickle may write the secret out
        raise TypeError("the introspection client secret is not picklable")


def secret_problem(provider: JwtProvider, environ: Mapping[str, str]) -> str | None:
    """Why the provider's client secret cannot be read from `environ`, or None."""
    assert provider.introspection is not None
    variable = provider.introspection.client_secret_env
    if not environ.get(variable):
        return (
            f"jwt provider {provider.name!r}: introspection.client_secret_env names {variable}, "
            "which is not set (or empty) in the function's environment; set it at deploy, e.g. from "
            'Secrets Manager or SSM Parameter Store (README "Opaque tokens")'
        )
    return None


class Introspector:
    """Asks one provider's endpoint about opaque tokens, through a bounded cache."""

    def __init__(
        self,
        provider: JwtProvider,
        *,
        environ: Mapping[str, str],
        poster: Poster,
        clock: Callable[[], float],
        fetch_timeout: float,
        max_bytes: int,
        cache_size: int,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        config = provider.introspection
        assert config is not None
        self.provider = provider
        self._url = config.url
        # Read once, here (the cold start); a missing secret fails the cold start (lambda_handler).
        self.secret_problem = secret_problem(provider, environ)
        self._auth = None if self.secret_problem else _BasicAuth(config.client_id, environ[config.client_secret_env])
        self._poster = poster
        self._clock = clock
        self._monotonic = monotonic
        self._fetch_timeout = fetch_timeout
        self._max_bytes = max_bytes
        self._cache: Cache[bytes, bytes] = Cache(cache_size if config.cache_ttl else 0, config.cache_ttl, clock)
        self._failed_at: float | None = None  # on `clock`, as the key fetcher's cooldown
        self._last_error = ""
        self.requests = 0  # for metrics and tests
        self.failures = 0
        self.cache_hits = 0
        self.cache_misses = 0

    def stats(self) -> tuple[int, int, int, int]:
        """Requests, failed requests, cache hits and cache misses so far."""
        return self.requests, self.failures, self.cache_hits, self.cache_misses

    def introspect(self, token: str, *, use_cache: bool = True) -> dict[str, Any] | None:
        """The active token's claims (a fresh dict), or None for an inactive one.
        Raises IntrospectionUnavailable."""
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        if use_cache and self._cache.maxsize:
            found = self._cache.get(digest)
            if found is not None:
                self.cache_hits += 1
                return None if found == _INACTIVE else dict(json.loads(found))
            self.cache_misses += 1
        body = self._ask(token)
        active, claims = self._read(body)
        if use_cache and self._cache.maxsize:
            self._cache.put(digest, body if active else _INACTIVE, expires_at=_expiry(claims))
        return claims if active else None

    def _ask(self, token: str) -> bytes:
        name = self.provider.name
        if self._auth is None:
            assert self.secret_problem is not None
            raise IntrospectionUnavailable(self.secret_problem)
        if self._failed_at is not None and 0 <= self._clock() - self._failed_at < RETRY_AFTER:
            raise IntrospectionUnavailable(
                f"introspection for provider {name!r} failed less than {RETRY_AFTER:g} s ago "
                f"({self._last_error}); not asked again yet"
            )
        self.requests += 1
        form = urllib.parse.urlencode({"token": token, "token_type_hint": "access_token"}).encode("ascii")
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Authorization": self._auth.header}
        try:
            return self._poster.post(
                self._url, form, headers, deadline=self._monotonic() + self._fetch_timeout, max_bytes=self._max_bytes
            )
        except Exception as exc:  # any poster's failure is the endpoint's outage: logged, counted, 401
            why = str(exc) if isinstance(exc, FetchError) else f"unexpected {type(exc).__name__}"
            if why.startswith("HTTP 401"):
                why += " (the endpoint refuses the authorizer's client_id and secret)"
            raise self._failed(why) from None

    def _read(self, body: bytes) -> tuple[bool, dict[str, Any]]:
        try:
            answer = strict_json(body)
        except (ValueError, RecursionError, UnicodeDecodeError) as exc:
            why = f"the answer is not JSON ({type(exc).__name__})"
        else:
            if not isinstance(answer, dict):
                why = "the answer is not a JSON object"
            elif not isinstance(answer.get("active"), bool):
                why = "the answer has no boolean `active` member"
            else:
                self._failed_at = None
                return answer["active"], answer
        raise self._failed(why)

    def _failed(self, why: str) -> IntrospectionUnavailable:
        """Counts, logs and remembers a failed request; the error to raise."""
        self.failures += 1
        self._failed_at, self._last_error = self._clock(), why
        log.warning("token introspection for provider %s failed: %s", self.provider.name, why)
        return IntrospectionUnavailable(f"introspection for provider {self.provider.name!r} failed: {why}")


def _expiry(claims: Mapping[str, Any]) -> float | None:
    """The answer's `exp` as a cache deadline, where it is a usable number (the verifier
    refuses the claims otherwise, cached or not)."""
    exp = claims.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, (int, float)):
        return None
    if isinstance(exp, float) and not math.isfinite(exp):
        return None
    return exp
