"""API Gateway events built from a few fields, for dry-run flags and `tests:` cases.

They take the same shapes as real events (docs/apigw-facts.md "Event shapes"), so a
synthetic request runs the Lambda's own parsing code, never a shortcut.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from ruleauth.model import HTTP_V1, HTTP_V2, REST_REQUEST, REST_TOKEN, WEBSOCKET, WEBSOCKET_CONNECT
from ruleauth.rules.ruleset import RuleSet, TokenConfig

DEFAULT_API = {"region": "us-east-1", "account_id": "123456789012", "api_id": "abc123", "stage": "prod"}
DEFAULT_EVENT_TYPE = REST_REQUEST


def build_event(
    event_type: str,
    method: str,
    path: str,
    headers: Mapping[str, str] | None = None,
    query: Mapping[str, str] | None = None,
    cookies: Mapping[str, str] | None = None,
    stage_variables: Mapping[str, str] | None = None,
    source_ip: str = "192.0.2.10",
    token: str | None = None,
    token_config: TokenConfig | None = None,
    api: Mapping[str, str] | None = None,
    client_cert: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """`client_cert`: the requestContext's clientCert fields (client_cert_fields), placed where
    each event shape carries them; TOKEN and WebSocket events carry none."""
    api = {**DEFAULT_API, **(api or {})}
    headers = dict(headers or {})
    query = dict(query or {})
    cookies = dict(cookies or {})
    if token is not None:
        config = token_config or TokenConfig()
        value = f"{config.scheme} {token}" if config.scheme else token
        if config.header:
            headers[config.header] = value
        elif config.query:
            query[config.query] = token
        elif config.cookie:
            cookies[config.cookie] = token
    if cookies and event_type != HTTP_V2:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    prefix = f"arn:aws:execute-api:{api['region']}:{api['account_id']}:{api['api_id']}/{api['stage']}"
    method = method.upper()
    if event_type == WEBSOCKET or path == WEBSOCKET_CONNECT:
        arn = f"{prefix}/{WEBSOCKET_CONNECT}"
    else:
        arn = f"{prefix}/{method}/{path[1:] if path.startswith('/') else path}"
    context = {
        "accountId": api["account_id"],
        "apiId": api["api_id"],
        "stage": api["stage"],
        "requestId": "dry-run",
    }
    if event_type == REST_TOKEN:
        config = token_config or TokenConfig()
        name = (config.header or "Authorization").lower()
        credential = next((v for k, v in headers.items() if k.lower() == name), None)
        event: dict[str, Any] = {"type": "TOKEN", "methodArn": arn}
        if credential is not None:
            event["authorizationToken"] = credential
        return event
    if event_type == HTTP_V2:
        event = {
            "version": "2.0",
            "type": "REQUEST",
            "routeArn": arn,
            "identitySource": list(headers.values())[:1],
            "routeKey": "$default",
            "rawPath": path,
            "rawQueryString": urlencode(list(query.items())),
            "headers": {k.lower(): v for k, v in headers.items()},
            "queryStringParameters": query,
            "stageVariables": dict(stage_variables or {}),
            "requestContext": {
                **context,
                "http": {"method": method, "path": path, "sourceIp": source_ip},
                "routeKey": "$default",
            },
        }
        if client_cert is not None:
            event["requestContext"]["authentication"] = {"clientCert": dict(client_cert)}
        if cookies:
            event["cookies"] = [f"{k}={v}" for k, v in cookies.items()]
        return event
    event = {
        "type": "REQUEST",
        "methodArn": arn,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()},
        "pathParameters": {},
        "stageVariables": dict(stage_variables or {}),
        "requestContext": {**context, "httpMethod": method, "identity": {"sourceIp": source_ip}},
    }
    if event_type == HTTP_V1:
        event["version"] = "1.0"
        event["identitySource"] = ",".join(headers.values())
    if event_type == WEBSOCKET:
        event.pop("path"), event.pop("httpMethod"), event.pop("pathParameters")
        event["requestContext"].update({"routeKey": WEBSOCKET_CONNECT, "eventType": "CONNECT"})
    elif client_cert is not None:
        event["requestContext"]["identity"]["clientCert"] = dict(client_cert)
    return event


def with_client_cert(event: dict[str, Any], client_cert: Mapping[str, Any]) -> bool:
    """Puts the clientCert fields into an event (e.g. a `dry-run --event` file) where its shape
    carries them; False for TOKEN and WebSocket events, which carry none."""
    from ruleauth.runtime.events import client_cert_holder
    from ruleauth.runtime.events import event_type as shape

    kind = shape(event)
    if kind in (REST_TOKEN, WEBSOCKET):
        return False
    context = event.setdefault("requestContext", {})
    holder = context.setdefault(client_cert_holder(kind), {})
    holder["clientCert"] = dict(client_cert)
    return True


def client_cert_fields(pem: str) -> dict[str, Any]:
    """The clientCert object API Gateway sends for a mutual TLS client presenting this
    certificate (docs/apigw-facts.md "Client certificates"). Raises ValueError for a PEM that
    holds no certificate."""
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
    serial = cert.serial_number.to_bytes(max(1, (cert.serial_number.bit_length() + 7) // 8), "big")
    return {
        "clientCertPem": pem,
        "subjectDN": cert.subject.rfc4514_string(),
        "issuerDN": cert.issuer.rfc4514_string(),
        "serialNumber": ":".join(f"{b:02x}" for b in serial),
        "validity": {
            "notBefore": _openssl_time(cert.not_valid_before_utc),
            "notAfter": _openssl_time(cert.not_valid_after_utc),
        },
    }


def _openssl_time(value: Any) -> str:
    """API Gateway's validity form, `May 28 12:30:02 2019 GMT` (day padded with a space)."""
    return f"{value:%b} {value.day:2d} {value:%H:%M:%S %Y} GMT"


def event_for_test(ruleset: RuleSet, case: Any) -> dict[str, Any]:
    """The event a `tests:` case describes: its event file, or one built from its request."""
    if case.event:
        with open(case.event, encoding="utf-8") as handle:
            loaded: dict[str, Any] = json.load(handle)
            return loaded
    request = case.request
    return build_event(
        case.event_type or DEFAULT_EVENT_TYPE,
        request.get("method") or "GET",
        request.get("path") or "/",
        headers=request.get("headers"),
        query=request.get("query"),
        cookies=request.get("cookies"),
        stage_variables=request.get("stage_variables"),
        source_ip=request.get("source_ip") or "192.0.2.10",
        token=request.get("token"),
        token_config=ruleset.token,
    )
