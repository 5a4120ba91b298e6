"""Answers reused across requests in a warm container (cache.mode identity).

Under cache.mode identity every rule, `principal` and `context` reads only the
credential, its claims and the declared identity sources (the loader enforces
it), and the rule compiler records exactly which of them each expression reads.
So the answers for the whole route table are a function of the values the rules
read, and principal and context of the values they read. A warm container keeps
both, as API Gateway's own cache would, while every request's credential is
still verified:

- keyed on the verified values the expressions read (the claims they name, the
  scopes, the provider, the credential itself where `token` is read), plus the
  identity sources, API and stage: two spellings of one token, or two tokens of
  one user, or two users with the same scopes, share answers and never diverge;
- bounded (least recently used out) and short-lived: at most VIEW_TTL seconds,
  never past the `exp` of the token that computed them;
- not used when any expression reads `now`, for unverified claims (dry-run,
  tests), without a verified credential, or when the evaluation deadline cut a
  computation short.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ruleauth.cache import Cache
from ruleauth.cel import evaluation as ev
from ruleauth.cel import numeric as cel_numbers
from ruleauth.cel.compiler import Compiled
from ruleauth.model import Request
from ruleauth.rules.ruleset import AUTH_JWT, AUTH_TOKEN, CERT_SOURCES, RuleSet

VIEW_TTL = 60.0
VIEW_CACHE_SIZE = 1024
_MISSING = "\x00missing"
ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Identity:
    """Who the caller is, once the credential is checked."""

    token: str = ""
    claims: Mapping[str, Any] = field(default_factory=dict)
    provider: str = ""
    verified: bool = False


# (auth, providers) → Identity, or None where the credential fails that auth
Identities = dict[tuple, Identity | None]


@dataclass
class CallerFacts:
    """What a response says about the caller, whatever route they call."""

    principal: str | None = ANONYMOUS  # None: the principal expression failed
    context: dict[str, Any] = field(default_factory=dict)
    omitted: list[tuple[str, str]] = field(default_factory=list)
    usage_identifier_key: str | None = None


@dataclass
class CallerView:
    """One caller's answers for the whole route table (cache.mode identity)."""

    results: list[ev.Result | None]
    caller: CallerFacts
    identity: Identity
    expires: float = 0.0


class CallerSource(Protocol):
    """What the cache asks of the decider (runtime/decision.Decider implements it): the cache
    depends on this, never on the decider's module, so data flows one way."""

    @property
    def ruleset(self) -> RuleSet: ...

    def identity_for(
        self, who: tuple, request: Request, now: float, claims: Mapping[str, Any] | None, identities: Identities
    ) -> Identity | None: ...

    def table_results(
        self,
        request: Request,
        now: float,
        claims: Mapping[str, Any] | None,
        budget: ev.Budget,
        identities: Identities | None = None,
    ) -> list[ev.Result | None]: ...

    def caller_facts(
        self,
        request: Request,
        now: float,
        claims: Mapping[str, Any] | None,
        budget: ev.Budget,
        identities: Identities | None = None,
    ) -> tuple[CallerFacts, Identity]: ...


class _Inputs:
    """Which verified values a group of expressions reads, as a cache-key recipe."""

    def __init__(self, compiled: Iterable[Compiled], extra_claims: Iterable[str] = ()):
        reads = {r for c in compiled for r in c.reads}
        self.token = any(r.input == "token" for r in reads)
        self.scopes = any(r.input == "scopes" for r in reads)
        self.whole_claims = any(r.input == "claims" and r.key is None for r in reads)
        self.claims = tuple(
            sorted({r.key for r in reads if r.input == "claims" and r.key is not None} | set(extra_claims))
        )

    def values(self, identity: Identity) -> tuple:
        claims = identity.claims
        if self.whole_claims:
            named: Any = _canonical_json(claims)
        else:
            named = tuple(_canonical_json(claims[k]) if k in claims else _MISSING for k in self.claims)
        return (
            _digest(identity.token) if self.token else None,
            tuple(ev.scopes_of(claims)) if self.scopes else None,
            named,
            # Claims with an integer CEL cannot hold fail every expression that reads them,
            # whichever claim it names (evaluation.activation_for).
            cel_numbers.json_integers_fit(claims) if self.whole_claims or self.claims else None,
            identity.provider,
            identity.verified,
        )


class CallerViews:
    def __init__(self, decider: CallerSource, size: int = VIEW_CACHE_SIZE, ttl: float = VIEW_TTL):
        self._decider = decider
        self._ttl = ttl
        ruleset = decider.ruleset
        table = [r.allow for r in ruleset.rules if not r.shadow]
        facts = list(ruleset.context.values())
        facts += [c for c in (ruleset.principal, ruleset.usage_identifier_key) if c is not None]
        self._table_inputs = _Inputs(table)
        # Without a principal expression the principal is claims.sub.
        self._facts_inputs = _Inputs(facts, extra_claims=("sub",) if ruleset.principal is None else ())
        self._enabled = not any(c.uses_now for c in table + facts)
        # Each answer lives until `expires` (VIEW_TTL, or the token's exp if sooner).
        self._tables: Cache[tuple[Any, ...], list[ev.Result | None]] = Cache(size, ttl)
        self._facts: Cache[tuple[Any, ...], CallerFacts] = Cache(size, ttl)
        self._strongest = (AUTH_JWT if ruleset.providers else AUTH_TOKEN, None)

    def __len__(self) -> int:
        """How many distinct table answers are kept."""
        return len(self._tables)

    def view(
        self,
        request: Request,
        now: float,
        claims: Mapping[str, Any] | None,
        budget: ev.Budget,
        known: Identities | None = None,
    ) -> CallerView:
        """`known`: identities already checked for this request, by (auth, providers)."""
        decider = self._decider
        identities = dict(known or {})
        caller = None
        if self._enabled and claims is None:
            caller = decider.identity_for(self._strongest, request, now, None, identities)
        if caller is None or not caller.token:
            results = decider.table_results(request, now, claims, budget, identities)
            facts, identity = decider.caller_facts(request, now, claims, budget, identities)
            return CallerView(results, facts, identity)
        base = (_sources(decider, request), request.arn.prefix, request.event_type)
        expires = now + self._ttl
        exp = caller.claims.get("exp")
        # A verified exp is a NumericDate of the years 1-9999 (jwt_verifier.check_claim_formats);
        # min() compares int and float exactly, so even an unchecked huge int cannot overflow here.
        if isinstance(exp, (int, float)) and not isinstance(exp, bool):
            expires = float(min(expires, exp))
        table_key = base + self._table_inputs.values(caller)
        cached = self._tables.get(table_key, now)
        if cached is not None:
            results = cached
        else:
            results = decider.table_results(request, now, None, budget, identities)
            if not _cut_short(results):
                self._tables.put(table_key, results, expires, now)
        facts_key = base + self._facts_inputs.values(caller)
        remembered = self._facts.get(facts_key, now)
        if remembered is not None:
            facts = remembered
        else:
            facts, _ = decider.caller_facts(request, now, None, budget, identities)
            self._facts.put(facts_key, facts, expires, now)
        return CallerView(results, facts, caller, expires)


def _sources(decider: CallerSource, request: Request) -> tuple:
    """The identity-source values other than the credential (which the inputs cover)."""
    ruleset = decider.ruleset
    cache, token = ruleset.cache, ruleset.token
    credential_header = (token.header or "").lower()
    credential_cookie_header = "cookie" if token.cookie else ""
    return (
        tuple(
            request.header_values.get(h.lower(), ())
            for h in cache.headers
            if h.lower() not in (credential_header, credential_cookie_header)
        ),
        tuple(request.query_values.get(q, ()) for q in cache.query if q != token.query),
        tuple(request.stage_variables.get(v, "") for v in cache.stage_variables),
        request.source_ip if "identity.sourceIp" in cache.context else "",
        # The client certificate's identity sources (the loader lets rules read the certificate
        # under caching only where they are declared).
        tuple(
            getattr(request.client_cert, CERT_SOURCES[c], "") if request.client_cert else ""
            for c in cache.context
            if c in CERT_SOURCES
        ),
    )


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def _cut_short(results: list) -> bool:
    return ev.DEADLINE in results
