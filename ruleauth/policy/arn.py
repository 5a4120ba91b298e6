"""execute-api ARNs: parsing the incoming one, and building resource ARNs from rule routes."""

from __future__ import annotations

import re

from ruleauth.errors import BadEvent
from ruleauth.model import METHODS, WEBSOCKET_CONNECT, MethodArn

_PARTITION = re.compile(r"^aws(-[a-z]+)*$")
_REGION = re.compile(r"^[a-z0-9-]{1,32}$")
_ACCOUNT = re.compile(r"^[0-9]{12}$")
_API_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")
_STAGE = re.compile(r"^[A-Za-z0-9_$*.-]{1,128}$")
MAX_ARN_BYTES = 1600  # API Gateway's own limit on a method ARN (longer gives 414)


def parse_arn(text: object) -> MethodArn:
    """Split only up to the sixth ':' and then on '/': paths may contain ':' (chalice #1775)."""
    if not isinstance(text, str) or not text:
        raise BadEvent("the event has no method or route ARN")
    if len(text.encode("utf-8", "surrogatepass")) > MAX_ARN_BYTES:
        raise BadEvent("the ARN is longer than API Gateway allows")
    fields = text.split(":", 5)
    if len(fields) != 6 or fields[0] != "arn" or fields[2] != "execute-api":
        raise BadEvent("not an execute-api ARN")
    _, partition, _, region, account, rest = fields
    if not (_PARTITION.match(partition) and _REGION.match(region) and _ACCOUNT.match(account)):
        raise BadEvent("malformed partition, region or account in the ARN")
    parts = rest.split("/", 3)
    if len(parts) < 3 or not _API_ID.match(parts[0]) or not _STAGE.match(parts[1]):
        raise BadEvent("malformed API id or stage in the ARN")
    api_id, stage, verb = parts[0], parts[1], parts[2]
    if verb.startswith("$") and len(parts) == 3:
        # WebSocket: .../{stage}/$connect; the route key stands where the verb would.
        return MethodArn(partition, region, account, api_id, stage, "", verb)
    if verb not in METHODS and verb != "*":
        raise BadEvent("unknown HTTP method in the ARN")
    path = "/" + (parts[3] if len(parts) == 4 else "")
    return MethodArn(partition, region, account, api_id, stage, verb, path)


def resource_arn(arn: MethodArn, method: str, path: str) -> str:
    """The resource ARN for one method and path under the incoming ARN's API and stage.

    Only the path's own leading `/` is dropped: `//admin` stays `GET//admin`, the ARN API
    Gateway matches the policy against, not `GET/admin` (a different route)."""
    if path == WEBSOCKET_CONNECT:
        return f"{arn.prefix}/{WEBSOCKET_CONNECT}"
    return f"{arn.prefix}/{method}/{path[1:] if path.startswith('/') else path}"


def asked_arn(arn: MethodArn) -> str:
    """The ARN the event asked about, rebuilt from its parts."""
    if arn.method == "":
        return f"{arn.prefix}/{arn.path}"
    return resource_arn(arn, arn.method, arn.path)
