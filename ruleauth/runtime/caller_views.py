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

A caller new to the whole table still shares most rules' inputs with earlier callers
(the same tenant, role or scopes, other groups), so each group of rules that read the
same inputs is also remembered under the values of those inputs alone (RuleMemo),
with the same bounds and expiry: a new caller evaluates only the rules whose own
inputs are new.
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
MAX_PRINCIPAL = 256


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
        recall: Recall | None = None,
        shared: Any = None,
    ) -> list[ev.Result | None]: ...

    def caller_facts(
        self,
        request: Request,
        now: float,
        claims: Mapping[str, Any] | None,
        budget: ev.Budget,
        identities: Identities | None = None,
        shared: Any = None,
    ) -> tuple[CallerFacts, Identity]: ...


class _Inputs:
    """Which verified values a group of expressions reads, as a cache-key recipe."""

    def __init__(self, compiled: Iterable[Compiled]):
        reads = {r for c in compiled for r in c.reads}
        # The request's identity sources (the only request values the loader lets these
        # expressions read, besides each cell's own route): RuleMemo keys on them only then.
        self.request = any(r.input.startswith("request.") for r in reads)
        self.token = any(r.input == "token" for r in reads)
        self.scopes = any(r.input == "scopes" for r in reads)
        self.whole_claims = any(r.input == "claims" and r.key is None for r in reads)
        self.claims = tuple(sorted({r.key for r in reads if r.input == "claims" and r.key is not None}))

    def values(self, identity: Identity, parts: dict[Any, Any] | None = None) -> tuple:
        """`parts`: the values already made for this identity by other recipes (one request's)."""
        parts = {} if parts is None else parts
        claims = identity.claims
        if self.whole_claims:
            named: Any = parts.get(_WHOLE)
            if named is None:
                named = parts[_WHOLE] = _canonical_json(claims)
        else:
            named = tuple(_claim_part(parts, claims, k) for k in self.claims)
        scopes = None
        if self.scopes:
            scopes = parts.get(_SCOPES)
            if scopes is None:
                scopes = parts[_SCOPES] = tuple(ev.scopes_of(claims))
        fits = None
        if self.whole_claims or self.claims:
            # Claims with an integer CEL cannot hold fail every expression that reads them,
            # whichever claim it names (evaluation.activation_for).
            fits = parts.get(_FITS)
            if fits is None:
                fits = parts[_FITS] = cel_numbers.json_integers_fit(claims)
        return (
            _digest(identity.token) if self.token else None,
            scopes,
            named,
            fits,
            identity.provider,
            identity.verified,
        )


_WHOLE, _SCOPES, _FITS = object(), object(), object()  # keys of `parts` (claim names are strings)


def _claim_part(parts: dict[Any, Any], claims: Mapping[str, Any], name: str) -> Any:
    """One claim's value as a key part: strings and lists of strings as themselves (tagged
    apart from each other and from JSON text), anything else as canonical JSON."""
    found = parts.get(name)
    if found is None:
        if name not in claims:
            found = _MISSING
        else:
            value = claims[name]
            kind = type(value)
            if kind is str:
                found = (0, value)
            elif kind is list and all(type(v) is str for v in value):
                found = (1, *value)
            else:
                found = _canonical_json(value)
        parts[name] = found
    return found


class RuleMemo:
    """The results of each group of table slots whose expressions read the same inputs, keyed
    on the values of those inputs (and the identity sources, API and stage, where they read
    the request), for any caller. Groups are the decider's (by index, in its slot order);
    each has its own bounded cache, so this holds at most `size` results per slot, as the table
    cache holds at most `size` per cell."""

    def __init__(self, size: int, ttl: float):
        self._size, self._ttl = size, ttl
        self._groups: dict[int, tuple[_Inputs, Cache[tuple[Any, ...], list[ev.Result | None]]]] = {}

    def group(self, index: int, compiled: Compiled) -> tuple[_Inputs, Cache[tuple[Any, ...], list[ev.Result | None]]]:
        """Group `index`'s key recipe and cache; `compiled`: one of its expressions (all read
        alike). Made on first use (route mode indexes its table late); setdefault keeps the
        first one made when `ruleauth serve`'s threads race, so an index has one recipe."""
        found = self._groups.get(index)
        if found is None:
            found = self._groups.setdefault(index, (_Inputs([compiled]), Cache(self._size, self._ttl)))
        return found


class Recall:
    """One request's use of the RuleMemo: its caller, identity sources, API and expiry."""

    __slots__ = ("_base", "_caller", "_expires", "_keys", "_memo", "_now", "_parts", "_sources")

    def __init__(
        self,
        memo: RuleMemo,
        caller: Identity,
        sources: tuple,
        base: tuple,
        now: float,
        expires: float,
        parts: dict[Any, Any],
    ):
        self._memo, self._caller, self._sources, self._base = memo, caller, sources, base
        self._now, self._expires, self._parts = now, expires, parts
        self._keys: dict[int, tuple] = {}  # by group: the key `get` made, for `put`

    def _key(self, index: int, inputs: _Inputs) -> tuple:
        key = self._keys.get(index)
        if key is None:
            values = inputs.values(self._caller, self._parts)
            key = self._keys[index] = (self._base, self._sources if inputs.request else None, *values)
        return key

    def get(self, index: int, compiled: Compiled) -> list[ev.Result | None] | None:
        inputs, cache = self._memo.group(index, compiled)
        return cache.get(self._key(index, inputs), self._now)

    def put(self, index: int, compiled: Compiled, results: list[ev.Result | None]) -> None:
        if _cut_short(results):
            return
        inputs, cache = self._memo.group(index, compiled)
        cache.put(self._key(index, inputs), results, self._expires, self._now)


class CallerViews:
    def __init__(self, decider: CallerSource, size: int = VIEW_CACHE_SIZE, ttl: float = VIEW_TTL):
        self._decider = decider
        self._ttl = ttl
        ruleset = decider.ruleset
        table = [r.allow for r in ruleset.rules if not r.shadow]
        facts = list(ruleset.context.values())
        facts += [c for c in (ruleset.principal, ruleset.usage_identifier_key) if c is not None]
        self._table_inputs = _Inputs(table)
        # Without a principal expression the principal is the caller's `sub`, set per request.
        self._default_principal = ruleset.principal is None
        self._facts_inputs = _Inputs(facts)
        self._enabled = not any(c.uses_now for c in table + facts)
        # Each answer lives until `expires` (VIEW_TTL, or the token's exp if sooner).
        self._tables: Cache[tuple[Any, ...], list[ev.Result | None]] = Cache(size, ttl)
        self._facts: Cache[tuple[Any, ...], CallerFacts] = Cache(size, ttl)
        self._rules = RuleMemo(size, ttl)
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
        shared: dict[int, Any] = {}  # the activations made for this request, for both calls
        if caller is None or not caller.token:
            results = decider.table_results(request, now, claims, budget, identities, None, shared)
            facts, identity = decider.caller_facts(request, now, claims, budget, identities, shared)
            return CallerView(results, facts, identity)
        sources = _sources(decider, request)
        base = (sources, request.arn.prefix, request.event_type)
        expires = now + self._ttl
        exp = caller.claims.get("exp")
        # A verified exp is a NumericDate of the years 1-9999 (jwt_verifier.check_claim_formats);
        # min() compares int and float exactly, so even an unchecked huge int cannot overflow here.
        if isinstance(exp, (int, float)) and not isinstance(exp, bool):
            expires = float(min(expires, exp))
        parts: dict[Any, Any] = {}  # key parts made once for this caller, shared by the recipes
        table_key = base + self._table_inputs.values(caller, parts)
        cached = self._tables.get(table_key, now)
        if cached is not None:
            results = cached
        else:
            recall = Recall(self._rules, caller, sources, base[1:], now, expires, parts)
            results = decider.table_results(request, now, None, budget, identities, recall, shared)
            if not _cut_short(results):
                self._tables.put(table_key, results, expires, now)
        facts_key = base + self._facts_inputs.values(caller, parts)
        remembered = self._facts.get(facts_key, now)
        if remembered is not None:
            facts = remembered
        else:
            facts, _ = decider.caller_facts(request, now, None, budget, identities, shared)
            self._facts.put(facts_key, facts, expires, now)
        if self._default_principal:
            # Kept without `sub` (callers of one tenant and role share their context): the
            # default principal is the caller's own, made from its identity alone.
            facts = CallerFacts(default_principal(caller), facts.context, facts.omitted, facts.usage_identifier_key)
        return CallerView(results, facts, caller, expires)


def default_principal(identity: Identity) -> str | None:
    """Without a `principal:` expression: a JWT's `sub`, whole, or None when it cannot name the
    caller (missing, empty, not a string, over 256 characters, or "anonymous", which would make
    the caller the unauthenticated principal). A credential that is no JWT is "anonymous"."""
    if not identity.provider:
        return ANONYMOUS
    sub = identity.claims.get("sub")
    if isinstance(sub, str) and 0 < len(sub) <= MAX_PRINCIPAL and sub != ANONYMOUS:
        return sub
    return None


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
            getattr(request.client_cert, CERT_SOURCES[c]) if request.client_cert else ""
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
