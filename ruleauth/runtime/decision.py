"""The decision pipeline: Request → route → credential and claims → rule → principal and context.

Each step's failure has a fixed outcome and `reason` (SPEC "Decisions"); this
module never raises for anything a request contains.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ruleauth.cache import Cache
from ruleauth.cel import evaluation as ev
from ruleauth.errors import CredentialError
from ruleauth.model import REST_REQUEST, REST_TOKEN, Request, VerifiedToken
from ruleauth.policy.synthesis import api_route_is_the_rules, api_route_scope
from ruleauth.reasons import Outcome, Reason
from ruleauth.rules.routes import RouteMatch
from ruleauth.rules.ruleset import (
    AUTH_JWT,
    AUTH_NONE,
    AUTH_OPTIONAL,
    AUTH_TOKEN,
    CACHE_IDENTITY,
    CACHE_ROUTE,
    Rule,
    RuleSet,
)
from ruleauth.runtime.caller_views import (
    ANONYMOUS,
    MAX_PRINCIPAL,
    CallerFacts,
    CallerView,
    CallerViews,
    Identities,
    Identity,
    Recall,
    default_principal,
)
from ruleauth.runtime.credentials import MISSING, Credential, extract, without_credential

REST_EVENTS = (REST_TOKEN, REST_REQUEST)
Activations = dict[int, tuple[Identity, Mapping[str, Any]]]  # one request's, by id of their Identity
SCOPE_MEMO = 256  # at least; and SCOPE_MEMO_PER_ROUTE per rule route, so every API route stays
SCOPE_MEMO_PER_ROUTE = 4  # remembered even when each rule route is its own API route
NO_DEFAULT_PRINCIPAL = (
    "the token has no default principal: its sub is missing, empty, longer than "
    f"{MAX_PRINCIPAL} characters or {ANONYMOUS!r} (set `principal:` to name such callers)"
)

# Reasons bound to module globals: the per-request path reads a global, not an enum attribute.
ALLOWED = Reason.RULE_TRUE
BAD_EVENT, NO_ROUTE = Reason.BAD_EVENT, Reason.NO_ROUTE
RULE_FALSE, RULE_ERROR, RULE_NON_BOOL = Reason.RULE_FALSE, Reason.RULE_ERROR, Reason.RULE_NON_BOOL
PRINCIPAL_ERROR, RESPONSE_TOO_LARGE, INTERNAL_ERROR = (
    Reason.PRINCIPAL_ERROR,
    Reason.RESPONSE_TOO_LARGE,
    Reason.INTERNAL_ERROR,
)
POLICY_CONFLICT = Reason.POLICY_CONFLICT
JWT_INVALID = Reason.JWT_INVALID
ALLOW, DENY, UNAUTHORIZED = Outcome.ALLOW, Outcome.DENY, Outcome.UNAUTHORIZED


class Auth(Protocol):
    """The part of a rule `identify` reads: how the credential is checked (a Rule, or _AuthOnly)."""

    @property
    def auth(self) -> str: ...

    @property
    def providers(self) -> tuple[str, ...] | None: ...


class Verifier(Protocol):
    def verify(self, token: str, allowed: Sequence[str] | None = None, now: float | None = None) -> VerifiedToken: ...


@dataclass
class RuleOutcome:
    rule: str
    route: str
    result: ev.Result
    shadow: bool = False

    @property
    def decision(self) -> str:
        return ALLOW if self.result.allows else DENY

    @property
    def reason(self) -> str:
        return {ev.TRUE: ALLOWED, ev.FALSE: RULE_FALSE, ev.NON_BOOL: RULE_NON_BOOL}.get(self.result.kind, RULE_ERROR)


@dataclass
class Decision:
    outcome: str
    reason: str
    request: Request | None = None
    rule: str | None = None
    route: str | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    matched: Any = None  # the winning routes.Route, for the policy builder
    identity: Identity = field(default_factory=Identity)
    principal: str = ANONYMOUS
    context: dict[str, Any] = field(default_factory=dict)
    usage_identifier_key: str | None = None
    result: ev.Result | None = None
    shadows: list[RuleOutcome] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    omitted_context: list[tuple[str, str]] = field(default_factory=list)
    detail: str = ""  # a safe, human explanation of the reason
    now: float = 0.0
    # cache.mode identity (and route, under a coarse API route): the caller's decision on every
    # (method, route) cell of the table, and the cells the response answers for (None: all)
    table_allowed: list[bool] | None = None
    table_scope: frozenset[int] | None = None

    @property
    def allowed(self) -> bool:
        return self.outcome == ALLOW

    @property
    def provider(self) -> str:
        return self.identity.provider


class Decider:
    """Decides one normalised request against a loaded RuleSet."""

    def __init__(self, ruleset: RuleSet, verifier: Verifier | None = None):
        self.ruleset = ruleset
        self.verifier = verifier
        self.table = ruleset.table if ruleset.cache.mode == CACHE_IDENTITY else None
        # cache.mode route: the table, for requests whose API route is coarser than their
        # rule's route (one cached response then answers for several rule routes). Built on
        # the first such request: its analysis costs cold-start time most APIs never need.
        self._route_mode = ruleset.cache.mode == CACHE_ROUTE and bool(ruleset.rules)
        caller_exprs = [
            c for c in (ruleset.principal, *ruleset.context.values(), ruleset.usage_identifier_key) if c is not None
        ]
        self._caller_reads_route = any(
            r.input in ("request.method", "request.route") for c in caller_exprs for r in c.reads
        )
        # Certificates are parsed only for rule sets that read them (runtime/client_cert.py), and
        # that module is imported here only for them or for certificate-bound tokens.
        every = [r.allow for r in ruleset.rules] + caller_exprs
        self._reads_cert = any(r.input == "request.client_cert" for c in every for r in c.reads)
        self._bound = frozenset(p.name for p in ruleset.providers if p.certificate_bound)
        self._certs: Any = None
        if self._reads_cert or self._bound:
            from ruleauth.runtime import client_cert

            self._certs = client_cert
        self._route_table: Any = None
        self._last_visible: tuple[Request, Request] | None = None
        self._route_lock = threading.Lock()
        # Per API route: the answer of _scope, boxed (a None answer is a real one).
        self._scopes: Cache[tuple[Any, ...], tuple[frozenset[int] | None]] = Cache(
            max(SCOPE_MEMO, SCOPE_MEMO_PER_ROUTE * len(ruleset.router.entries))
        )
        self._slots: list[tuple[Any, tuple, tuple[str, str] | None]] = []
        self._cell_slots: list[int] = []
        # Slots whose expressions read the same inputs, in slot order: RuleMemo's groups.
        self._groups: list[list[int]] = []
        if self.table is not None:
            self._index_cells(self.table)
        self.views = CallerViews(self)

    @property
    def route_table(self) -> Any:
        if self._route_mode and self._route_table is None:
            from ruleauth.policy.synthesis import build_table

            with self._route_lock:  # `ruleauth serve` decides on several threads
                if self._route_table is None:
                    table = build_table(self.ruleset)
                    self._index_cells(table)
                    self._route_table = table
        return self._route_table

    @property
    def policy_table(self) -> Any:
        """The table the response is built from: identity mode's, or route mode's once built."""
        return self.table if self.table is not None else self._route_table

    def _index_cells(self, table: Any) -> None:
        """A slot is one distinct evaluation: an expression under one (auth, providers), plus
        the cell's own route when it reads request.method or request.route. Each table cell
        reads its slot's result."""
        slots: dict[tuple, int] = {}
        groups: dict[frozenset[Any], list[int]] = {}
        for entry in table.entries:
            rule = entry.rule
            who = (rule.auth, rule.providers)
            per_cell = any(r.input in ("request.method", "request.route") for r in rule.allow.reads)
            route = (entry.method, str(entry.route)) if per_cell else None
            key = (rule.allow.source, who, route)
            if key not in slots:
                slots[key] = len(self._slots)
                groups.setdefault(rule.allow.reads, []).append(len(self._slots))
                self._slots.append((rule.allow, who, route))
            self._cell_slots.append(slots[key])
        self._groups = list(groups.values())

    def decide(self, request: Request, now: float | None = None, claims: Mapping[str, Any] | None = None) -> Decision:
        """`claims` (dry-run and tests) replaces JWT verification with the given, unverified claims."""
        now = _ClockNow(time.time()) if now is None else now
        budget = ev.Budget()
        match = self.ruleset.router.find(request.method, request.path)
        if match is None:
            decision = Decision(
                DENY,
                NO_ROUTE,
                request,
                now=now,
                detail=f"no rule matches {request.method or 'WebSocket'} {request.path}",
            )
            self._shadows(decision, request, now, claims, budget)
            if self.table is not None:
                self._apply_view(decision, self.views.view(request, now, claims, budget))
            elif self._route_mode:
                self._coarse_route(decision, request, None, now, claims, budget, {})
            return decision
        rule = match.target
        decision = Decision(
            DENY,
            RULE_FALSE,
            request,
            rule=rule.name,
            route=str(match.route),
            params=dict(match.params),
            now=now,
            matched=match.route,
        )
        if request.resource and request.resource != match.route.path:
            decision.warnings.append("route_mismatch")
        try:
            decision.identity = self.identify(rule, request, now, claims)
        except CredentialError as exc:
            decision.outcome, decision.reason, decision.detail = UNAUTHORIZED, exc.reason, str(exc)
            return decision
        visible = self._visible(request)
        if any(len(v) > ev.MAX_VALUE_BYTES for v in visible.headers.values()):
            decision.reason, decision.detail = BAD_EVENT, f"a header value is larger than {ev.MAX_VALUE_BYTES} bytes"
            return decision
        if self.table is not None:
            # The caller's answers for the whole table include the asked route's: one evaluation.
            known: Identities = {(rule.auth, rule.providers): decision.identity}
            view = self.views.view(request, now, claims, budget, known)
            entry = self.table.entry_for(request.method, match.route)
            result = view.results[entry.index] if entry is not None else None
            if result is None:  # cannot happen: the same credential check just passed
                result = ev.Result(ev.ERROR, error_class="NoTableCell")
            self._set_result(decision, result)
            self._apply_view(decision, view)
        else:
            activation = self.activation(visible, match, decision.identity, now)
            self._set_result(decision, ev.evaluate(rule.allow, activation, budget))
            if rule.auth == AUTH_TOKEN and self.ruleset.providers:
                # Principal and context name the caller, as under caching: a JWT on an `auth:
                # token` route is still its user, though the route's rule sees no claims.
                self._apply_caller(decision, self.caller_facts(request, now, claims, budget)[0])
            else:
                self._principal_and_context(decision, decision.identity, activation, budget)
            if self._route_mode:
                known = {(rule.auth, rule.providers): decision.identity}
                self._coarse_route(decision, request, match.route, now, claims, budget, known)
        self._shadows(decision, request, now, claims, budget)
        return decision

    def _coarse_route(
        self,
        decision: Decision,
        request: Request,
        route: Any,
        now: float,
        claims: Mapping[str, Any] | None,
        budget: ev.Budget,
        known: Identities,
    ) -> None:
        """cache.mode route: when the API's route covers paths of other rule routes (or paths
        no rule matches), the response is cached for all of them, so it answers for each as the
        rules do: the table's answers for this caller, scoped to the rule routes under the API
        route. A principal that fails denies every route, as it does when asked directly."""
        scope = self._scope(request, route)
        if scope is None:
            return
        view = self.views.view(request, now, claims, budget, known)
        failed = decision.reason == PRINCIPAL_ERROR or view.caller.principal is None
        # A principal or context computed from the rule route differs between the rule routes
        # under the API route, so no response cached for all of them carries the right one: the
        # table then allows nothing, and an allowed request gets exactly its own ARN.
        failed = failed or self._caller_reads_route
        decision.table_allowed = [not failed and r is not None and r.allows for r in view.results]
        decision.table_scope = scope

    def _scope(self, request: Request, route: Any) -> frozenset[int] | None:
        """The table entries whose paths the API's route (the cache key's route) may cover, or
        None when that is only the matched rule route's own paths (its pattern alone is exact)."""
        key = (
            request.event_type,
            request.resource,
            request.method if request.event_type in REST_EVENTS or request.resource_method else "",
            id(route),
        )
        found = self._scopes.get(key)
        if found is None:
            routes = [r for r, _ in self.ruleset.router.entries]
            found = (
                None
                if api_route_is_the_rules(routes, request, route)
                else (api_route_scope(self.route_table, request) or None),
            )
            self._scopes.put(key, found)
        return found[0]

    @staticmethod
    def _set_result(decision: Decision, result: ev.Result) -> None:
        decision.result = result
        decision.outcome = ALLOW if result.allows else DENY
        decision.reason = {ev.TRUE: ALLOWED, ev.FALSE: RULE_FALSE, ev.NON_BOOL: RULE_NON_BOOL}.get(
            result.kind, RULE_ERROR
        )

    def _apply_view(self, decision: Decision, view: CallerView) -> None:
        # A principal that fails is principal_error on every route (asked directly, each is
        # denied), so the response that is cached for all of them allows none.
        failed = view.caller.principal is None
        decision.table_allowed = [not failed and r is not None and r.allows for r in view.results]
        self._apply_caller(decision, view.caller)

    def _apply_caller(self, decision: Decision, caller: CallerFacts) -> None:
        if caller.principal is None:
            if decision.allowed:
                decision.outcome, decision.reason = DENY, PRINCIPAL_ERROR
                decision.detail = (
                    "principal did not evaluate to a non-empty string of at most 256 characters"
                    if self.ruleset.principal is not None
                    else NO_DEFAULT_PRINCIPAL
                )
        else:
            decision.principal = caller.principal
        decision.context = dict(caller.context)
        decision.omitted_context = list(caller.omitted)
        # The caller's key, whatever this route's decision: the policy builder adds it to
        # every response that allows anything (a cached one may allow other routes).
        decision.usage_identifier_key = caller.usage_identifier_key

    def table_results(
        self,
        request: Request,
        now: float,
        claims: Mapping[str, Any] | None,
        budget: ev.Budget,
        identities: Identities | None = None,
        recall: Recall | None = None,
        shared: Activations | None = None,
    ) -> list[ev.Result | None]:
        """This caller's result for every cell of the route table (cache.mode identity); None
        where the credential does not satisfy the cell's `auth`.

        Each distinct expression is evaluated once per identity; only expressions that read
        request.method or request.route (which mean each rule's own route here) are
        evaluated per cell. `recall`: the results of groups of expressions that read the
        same inputs, remembered for earlier callers whose values of those inputs agree
        (caller_views.RuleMemo); only the other groups are evaluated. `shared`: the
        activations already made for this request (caller_facts makes the same one).
        """
        assert self.policy_table is not None
        visible = self._visible(request)
        identities = {} if identities is None else identities
        shared = {} if shared is None else shared
        # By (auth, providers): the caller's activation, or None when the credential fails it.
        activations: dict[tuple, Mapping[str, Any] | None] = {}
        slots = self._slots
        results: list[ev.Result | None] = [None] * len(slots)
        for index, group in enumerate(self._groups):
            first = slots[group[0]][0]
            found = recall.get(index, first) if recall is not None else None
            if found is not None:
                for slot, result in zip(group, found, strict=True):
                    results[slot] = result
                continue
            for slot in group:
                allow, who, route = slots[slot]
                if who in activations:
                    activation = activations[who]
                else:
                    identity = self.identity_for(who, request, now, claims, identities)
                    activation = activations[who] = (
                        None if identity is None else self._caller_activation(visible, identity, now, shared)
                    )
                if activation is None:
                    continue
                if route is not None:
                    activation = dict(activation)
                    activation["request"] = _with_route(activation["request"], *route)
                results[slot] = ev.evaluate(allow, activation, budget)
            if recall is not None:
                recall.put(index, first, [results[slot] for slot in group])
        return [results[slot] for slot in self._cell_slots]

    def caller_facts(
        self,
        request: Request,
        now: float,
        claims: Mapping[str, Any] | None,
        budget: ev.Budget,
        identities: Identities | None = None,
        shared: Activations | None = None,
    ) -> tuple[CallerFacts, Identity]:
        """Principal and context of the caller. Under cache.mode identity one response serves
        every route, so they come from the caller's credential even when the asked route
        needs none (a cached copy from a public route must not say "anonymous")."""
        identity = self._caller_identity(request, now, claims, {} if identities is None else identities)
        activation = self._caller_activation(self._visible(request), identity, now, {} if shared is None else shared)
        facts = CallerFacts()
        self._fill_caller(facts, identity, activation, budget)
        return facts, identity

    def _caller_identity(
        self, request: Request, now: float, claims: Mapping[str, Any] | None, identities: Identities
    ) -> Identity:
        """The strongest identity the credential proves: a verified JWT where `jwt:` is configured
        and it verifies, else the bare credential (an opaque token is still a caller: `auth:
        token` routes accept it), else none."""
        for who in ((AUTH_JWT, None), (AUTH_TOKEN, None)) if self.ruleset.providers else ((AUTH_TOKEN, None),):
            identity = self.identity_for(who, request, now, claims, identities)
            if identity is not None:
                return identity
        return Identity()

    def identity_for(
        self, who: tuple, request: Request, now: float, claims: Mapping[str, Any] | None, identities: Identities
    ) -> Identity | None:
        """The caller's identity under one (auth, providers) pair, checked once per request."""
        if who not in identities:
            try:
                identities[who] = self.identify(_AuthOnly(*who), request, now, claims)
            except CredentialError:
                identities[who] = None
        return identities[who]

    # -- credentials ------------------------------------------------------

    def identify(self, rule: Auth, request: Request, now: float, claims: Mapping[str, Any] | None = None) -> Identity:
        if rule.auth == AUTH_NONE:
            return Identity()
        credential = extract(self.ruleset.token, request)
        if not credential.value:
            if rule.auth == AUTH_OPTIONAL:
                return Identity()
            raise CredentialError(MISSING, f"no credential in {self.ruleset.token.where}")
        if rule.auth == AUTH_TOKEN or not self.ruleset.providers:
            # SPEC: `auth: token` needs only a non-empty credential, JWT or not; rules there see
            # no claims (the loader warns a rule that reads them).
            return Identity(token=credential.value)
        if claims is not None:
            identity = self._unverified(rule, credential, claims)
        else:
            identity = self._verified(rule, credential, now)
        if identity.provider in self._bound:
            self._certs.check_binding(request.client_cert, identity.claims)
        return identity

    def _unverified(self, rule: Auth, credential: Credential, claims: Mapping[str, Any]) -> Identity:
        """Offline claims (`ruleauth test`, `dry-run --claims`) stand in for a verified token: no
        signature, audience or expiry check, but the same claim forms and, where they name an
        `iss`, the same provider selection as a real token. Without `iss`: the route's first
        accepted provider."""
        from ruleauth.jwt.verifier import JwtError, check_claim_formats, claims_problem, select_provider

        problem = claims_problem(claims)
        if problem is not None:
            raise CredentialError(JWT_INVALID, problem)
        providers = self.ruleset.providers
        try:
            check_claim_formats(claims, exp_required=False)
            if "iss" in claims:
                # One issuer may be a JWT provider's and the introspection provider's: the one the
                # route accepts wins, then the JWT provider (the last of a kind in the map wins).
                ranked = sorted(
                    providers, key=lambda p: (rule.providers is None or p.name in rule.providers, not p.introspection)
                )
                provider = select_provider({p.issuer: p for p in ranked}, claims["iss"], rule.providers).name
            else:
                provider = (rule.providers or tuple(p.name for p in providers))[0]
        except JwtError as exc:
            raise CredentialError(exc.reason, str(exc)) from None
        return Identity(token=credential.value, claims=dict(claims), provider=provider, verified=False)

    def _verified(self, rule: Auth, credential: Credential, now: float) -> Identity:
        if self.verifier is None:
            raise CredentialError(Reason.JWKS_UNAVAILABLE, "no JWT verifier is configured")
        from ruleauth.jwt.verifier import JwtError

        try:
            # Only a chosen decision time (dry-run --now) is passed on: with its own clock the
            # verifier can answer a token it already verified from its cache.
            verified = self.verifier.verify(
                credential.value, rule.providers, now=None if isinstance(now, _ClockNow) else now
            )
        except JwtError as exc:
            raise CredentialError(exc.reason, str(exc)) from None
        return Identity(token=credential.value, claims=dict(verified.claims), provider=verified.provider, verified=True)

    # -- activation -------------------------------------------------------

    def _visible(self, request: Request) -> Request:
        """without_credential(request), made once per request (the last one is kept)."""
        last = self._last_visible
        if last is not None and last[0] is request:
            return last[1]
        visible = without_credential(self.ruleset.token, request)
        self._last_visible = (request, visible)  # one assignment: threads see a whole pair
        return visible

    def _caller_activation(
        self, visible: Request, identity: Identity, now: float, shared: Activations
    ) -> Mapping[str, Any]:
        """The route-less activation of one of this request's identities, made once per request
        (`shared` keeps each identity with its activation, so an id is never taken for another's)."""
        found = shared.get(id(identity))
        if found is None or found[0] is not identity:
            found = shared[id(identity)] = (identity, self.activation(visible, None, identity, now))
        return found[1]

    def activation(
        self, request: Request, match: RouteMatch[Rule] | None, identity: Identity, now: float
    ) -> dict[str, Any]:
        """The variables in the form the rule set's engine evaluates."""
        return ev.activation_for(self.ruleset.engine, self.plain_activation(request, match, identity, now))

    def plain_activation(
        self, request: Request, match: RouteMatch[Rule] | None, identity: Identity, now: float
    ) -> dict[str, Any]:
        """The SPEC's variables as plain Python, built once per request and identity."""
        arn = request.arn
        route = match.route if match else None
        request_map = {
            "method": arn.method,
            "path": arn.path,
            "route": str(route) if route else "",
            "resource": request.resource,
            "params": dict(match.params) if match else {},
            "headers": dict(request.headers),
            "query": dict(request.query),
            "cookies": dict(request.cookies),
            "stage_variables": dict(request.stage_variables),
            "source_ip": request.source_ip,
            "stage": arn.stage,
            "api_id": arn.api_id,
            "account_id": arn.account_id,
            "region": arn.region,
            "client_cert": self._certs.variables(request.client_cert) if self._reads_cert else {},
        }
        return {
            "token": identity.token,
            "claims": dict(identity.claims),
            "scopes": ev.scopes_of(identity.claims),
            "auth": {"provider": identity.provider},
            "request": request_map,
            "now": ev.utc_datetime(now),
            "now_unix": int(now),
        }

    # -- principal, context, shadows --------------------------------------

    def _principal_and_context(
        self, decision: Decision, identity: Identity, activation: Mapping[str, Any], budget: ev.Budget
    ) -> None:
        facts = CallerFacts()
        self._fill_caller(facts, identity, activation, budget)
        self._apply_caller(decision, facts)

    def _fill_caller(
        self, facts: CallerFacts, identity: Identity, activation: Mapping[str, Any], budget: ev.Budget
    ) -> None:
        facts.principal = self._principal(identity, activation, budget)
        for key, compiled in self.ruleset.context.items():
            result = ev.evaluate(compiled, activation, budget)
            value = ev.context_value(result.value) if result.kind != ev.ERROR else None
            if value is None:
                facts.omitted.append((key, result.error_class or "null"))
            else:
                facts.context[key] = value
        usage = self.ruleset.usage_identifier_key
        if usage is not None:
            result = ev.evaluate(usage, activation, budget)
            if isinstance(result.value, str) and str(result.value):
                facts.usage_identifier_key = str(result.value)

    def _principal(self, identity: Identity, activation: Mapping[str, Any], budget: ev.Budget) -> str | None:
        """None means there is no principal: the expression failed, or (the default) the JWT has
        no usable `sub`. A caller without a credential is "anonymous": the expression describes
        credentialed callers (e.g. claims.sub)."""
        if not identity.token:
            return ANONYMOUS
        compiled = self.ruleset.principal
        if compiled is None:
            return default_principal(identity)
        result = ev.evaluate(compiled, activation, budget)
        value = result.value
        if isinstance(value, str) and 0 < len(value) <= MAX_PRINCIPAL:
            return str(value)
        return None

    def _shadows(
        self, decision: Decision, request: Request, now: float, claims: Mapping[str, Any] | None, budget: ev.Budget
    ) -> None:
        """Shadow rules are evaluated and reported, never enforced."""
        match = self.ruleset.shadow_router.find(request.method, request.path)
        if match is None:
            return
        rule = match.target
        try:
            identity = self.identify(rule, request, now, claims)
        except CredentialError as exc:
            decision.shadows.append(
                RuleOutcome(rule.name, str(match.route), ev.Result(ev.ERROR, error_class=exc.reason), True)
            )
            return
        visible = self._visible(request)
        result = ev.evaluate(rule.allow, self.activation(visible, match, identity, now), budget)
        decision.shadows.append(RuleOutcome(rule.name, str(match.route), result, True))


class _ClockNow(float):
    """The decision time as read from the clock, not chosen by the caller (dry-run --now)."""


@dataclass(frozen=True)
class _AuthOnly:
    """The part of a rule `identify` reads: how the credential is checked."""

    auth: str
    providers: tuple[str, ...] | None = None


def _with_route(request_map: Any, method: str, route: str) -> Any:
    """The request variable for another table cell (activations are plain Python)."""
    return {**request_map, "method": method, "route": route}
