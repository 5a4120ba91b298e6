"""API Gateway authorizer events → one normalised Request.

Five shapes arrive at one handler (docs/apigw-facts.md "Event shapes"): REST TOKEN, REST
REQUEST, HTTP API payload 1.0 and 2.0, and WebSocket $connect. Method and path
always come from the ARN, so every shape routes alike. Maps may be missing,
null or hold junk: anything that is not a string is ignored rather than trusted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from ruleauth.errors import BadEvent
from ruleauth.model import (
    HTTP_V1,
    HTTP_V2,
    METHODS,
    REST_REQUEST,
    REST_TOKEN,
    WEBSOCKET,
    WEBSOCKET_CONNECT,
    ClientCert,
    Request,
)
from ruleauth.policy.arn import parse_arn

MAX_HEADERS = 100


def event_type(event: Mapping[str, Any]) -> str:
    """The dispatch rule of docs/apigw-facts.md "Event shapes"."""
    kind = event.get("type")
    version = event.get("version")
    if kind == "TOKEN":
        return REST_TOKEN
    if version == "2.0":
        return HTTP_V2
    if version == "1.0":
        return HTTP_V1
    if kind == "REQUEST":
        context = _map(event.get("requestContext"))
        arn = event.get("methodArn")
        if (isinstance(arn, str) and arn.endswith("/" + WEBSOCKET_CONNECT)) or context.get("eventType") == "CONNECT":
            return WEBSOCKET
        return REST_REQUEST
    raise BadEvent("not an API Gateway authorizer event (no TOKEN/REQUEST type or payload version)")


def parse_event(event: Any) -> Request:
    if not isinstance(event, Mapping):
        raise BadEvent("the event is not a JSON object")
    kind = event_type(event)
    context = _map(event.get("requestContext"))
    arn = parse_arn(event.get("routeArn") if kind == HTTP_V2 else event.get("methodArn"))
    if kind == REST_TOKEN:
        token = event.get("authorizationToken")
        return Request(
            event_type=kind,
            arn=arn,
            token_field=token if isinstance(token, str) else None,
        )
    header_values = _header_values(event, kind)
    if len(header_values) > MAX_HEADERS:
        raise BadEvent(f"more than {MAX_HEADERS} headers")
    query_values = _query_values(event, kind)
    cookie_values = _cookie_values(event, kind, header_values)
    return Request(
        event_type=kind,
        arn=arn,
        headers=_joined(header_values),
        query=_joined(query_values),
        cookies=_joined(cookie_values),
        stage_variables=_strings(event.get("stageVariables")),
        source_ip=_source_ip(context, kind),
        resource=_resource(event, context, kind),
        resource_method=_route_key_method(event, context, kind),
        request_id=_text(context.get("requestId")),
        header_values=header_values,
        query_values=query_values,
        cookie_values=cookie_values,
        client_cert=_client_cert(context, kind),
    )


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _strings(value: Any) -> dict[str, str]:
    return {k: v for k, v in _map(value).items() if isinstance(k, str) and isinstance(v, str)}


def _add(into: dict[str, list[str]], name: str, values: Iterable[Any]) -> None:
    strings = [v for v in values if isinstance(v, str)]
    if strings:
        into.setdefault(name, []).extend(strings)


def _header_values(event: Mapping[str, Any], kind: str) -> dict[str, tuple[str, ...]]:
    """Lower-cased names. `multiValueHeaders` holds every value where present; `headers`
    alone holds only one of several, so it only fills names the multi-value map lacks."""
    values: dict[str, list[str]] = {}
    multi = _map(event.get("multiValueHeaders")) if kind != HTTP_V2 else {}
    for name, items in multi.items():
        if isinstance(name, str) and isinstance(items, list):
            _add(values, name.lower(), items)
    covered = {name.lower() for name in multi if isinstance(name, str)}
    for name, value in _map(event.get("headers")).items():
        if isinstance(name, str) and name.lower() not in covered:
            _add(values, name.lower(), [value])
    return {k: tuple(v) for k, v in values.items()}


def _query_values(event: Mapping[str, Any], kind: str) -> dict[str, tuple[str, ...]]:
    values: dict[str, list[str]] = {}
    if kind == HTTP_V2:
        raw = event.get("rawQueryString")
        if isinstance(raw, str) and raw:
            # payload 2.0 joins repeated parameters with commas; the raw string still tells them apart.
            for name, value in parse_qsl(raw, keep_blank_values=True):
                _add(values, name, [value])
        for name, value in _strings(event.get("queryStringParameters")).items():
            if name not in values:
                _add(values, name, [value])
        return {k: tuple(v) for k, v in values.items()}
    multi = _map(event.get("multiValueQueryStringParameters"))
    for name, items in multi.items():
        if isinstance(name, str) and isinstance(items, list):
            _add(values, name, items)
    for name, value in _strings(event.get("queryStringParameters")).items():
        if name not in multi:
            _add(values, name, [value])
    return {k: tuple(v) for k, v in values.items()}


def _cookie_values(
    event: Mapping[str, Any], kind: str, headers: Mapping[str, tuple[str, ...]]
) -> dict[str, tuple[str, ...]]:
    pairs: list[str] = []
    if kind == HTTP_V2 and isinstance(event.get("cookies"), list):
        pairs = [c for c in event["cookies"] if isinstance(c, str)]
    else:
        for header in headers.get("cookie", ()):
            pairs.extend(part.strip() for part in header.split(";"))
    values: dict[str, list[str]] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if sep and name:
            _add(values, name, [_unquote_cookie(value.strip())])
    return {k: tuple(v) for k, v in values.items()}


def _unquote_cookie(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        # Imported for the first quoted value only: few requests send one (a cold start saves 1.5 ms).
        from http.cookies import SimpleCookie

        parsed = SimpleCookie()
        try:
            parsed.load(f"c={value}")
            return parsed["c"].value
        except Exception:  # a malformed quoted value stays as sent
            return value
    return value


def _joined(values: Mapping[str, tuple[str, ...]]) -> dict[str, str]:
    return {name: ",".join(items) for name, items in values.items()}


def _source_ip(context: Mapping[str, Any], kind: str) -> str:
    if kind == HTTP_V2:
        return _text(_map(context.get("http")).get("sourceIp"))
    return _text(_map(context.get("identity")).get("sourceIp"))


def client_cert_holder(kind: str) -> str:
    """The member of requestContext that carries an event kind's client certificate
    (docs/apigw-facts.md "Client certificates"): payload 2.0's authentication, the other
    shapes' identity."""
    return "authentication" if kind == HTTP_V2 else "identity"


def _client_cert(context: Mapping[str, Any], kind: str) -> ClientCert | None:
    """The mutual TLS client certificate, where the event has one."""
    holder = _map(context.get(client_cert_holder(kind)))
    raw = _map(holder.get("clientCert"))
    if not raw:  # most APIs use no mutual TLS: their requests pay only these two lookups
        return None
    validity = _map(raw.get("validity"))
    cert = ClientCert(
        pem=_text(raw.get("clientCertPem")),
        subject_dn=_text(raw.get("subjectDN")),
        issuer_dn=_text(raw.get("issuerDN")),
        serial_number=_text(raw.get("serialNumber")),
        not_before=_text(validity.get("notBefore")),
        not_after=_text(validity.get("notAfter")),
    )
    return cert if cert != _NO_CERT else None


_NO_CERT = ClientCert()


def _route_key_method(event: Mapping[str, Any], context: Mapping[str, Any], kind: str) -> str:
    if kind != HTTP_V2:
        return ""
    method, _, _ = (_text(event.get("routeKey")) or _text(context.get("routeKey"))).partition(" ")
    return method if method in METHODS else ""


def _resource(event: Mapping[str, Any], context: Mapping[str, Any], kind: str) -> str:
    if kind == HTTP_V2:
        route_key = _text(event.get("routeKey")) or _text(context.get("routeKey"))
        _, _, path = route_key.partition(" ")
        return path
    if kind == WEBSOCKET:
        return _text(context.get("routeKey"))
    return _text(event.get("resource")) or _text(context.get("resourcePath"))
