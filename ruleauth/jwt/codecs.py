"""The strict codecs of the token and key layers: base64url, JSON, and log-safe text.

One byte string has one spelling (canonical base64url) and one JSON document one
reading (no duplicate members, no NaN/Infinity), so what the verifier checks is what
every later stage reads.
"""

from __future__ import annotations

import binascii
import json
import re
from typing import Any

_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def b64url_decode(segment: str) -> bytes:
    """Strict base64url: URL-safe alphabet only, canonical trailing bits.

    Correct `=` padding is tolerated (the same bytes as without it) because
    some issuers (ALB) pad; wrong padding, whitespace, `+/` and non-canonical
    last characters are refused, so each byte string has one spelling.
    """
    body = segment.rstrip("=")
    pad = len(segment) - len(body)
    if pad and (len(segment) % 4 != 0 or pad > 2):
        raise ValueError("bad base64url padding")
    if len(body) % 4 == 1 or not _B64URL.fullmatch(body):
        raise ValueError("not base64url")
    try:
        data = binascii.a2b_base64(body.replace("-", "+").replace("_", "/") + "=" * (-len(body) % 4), strict_mode=True)
    except binascii.Error:
        raise ValueError("not base64url") from None
    if b64url_encode(data) != body:
        raise ValueError("non-canonical base64url")
    return data


def b64url_encode(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii").rstrip("=").replace("+", "-").replace("/", "_")


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in pairs:
        if name in out:
            raise ValueError(f"duplicate member {name[:64]!r}")
        out[name] = value
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strict_json(data: bytes) -> Any:
    """UTF-8 JSON with no duplicate member names and no NaN/Infinity."""
    text = data.decode("utf-8")  # strict: json.loads(bytes) would also guess UTF-16/32
    return json.loads(text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant)
