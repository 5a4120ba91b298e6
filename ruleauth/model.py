"""Plain data passed between the pipeline's stages.

event → Request → RouteMatch → Credential/claims → Decision → response.
Everything here is immutable configuration or per-request data; nothing in this
module holds state across invocations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Defined in ruleauth.reasons, the one vocabulary; re-exported for the stages that read it here.
from ruleauth.reasons import Outcome as Outcome

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
ANY = "ANY"
WEBSOCKET_CONNECT = "$connect"

# Event types, as the CLI's --event-type spells them.
REST_TOKEN = "rest-token"
REST_REQUEST = "rest-request"
HTTP_V1 = "http-1.0"
HTTP_V2 = "http-2.0"
WEBSOCKET = "websocket"
EVENT_TYPES = (REST_TOKEN, REST_REQUEST, HTTP_V1, HTTP_V2, WEBSOCKET)


@dataclass(frozen=True)
class SourcePos:
    """Where something was written: shown to users as file:line:col."""

    file: str
    line: int  # 1-based
    col: int  # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class MethodArn:
    """A parsed execute-api ARN: arn:{partition}:execute-api:{region}:{account}:{api}/{stage}/{verb}/{path}."""

    partition: str
    region: str
    account_id: str
    api_id: str
    stage: str
    method: str  # upper case; "" for WebSocket
    path: str  # "/..." for HTTP APIs; "$connect" style route key for WebSocket

    @property
    def prefix(self) -> str:
        """Everything up to and including the stage, for building resource ARNs."""
        return f"arn:{self.partition}:execute-api:{self.region}:{self.account_id}:{self.api_id}/{self.stage}"


@dataclass(frozen=True)
class ClientCert:
    """The client certificate of a mutual TLS request, as API Gateway forwards it (REST and HTTP
    payload 1.0: requestContext.identity.clientCert; payload 2.0: requestContext.authentication.
    clientCert; docs/apigw-facts.md "Client certificates"). Strings the event lacks are ""."""

    pem: str = ""
    subject_dn: str = ""
    issuer_dn: str = ""
    serial_number: str = ""
    not_before: str = ""  # validity.notBefore as API Gateway writes it ("May 28 12:30:02 2019 GMT")
    not_after: str = ""


@dataclass(frozen=True)
class Request:
    """One normalised authorizer request, whatever the event type.

    Header names are lower case; repeated values are joined with "," in arrival
    order. `duplicates` records names (lower-cased header names, query names,
    cookie names) that arrived with several values, so the credential extractor
    can refuse ambiguous tokens.
    """

    event_type: str
    arn: MethodArn
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    cookies: Mapping[str, str] = field(default_factory=dict)
    stage_variables: Mapping[str, str] = field(default_factory=dict)
    source_ip: str = ""
    resource: str = ""  # API Gateway's own route template, where the event has it
    # The method an HTTP API's route key names ("GET /a"); "" for `ANY`, `$default` and other
    # events: then route caching's key holds no method (docs/apigw-facts.md).
    resource_method: str = ""
    request_id: str = ""
    token_field: str | None = None  # TOKEN events: authorizationToken
    header_values: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    query_values: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    cookie_values: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    client_cert: ClientCert | None = None  # None: the request carries no client certificate

    @property
    def method(self) -> str:
        return self.arn.method

    @property
    def path(self) -> str:
        return self.arn.path


@dataclass(frozen=True)
class JwtProvider:
    """One trusted token issuer, as configured under `jwt:`."""

    name: str
    issuer: str
    audience: tuple[str, ...] = ()
    client_ids: tuple[str, ...] = ()
    algorithms: tuple[str, ...] = ("RS256",)
    typ: str | None = None
    token_use: str | None = None
    leeway: int = 0
    jwks_uri: str | None = None
    jwks_file: str | None = None  # absolute path once loaded
    # RFC 8705: a token of this provider is valid only with the client certificate its
    # cnf["x5t#S256"] names (runtime/client_cert.py).
    certificate_bound: bool = False
    # Set: an introspection provider, which vouches for opaque tokens by asking its endpoint
    # (RFC 7662) instead of verifying signatures (docs/spec.md "Introspection providers").
    introspection: Introspection | None = None


@dataclass(frozen=True)
class Introspection:
    """An introspection provider's endpoint and the authorizer's own client credentials there.

    Holds the NAME of the environment variable with the client secret, never the secret: the
    rule set is saved in rules snapshots and shown by `validate --json`. The secret is read
    once, when the verifier is built at cold start.
    """

    url: str
    client_id: str
    client_secret_env: str
    cache_ttl: int = 60  # seconds an answer is reused; never past the token's exp; 0: never
    pos: SourcePos | None = None  # where client_secret_env is written, for the cold start's error


@dataclass(frozen=True)
class VerifiedToken:
    provider: str
    claims: Mapping[str, Any]
