"""The hand-written baseline: a single-route RS256 JWT authorizer, as people write it by hand.

It stands in for the Python alternative in the oidc-authorizer benchmark (PyJWT,
cryptography, requests, aws-lambda-powertools): the same imports at cold start, the
same work per request (read the bearer token, pick the key by `kid`, decode and verify
RS256 with issuer and audience, answer with one Allow statement for the asked ARN).

Configuration (environment, read at import):
  BASELINE_JWKS_FILE   a JWK set file: keys are read from it instead of fetched (the bench)
  BASELINE_JWKS_URI    otherwise the keys are fetched from here with `requests`, lazily
  BASELINE_ISSUER      expected `iss`
  BASELINE_AUDIENCE    expected `aud`

Keys are loaded lazily on the first token with an unknown `kid` and then cached, as in
the original; `authorize(event)` is the decision without logging, `handler` is the Lambda
entry with powertools' logger, as deployed.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jwt
import requests
from aws_lambda_powertools import Logger
from jwt.algorithms import RSAAlgorithm

try:  # the powertools response helpers, where this version has them
    from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
        APIGatewayAuthorizerResponse,
        parse_api_gateway_arn,
    )
except ImportError:  # pragma: no cover - older powertools
    APIGatewayAuthorizerResponse = None
    parse_api_gateway_arn = None

JWKS_FILE = os.environ.get("BASELINE_JWKS_FILE")
JWKS_URI = os.environ.get("BASELINE_JWKS_URI", "https://idp.example.test/.well-known/jwks.json")
ISSUER = os.environ.get("BASELINE_ISSUER")
AUDIENCE = os.environ.get("BASELINE_AUDIENCE")

logger = Logger(service="baseline-authorizer")


class Keys:
    """kid → public key; the set is (re)loaded when a token names a kid not seen yet."""

    def __init__(self, jwks_file: str | None, jwks_uri: str) -> None:
        self.jwks_file = jwks_file
        self.jwks_uri = jwks_uri
        self.keys: dict[str, Any] = {}

    def _load(self) -> dict[str, Any]:
        if self.jwks_file:
            with open(self.jwks_file, encoding="utf-8") as handle:
                return json.load(handle)
        return requests.get(self.jwks_uri, timeout=3).json()

    def get(self, kid: str) -> Any:
        key = self.keys.get(kid)
        if key is None:
            for jwk in self._load()["keys"]:
                if jwk.get("kty") == "RSA" and "kid" in jwk:
                    self.keys[str(jwk["kid"])] = RSAAlgorithm.from_jwk(jwk)
            key = self.keys.get(kid)
            if key is None:
                raise KeyError(f"unknown kid {kid!r}")
        return key


keys = Keys(JWKS_FILE, JWKS_URI)


def _token(event: dict[str, Any]) -> str:
    value = event.get("authorizationToken")
    if value is None:
        headers = event.get("headers") or {}
        value = headers.get("Authorization") or headers.get("authorization") or ""
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ValueError("no bearer token")
    return token


def _allow(principal: str, method_arn: str, claims: dict[str, Any]) -> dict[str, Any]:
    context = {"tenant": str(claims.get("tenant", "")), "scope": str(claims.get("scope", ""))}
    if APIGatewayAuthorizerResponse is not None:
        arn = parse_api_gateway_arn(method_arn)
        response = APIGatewayAuthorizerResponse(
            principal_id=principal,
            region=arn.region,
            aws_account_id=arn.aws_account_id,
            api_id=arn.api_id,
            stage=arn.stage,
            context=context,
        )
        response.allow_route(http_method=arn.http_method, resource=arn.resource)
        return response.asdict()
    return {
        "principalId": principal,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": [method_arn]}],
        },
        "context": context,
    }


def authorize(event: dict[str, Any]) -> dict[str, Any]:
    """One decision: verify the RS256 token, answer for the asked route. Raises on a bad token."""
    token = _token(event)
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(
        token,
        keys.get(header["kid"]),
        algorithms=["RS256"],
        issuer=ISSUER,
        audience=AUDIENCE,
        options={"require": ["exp", "iss", "sub"]},
    )
    return _allow(str(claims["sub"]), event["methodArn"], claims)


@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        return authorize(event)
    except Exception as exc:
        logger.warning("denied", extra={"error": type(exc).__name__})
        raise Exception("Unauthorized") from None
