"""The signing keys of one JWT provider: static, or fetched and cached.

Where keys come from, in order of preference in a provider's config:
  * `jwks_file`: bundled with the function, read once at construction; every
    key in it must be good (a bad key is a configuration error, not a silent drop).
  * `jwks_uri`: fetched over HTTPS.
  * neither: OIDC discovery at `{issuer}/.well-known/openid-configuration`, whose
    `issuer` member must equal the configured issuer exactly.

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

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ruleauth.errors import safe_text
from ruleauth.jwt.codecs import strict_json
from ruleauth.jwt.fetch import DEFAULT_FETCH_TIMEOUT, MAX_FETCH_TIMEOUT, KeyFetcher, check_https_url
from ruleauth.jwt.keys import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_KEYS,
    FetchError,
    JwksError,
    JwksFormatError,
    KeyNotFound,
    KeySet,
    KeysUnavailable,
    VerificationKey,
    parse_jwks,
)
from ruleauth.model import JwtProvider

log = logging.getLogger(__name__)

DEFAULT_LIFESPAN = 300.0
DEFAULT_COOLDOWN = 30.0
DEFAULT_MAX_STALE = 3600.0


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
