"""`ruleauth serve`: a local stand-in for API Gateway in front of the ruleauth authorizer.

Each HTTP request becomes an authorizer event (REST REQUEST by default), goes
through `Authorizer.authorize` (the Lambda's own code path) and is answered the
way API Gateway answers (docs/apigw-facts.md "What the client gets"):

- a configured identity source missing or empty: 401, the authorizer is not called;
- the authorizer raises Unauthorized: 401 `{"message":"Unauthorized"}`;
- a response API Gateway cannot use (or an exception): 500 `{"message": null}`;
- an explicit Deny for the request's ARN: 403 with the explicit-deny body;
- no Allow for it: 403 with the plain body;
- otherwise the request goes to `--upstream` with the context as `x-ruleauth-*`
  headers, or principal and context are echoed as JSON.

Responses are cached per identity-source values for the TTL, and a cached policy
is evaluated against each new request's ARN without calling the authorizer, as
API Gateway does. One log line per request goes to the log stream; it never
holds a credential or an identity-source value.
"""

from __future__ import annotations

import itertools
import json
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO
from urllib.parse import parse_qsl, urlsplit

from ruleauth.cache import Cache
from ruleauth.errors import BadEvent
from ruleauth.model import HTTP_V1, HTTP_V2, REST_REQUEST, REST_TOKEN, WEBSOCKET
from ruleauth.policy import response_check
from ruleauth.policy.arn import asked_arn
from ruleauth.policy.iam import EXPLICIT_DENY, evaluate_response
from ruleauth.reasons import Outcome, Reason
from ruleauth.rules.ruleset import CACHE_DISABLED, CACHE_ROUTE, CERT_SOURCES, RuleSet
from ruleauth.runtime.authorizer import (
    EXPLICIT_DENY_BODY,
    SERVER_ERROR_BODY,
    UNAUTHORIZED_BODY,
    Authorization,
    gateway_reply,
)
from ruleauth.runtime.events import client_cert_holder, parse_event
from ruleauth.tools.synthetic_events import build_event

DEFAULT_TTL = 300
MAX_TTL = 3600
# Distinct identity-source values kept at once: a bound for a long-running `serve`, far above
# what one developer's requests reach within a TTL.
GATEWAY_CACHE_SIZE = 4096
BAD_GATEWAY_BODY = {"message": "Internal server error"}
MAX_BODY_BYTES = 10 * 1024 * 1024
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
}
_ERROR_TYPES = {401: "UnauthorizedException", 403: "AccessDeniedException", 500: "AuthorizerConfigurationException"}


@dataclass
class Answer:
    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)
    log: str = ""


def json_answer(status: int, payload: Any, log: str) -> Answer:
    headers = [("Content-Type", "application/json")]
    if status in _ERROR_TYPES:
        headers.append(("x-amzn-ErrorType", _ERROR_TYPES[status]))
    return Answer(status, json.dumps(payload).encode("utf-8"), headers, log)


class LocalGateway:
    """The request → event → authorizer → answer logic, independent of the HTTP server."""

    def __init__(
        self,
        authorizer: Any,
        event_type: str = REST_REQUEST,
        ttl: int | None = None,
        upstream: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        client_cert: dict[str, Any] | None = None,
    ):
        """`client_cert`: the clientCert fields (synthetic_events.client_cert_fields) every request
        presents, as if the client had sent that certificate by mutual TLS."""
        self.authorizer = authorizer
        self.client_cert = client_cert
        self.ruleset = authorizer.ruleset
        self.event_type = event_type
        self.ttl = default_ttl(self.ruleset) if ttl is None else ttl
        self.upstream = upstream.rstrip("/") if upstream else None
        self.clock = clock
        self._cache: Cache[tuple[Any, ...], dict[str, Any]] = Cache(GATEWAY_CACHE_SIZE, ttl, clock)
        self._ids = itertools.count(1)

    # -- identity sources ------------------------------------------------------

    def identity_sources(self) -> tuple[list[str], list[str]]:
        """(header names, query names) API Gateway reads as identity sources."""
        return identity_sources(self.ruleset, self.event_type)

    def sources_required(self) -> bool:
        return sources_required(self.ruleset, self.event_type, self.ttl)

    # -- one request -------------------------------------------------------------

    def handle(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes, client_ip: str) -> Answer:
        split = urlsplit(target)
        path = split.path or "/"
        query_pairs = parse_qsl(split.query, keep_blank_values=True)
        source_names, query_names = self.identity_sources()
        values, cert_values, _ = source_values(self.ruleset, self.event_type, headers, query_pairs, self.client_cert)
        refusal = gateway_refusal(self.ruleset, self.event_type, self.ttl, headers, query_pairs, self.client_cert)
        if refusal is not None:
            return json_answer(401, UNAUTHORIZED_BODY, f"401 {refusal}")
        event = self.event(method, path, split.query, query_pairs, headers, client_ip)
        try:
            arn = asked_arn(parse_event(event).arn)
        except BadEvent as exc:
            return json_answer(403, EXPLICIT_DENY_BODY, f"403 bad request path: {exc}")
        key = None
        if self.ttl > 0 and (source_names or query_names):
            key = (tuple(values), cert_values, self._route_part(method, path))
        cached = self._cached(key)
        if cached is not None:
            return self._answer(cached, arn, method, target, headers, body, "cache=hit (authorizer not called)")
        try:
            authorization = self.authorizer.authorize(event)
        except Exception as exc:  # the handler failing: API Gateway gives 500
            return json_answer(500, SERVER_ERROR_BODY, f"500 the authorizer raised {type(exc).__name__}")
        decision = authorization.decision
        summary = f"decision={decision.outcome} reason={decision.reason}" + (
            f" rule={decision.rule!r}" if decision.rule else ""
        )
        if authorization.response is None:
            extra = f" error={authorization.internal_error}" if authorization.internal_error else ""
            return json_answer(401, UNAUTHORIZED_BODY, f"401 {summary}{extra} (Lambda raised Unauthorized)")
        problems = response_check.problems(authorization.response)
        if problems:
            return json_answer(
                500, SERVER_ERROR_BODY, f"500 {summary}: invalid authorizer response: {'; '.join(problems)}"
            )
        if key is not None:
            self._cache.put(key, authorization.response)
        cache_note = "cache=miss" if key is not None else "cache=off"
        return self._answer(authorization.response, arn, method, target, headers, body, f"{summary} {cache_note}")

    def _route_part(self, method: str, path: str) -> tuple[str, ...]:
        """In `route` mode the cache key holds the route too (routeKey, or httpMethod + resourcePath)."""
        if self.ruleset.cache.mode != CACHE_ROUTE:
            return ()
        match = self.ruleset.router.find(method.upper(), path)
        return (method.upper(), match.route.path if match else path)

    def _cached(self, key: tuple[Any, ...] | None) -> dict[str, Any] | None:
        if key is None:
            return None
        return self._cache.get(key)

    def _answer(
        self,
        response: dict[str, Any],
        arn: str,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
        note: str,
    ) -> Answer:
        outcome = evaluate_response(response, arn)
        status, denied = gateway_reply(response, outcome)
        if denied is not None:
            why = (
                "isAuthorized false"
                if "isAuthorized" in response
                else ("explicit deny" if outcome == EXPLICIT_DENY else "implicit deny")
            )
            return json_answer(status, denied, f"{status} {note} ({why})")
        principal = response.get("principalId")
        context = dict(response.get("context") or {})
        if self.upstream:
            return self._proxy(method, target, headers, body, principal, context, note)
        payload = {"principal": principal, "context": context}
        return json_answer(200, payload, f"200 {note}")

    def _proxy(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
        principal: Any,
        context: dict[str, Any],
        note: str,
    ) -> Answer:
        forwarded = [
            (k, v) for k, v in headers if k.lower() not in _HOP_BY_HOP and not k.lower().startswith("x-ruleauth-")
        ]
        if principal is not None:
            forwarded.append(("x-ruleauth-principal", _header_value(principal)))
        for key, value in context.items():
            forwarded.append((f"x-ruleauth-{key}", _header_value(value)))
        assert self.upstream is not None  # _answer proxies only with --upstream
        request = urllib.request.Request(self.upstream + target, data=body or None, method=method)
        for name, value in forwarded:
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=29) as reply:
                status, reply_headers, content = reply.status, reply.getheaders(), reply.read()
        except urllib.error.HTTPError as exc:
            status, reply_headers, content = exc.code, list(exc.headers.items()), exc.read()
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            return json_answer(502, BAD_GATEWAY_BODY, f"502 {note}: upstream unreachable ({reason})")
        kept = [(k, v) for k, v in reply_headers if k.lower() not in _HOP_BY_HOP]
        return Answer(status, content, kept, f"{status} {note} → upstream")

    # -- events ----------------------------------------------------------------------

    def event(
        self,
        method: str,
        path: str,
        raw_query: str,
        query_pairs: list[tuple[str, str]],
        headers: list[tuple[str, str]],
        client_ip: str,
    ) -> dict[str, Any]:
        single_headers: dict[str, str] = {}
        multi_headers: dict[str, list[str]] = {}
        for name, value in headers:
            single_headers[name] = value
            multi_headers.setdefault(name, []).append(value)
        single_query: dict[str, str] = {}
        multi_query: dict[str, list[str]] = {}
        for name, value in query_pairs:
            single_query[name] = value
            multi_query.setdefault(name, []).append(value)
        kind = self.event_type
        if kind == HTTP_V2:
            joined: dict[str, str] = {}
            for name, items in multi_headers.items():
                joined[name.lower()] = (
                    ",".join(items) if name.lower() not in joined else joined[name.lower()] + "," + ",".join(items)
                )
            cookie_header = joined.pop("cookie", "")
            event = build_event(
                kind,
                method,
                path,
                headers=joined,
                query={k: ",".join(v) for k, v in multi_query.items()},
                source_ip=client_ip,
                token_config=self.ruleset.token,
                client_cert=self.client_cert,
            )
            event["rawQueryString"] = raw_query
            event["headers"] = joined
            if cookie_header:
                event["cookies"] = [c.strip() for c in cookie_header.split(";") if c.strip()]
            names, query_names = self.identity_sources()
            event["identitySource"] = [joined.get(n.lower(), "") for n in names] + [
                ",".join(multi_query.get(n, [])) for n in query_names
            ]
        else:
            event = build_event(
                kind,
                method,
                path,
                headers=single_headers,
                query=single_query,
                source_ip=client_ip,
                token_config=self.ruleset.token,
                client_cert=self.client_cert,
            )
            if kind != REST_TOKEN:
                event["multiValueHeaders"] = multi_headers
                event["multiValueQueryStringParameters"] = multi_query
            if kind == HTTP_V1:
                names, query_names = self.identity_sources()
                lowered = {k.lower(): v for k, v in single_headers.items()}
                event["identitySource"] = ",".join(
                    [lowered.get(n.lower(), "") for n in names] + [single_query.get(n, "") for n in query_names]
                )
                event["authorizationToken"] = event["identitySource"]
        if "requestContext" in event:
            event["requestContext"]["requestId"] = f"local-{next(self._ids)}"
        return event


# -- API Gateway's own 401 (docs/apigw-facts.md "What the client gets") ------------------------


def identity_sources(ruleset: RuleSet, event_type: str) -> tuple[list[str], list[str]]:
    """(header names, query names) API Gateway reads as identity sources: a TOKEN
    authorizer's token header, else the rules' cache sources (the token's header by default)."""
    if event_type == REST_TOKEN:
        return [ruleset.token.header or "Authorization"], []
    return list(ruleset.cache.headers), list(ruleset.cache.query)


def default_ttl(ruleset: RuleSet) -> int:
    """The authorizer cache TTL the rules imply: none under cache.mode disabled."""
    return 0 if ruleset.cache.mode == CACHE_DISABLED else DEFAULT_TTL


def sources_required(ruleset: RuleSet, event_type: str, ttl: int) -> bool:
    """When API Gateway refuses a request with a missing identity source."""
    headers, query = identity_sources(ruleset, event_type)
    if not headers and not query and not any(c in CERT_SOURCES for c in ruleset.cache.context):
        return False
    if event_type in (REST_TOKEN, WEBSOCKET, HTTP_V1, HTTP_V2):
        return True
    return ttl > 0  # REST REQUEST: only with caching on


def source_values(
    ruleset: RuleSet,
    event_type: str,
    headers: Sequence[tuple[str, str]],
    query: Sequence[tuple[str, str]],
    client_cert: Mapping[str, Any] | None = None,
) -> tuple[list[str], tuple[str, ...], list[str]]:
    """(each header and query identity source's value, each client-certificate one's (from
    cache.sources.context), those missing or empty), as API Gateway reads them."""
    names, query_names = identity_sources(ruleset, event_type)
    values: list[str] = []
    missing: list[str] = []
    for name in names:
        found = [v for k, v in headers if k.lower() == name.lower()]
        if not found or not found[-1].strip():
            missing.append(f"header {name}")
        values.append(",".join(found))
    for name in query_names:
        found = [v for k, v in query if k == name]
        if not found or not found[-1]:
            missing.append(f"query parameter {name}")
        values.append(",".join(found))
    cert_values = []
    for source in ruleset.cache.context:
        if source in CERT_SOURCES:
            value = _cert_value(client_cert, source)
            if not value:
                missing.append(f"context {source}")
            cert_values.append(value)
    return values, tuple(cert_values), missing


def gateway_refusal(
    ruleset: RuleSet,
    event_type: str,
    ttl: int,
    headers: Sequence[tuple[str, str]],
    query: Sequence[tuple[str, str]],
    client_cert: Mapping[str, Any] | None = None,
) -> str | None:
    """Why API Gateway answers 401 itself, without calling the authorizer, or None when it calls it.
    The one check behind `serve`, `test` and `dry-run`."""
    _, _, missing = source_values(ruleset, event_type, headers, query, client_cert)
    if not missing or not sources_required(ruleset, event_type, ttl):
        return None
    return f"identity source missing ({', '.join(missing)}): API Gateway answers 401 without calling the authorizer"


def event_refusal(ruleset: RuleSet, event: Any, ttl: int | None = None) -> str | None:
    """`gateway_refusal` for an authorizer event (a test case's or dry-run's), with the TTL the
    rules imply unless given; None also for an event that is not one (the authorizer reports it)."""
    try:
        request = parse_event(event)
    except BadEvent:
        return None
    headers = list(request.headers.items())
    if request.cookies and "cookie" not in request.headers:  # HTTP API 2.0 carries cookies apart
        headers.append(("cookie", "; ".join(f"{k}={v}" for k, v in request.cookies.items())))
    if request.event_type == REST_TOKEN and request.token_field is not None:
        headers.append((identity_sources(ruleset, REST_TOKEN)[0][0], request.token_field))
    ttl = default_ttl(ruleset) if ttl is None else ttl
    query = list(request.query.items())
    return gateway_refusal(
        ruleset, request.event_type, ttl, headers, query, _event_cert_fields(event, request.event_type)
    )


@dataclass(frozen=True)
class GatewayDecision:
    """What the client gets for one event, as API Gateway and the authorizer decide it together:
    API Gateway's own 401 (`refusal` says why; no rule ran, `authorization` is None), or the
    authorizer's `Authorization`."""

    authorization: Authorization | None
    refusal: str | None = None

    @property
    def outcome(self) -> str:
        return Outcome.UNAUTHORIZED if self.authorization is None else self.authorization.decision.outcome

    @property
    def reason(self) -> str:
        return Reason.IDENTITY_SOURCE_MISSING if self.authorization is None else self.authorization.decision.reason

    @property
    def status(self) -> int:
        return 401 if self.authorization is None else self.authorization.status

    @property
    def body(self) -> dict[str, Any] | None:
        return UNAUTHORIZED_BODY if self.authorization is None else self.authorization.body

    @property
    def rule(self) -> str | None:
        return None if self.authorization is None else self.authorization.decision.rule

    @property
    def route(self) -> str | None:
        return None if self.authorization is None else self.authorization.decision.route

    @property
    def principal(self) -> str | None:
        return None if self.authorization is None else self.authorization.decision.principal

    @property
    def context(self) -> Mapping[str, Any]:
        return {} if self.authorization is None else self.authorization.decision.context


def decide_event(
    authorizer: Any, event: Any, now: float | None = None, claims: Mapping[str, Any] | None = None
) -> GatewayDecision:
    """One event decided the way API Gateway in front of the authorizer decides it: its own 401
    for a missing identity source first, else the authorizer on the Lambda's code path. The one
    decision behind `ruleauth test`, `test --coverage`, `dry-run` and `diff`."""
    refusal = event_refusal(authorizer.ruleset, event)
    if refusal is not None:
        return GatewayDecision(None, refusal)
    return GatewayDecision(authorizer.authorize(event, now=now, claims=claims))


def _event_cert_fields(event: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    """The clientCert fields an event of `kind` carries, where the authorizer reads them too
    (events.client_cert_holder)."""
    context = event.get("requestContext")
    holder = context.get(client_cert_holder(kind)) if isinstance(context, Mapping) else None
    fields = holder.get("clientCert") if isinstance(holder, Mapping) else None
    return fields if isinstance(fields, Mapping) else None


def _cert_value(fields: Mapping[str, Any] | None, source: str) -> str:
    """`identity.clientCert.validity.notAfter` → fields["validity"]["notAfter"]."""
    value: Any = fields or {}
    for part in source.split(".")[2:]:
        value = value.get(part) if isinstance(value, Mapping) else None
    return value if isinstance(value, str) else ""


def _header_value(value: Any) -> str:
    """REST backends see context values as strings (`true`, `1`); headers are latin-1 on the wire."""
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return text.encode("utf-8").decode("latin-1")


# -- the HTTP server -------------------------------------------------------------------


def make_handler(gateway: LocalGateway, log: TextIO) -> type[BaseHTTPRequestHandler]:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        server_version = "ruleauth-serve"
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            started = time.perf_counter()
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                answer = json_answer(413, {"message": "Request Entity Too Large"}, "413 body too large")
                self.rfile.read(0)
            else:
                body = self.rfile.read(length) if length > 0 else b""
                try:
                    answer = gateway.handle(
                        self.command, self.path, list(self.headers.items()), body, self.client_address[0]
                    )
                except Exception as exc:  # never a traceback to the client or the log
                    answer = json_answer(500, SERVER_ERROR_BODY, f"500 ruleauth serve failed: {type(exc).__name__}")
            elapsed = (time.perf_counter() - started) * 1000
            path = urlsplit(self.path).path  # never the query string: it may hold a credential
            with lock:  # logged before answering, so a client that saw the answer can read the line
                log.write(f"{self.command} {path} → {answer.log} {elapsed:.1f}ms\n")
                log.flush()
            self.send_response(answer.status)
            for name, value in answer.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(answer.body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

        def log_message(self, format: str, *args: Any) -> None:
            return  # one line per request is written by _handle, without client details

    return Handler


def serve(
    gateway: LocalGateway, host: str, port: int, out: TextIO = sys.stdout, log: TextIO = sys.stderr, banner: str = ""
) -> int:
    """Run until Ctrl-C (SIGINT) or SIGTERM; returns the exit status."""
    import signal

    server = ThreadingHTTPServer((host, port), make_handler(gateway, log))
    server.daemon_threads = True
    bound_host, bound_port = server.server_address[:2]
    shown_host = f"[{bound_host!s}]" if ":" in str(bound_host) else str(bound_host)
    out.write(f"ruleauth serve: listening on http://{shown_host}:{bound_port!s}\n")
    if banner:
        out.write(banner + "\n")
    out.write("Press Ctrl-C to stop.\n")
    out.flush()

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    # Installed explicitly: a shell starts background jobs with SIGINT ignored.
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.server_close()
    out.write("ruleauth serve: stopped\n")
    out.flush()
    return 0
