"""The loaded rules: configuration dataclasses built once at cold start."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ruleauth.cel.compiler import Compiled
from ruleauth.errors import Problem
from ruleauth.model import JwtProvider, SourcePos
from ruleauth.rules.routes import Route, Router

AUTH_JWT, AUTH_TOKEN, AUTH_OPTIONAL, AUTH_NONE = "jwt", "token", "optional", "none"
AUTH_MODES = (AUTH_JWT, AUTH_TOKEN, AUTH_OPTIONAL, AUTH_NONE)
CACHE_IDENTITY, CACHE_ROUTE, CACHE_DISABLED = "identity", "route", "disabled"
CACHE_MODES = (CACHE_IDENTITY, CACHE_ROUTE, CACHE_DISABLED)
RESPONSE_IAM, RESPONSE_SIMPLE = "iam", "simple"
MODE_ENFORCE, MODE_SHADOW = "enforce", "shadow"


@dataclass(frozen=True)
class TokenConfig:
    """Where the credential is read. Exactly one of header, query, cookie is set."""

    header: str | None = "Authorization"
    query: str | None = None
    cookie: str | None = None
    scheme: str | None = None

    @property
    def where(self) -> str:
        if self.header:
            return f"header {self.header}"
        if self.query:
            return f"query parameter {self.query}"
        return f"cookie {self.cookie}"


# Identity sources (cache.sources.context) that put the mutual TLS client certificate, or one
# of its fields, in API Gateway's cache key (docs/apigw-facts.md "Client certificates"), and the
# model.ClientCert attribute each holds. The PEM fixes every request.client_cert field.
CERT_PEM_SOURCE = "identity.clientCert.clientCertPem"
CERT_SOURCES = {
    CERT_PEM_SOURCE: "pem",
    "identity.clientCert.subjectDN": "subject_dn",
    "identity.clientCert.issuerDN": "issuer_dn",
    "identity.clientCert.serialNumber": "serial_number",
    "identity.clientCert.validity.notBefore": "not_before",
    "identity.clientCert.validity.notAfter": "not_after",
}


@dataclass(frozen=True)
class CacheConfig:
    mode: str = CACHE_IDENTITY
    headers: tuple[str, ...] = ()
    query: tuple[str, ...] = ()
    stage_variables: tuple[str, ...] = ()
    context: tuple[str, ...] = ()

    @property
    def cached(self) -> bool:
        return self.mode != CACHE_DISABLED


@dataclass
class Rule:
    name: str
    routes: tuple[Route, ...]
    auth: str
    allow: Compiled
    pos: SourcePos
    providers: tuple[str, ...] | None = None  # auth: {jwt: [names]}
    mode: str = MODE_ENFORCE
    description: str = ""

    @property
    def shadow(self) -> bool:
        return self.mode == MODE_SHADOW


@dataclass(frozen=True)
class Expectation:
    decision: str
    rule: str | None = None
    reason: str | None = None
    status: int | None = None
    principal: str | None = None
    context: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class TestCase:
    name: str
    pos: SourcePos
    expect: Expectation
    request: Mapping[str, Any] = field(default_factory=dict)
    claims: Mapping[str, Any] | None = None
    now: str | None = None
    event_type: str | None = None
    event: str | None = None  # absolute path of an event JSON file


@dataclass
class RuleSet:
    files: tuple[str, ...]
    token: TokenConfig
    cache: CacheConfig
    providers: tuple[JwtProvider, ...]
    rules: list[Rule]
    router: Router[Rule]
    shadow_router: Router[Rule]
    principal: Compiled | None = None
    context: dict[str, Compiled] = field(default_factory=dict)
    usage_identifier_key: Compiled | None = None
    response: str = RESPONSE_IAM
    tests: list[TestCase] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    engine: str = "cel-python"
    table: Any = None  # policy_synthesis.RouteTable under cache.mode identity
    # settings.Settings: the effective configuration the rules were loaded and checked under;
    # response, engine and cache.mode above are its values.
    settings: Any = None


def routers(rules: list[Rule]) -> tuple[Router[Rule], Router[Rule]]:
    """The router of the enforced rules, and the shadow rules' own: made from the rules alone,
    by the loader and by a rules snapshot's reader alike."""
    routed = [(route, rule) for rule in rules if not rule.shadow for route in rule.routes]
    shadows = [(route, rule) for rule in rules if rule.shadow for route in rule.routes]
    return Router(routed), Router(shadows)
