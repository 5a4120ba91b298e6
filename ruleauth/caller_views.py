"""Per-caller answers reused across requests in a warm container (cache.mode identity).

Under cache.mode identity every rule, `principal` and `context` reads only the
credential, its claims and the declared identity sources (the loader enforces
it), so one caller's answers for the whole route table are a function of those
values. A warm container therefore reuses them, as API Gateway's own cache
would, while the credential is still verified on every request:

- bounded (least recently used out) and short-lived: at most VIEW_TTL seconds,
  never past the token's `exp`;
- keyed on the decoded token (SHA-256 of its decoded segments), so two spellings
  of one token (`=` padding) share an entry and never diverge, plus every
  identity-source value and the API and stage;
- not used when any expression reads `now`, for unverified claims (dry-run,
  tests), or when the evaluation deadline cut a computation short.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Mapping

from . import evaluation as ev
from .credentials import extract
from .errors import CredentialError
from .jwks import b64url_decode
from .model import Request

if TYPE_CHECKING:
    from .decision import CallerView, Decider

VIEW_TTL = 60.0
VIEW_CACHE_SIZE = 1024


class CallerViews:
    def __init__(self, decider: "Decider", size: int = VIEW_CACHE_SIZE, ttl: float = VIEW_TTL):
        self._decider = decider
        self._size = size
        self._ttl = ttl
        self._views: OrderedDict[tuple, "CallerView"] = OrderedDict()
        # Lambda runs one request at a time; `ruleauth serve` runs threads.
        self._lock = threading.Lock()
        ruleset = decider.ruleset
        compiled = [r.allow for r in ruleset.rules] + list(ruleset.context.values())
        compiled += [c for c in (ruleset.principal, ruleset.usage_identifier_key) if c is not None]
        self._enabled = not any(c.uses_now for c in compiled)

    def view(self, request: Request, now: float, claims: Mapping[str, Any] | None,
             budget: ev.Budget, known: dict | None = None) -> "CallerView":
        """`known`: identities already checked for this request, by (auth, providers)."""
        key = self._key(request) if self._enabled and claims is None else None
        if key is not None:
            with self._lock:
                found = self._views.get(key)
                if found is not None and now < found.expires:
                    self._views.move_to_end(key)
                    return found
        view = self._compute(request, now, claims, budget, dict(known or {}))
        if key is not None and not _cut_short(view):
            with self._lock:
                self._views[key] = view
                self._views.move_to_end(key)
                while len(self._views) > self._size:
                    self._views.popitem(last=False)
        return view

    def __len__(self) -> int:
        return len(self._views)

    def _compute(self, request: Request, now: float, claims: Mapping[str, Any] | None,
                 budget: ev.Budget, identities: dict) -> "CallerView":
        from .decision import CallerView

        decider = self._decider
        results = decider.table_results(request, now, claims, budget, identities)
        facts, identity = decider.caller_facts(request, now, claims, budget, identities)
        expires = now + self._ttl
        exp = identity.claims.get("exp")
        if isinstance(exp, (int, float)) and not isinstance(exp, bool) and math.isfinite(exp):
            expires = min(expires, float(exp))
        return CallerView(results, facts, identity, expires)

    def _key(self, request: Request) -> tuple | None:
        ruleset = self._decider.ruleset
        try:
            credential = extract(ruleset.token, request).value
        except CredentialError:
            return None
        canonical = _canonical(credential, jwt=bool(ruleset.providers))
        if canonical is None:
            return None
        cache, token = ruleset.cache, ruleset.token
        # The credential's own source is represented by its canonical form above.
        credential_header = (token.header or "").lower()
        credential_cookie_header = "cookie" if token.cookie else ""
        sources = (
            tuple(request.header_values.get(h.lower(), ()) for h in cache.headers
                  if h.lower() not in (credential_header, credential_cookie_header)),
            tuple(request.query_values.get(q, ()) for q in cache.query if q != token.query),
            tuple(request.stage_variables.get(v, "") for v in cache.stage_variables),
            request.source_ip if "identity.sourceIp" in cache.context else "",
        )
        return canonical, sources, request.arn.prefix, request.event_type


def _canonical(credential: str, jwt: bool) -> bytes | None:
    """One key per token, however its base64url is spelled; None when it is not a JWS."""
    if not credential:
        return b""
    if not jwt:
        return hashlib.sha256(credential.encode("utf-8", "surrogatepass")).digest()
    parts = credential.split(".")
    if len(parts) != 3:
        return None
    digest = hashlib.sha256()
    try:
        for part in parts:
            decoded = b64url_decode(part)
            digest.update(len(decoded).to_bytes(4, "big") + decoded)
    except Exception:  # not canonicalisable: verification will refuse it anyway
        return None
    return digest.digest()


def _cut_short(view: "CallerView") -> bool:
    return any(r is not None and r.error_class == "DeadlineExceeded" for r in view.results)
