"""The caller's credential: where it is read, how strictly, and its removal from the request."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from ruleauth.errors import CredentialError
from ruleauth.model import REST_TOKEN, Request
from ruleauth.reasons import Reason
from ruleauth.rules.ruleset import TokenConfig

MAX_TOKEN_BYTES = 8 * 1024
MISSING, BAD = Reason.MISSING_CREDENTIAL, Reason.BAD_CREDENTIAL
# fullmatch, not `^…$`: `$` also matches before a final newline, which let "Bearer abc\n" through.
_NO_SPACE = re.compile(r"\S+")


@dataclass(frozen=True)
class Credential:
    value: str  # scheme stripped; "" when the caller sent none


def extract(config: TokenConfig, request: Request) -> Credential:
    """The credential, or "" when absent. Raises CredentialError when it is present but unusable."""
    values = _raw_values(config, request)
    if not values:
        return Credential("")
    if len(values) > 1:
        raise CredentialError(BAD, f"{config.where} sent {len(values)} times")
    raw = values[0]
    if len(raw.encode("utf-8", "surrogatepass")) > MAX_TOKEN_BYTES:
        raise CredentialError(BAD, f"{config.where} is larger than {MAX_TOKEN_BYTES} bytes")
    if config.scheme is None:
        return Credential(raw)
    scheme, space, credential = raw.partition(" ")
    # RFC 6750: exactly "<scheme> <credential>", scheme case-insensitive, one space.
    if not space or scheme.lower() != config.scheme.lower() or not _NO_SPACE.fullmatch(credential):
        return Credential("")
    return Credential(credential)


def _raw_values(config: TokenConfig, request: Request) -> tuple[str, ...]:
    if request.event_type == REST_TOKEN:
        # A TOKEN event carries only the configured header's value, in authorizationToken.
        if config.header and request.token_field:
            return (request.token_field,)
        return ()
    if config.header:
        found = request.header_values.get(config.header.lower(), ())
    elif config.query:
        found = request.query_values.get(config.query, ())
    else:
        found = request.cookie_values.get(config.cookie or "", ())
    return tuple(v for v in found if v != "")


def without_credential(config: TokenConfig, request: Request) -> Request:
    """The request as rules see it: the credential's header, parameter or cookie removed."""
    if config.header:
        name = config.header.lower()
        headers = {k: v for k, v in request.headers.items() if k != name}
        return dataclasses.replace(request, headers=headers)
    if config.query:
        query = {k: v for k, v in request.query.items() if k != config.query}
        return dataclasses.replace(request, query=query)
    cookies = {k: v for k, v in request.cookies.items() if k != config.cookie}
    headers = {k: v for k, v in request.headers.items() if k != "cookie"}
    return dataclasses.replace(request, cookies=cookies, headers=headers)
