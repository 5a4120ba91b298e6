"""The deadline-bounded HTTPS client that fetches discovery documents and key sets, and posts
token introspection requests (RFC 7662).

A request is HTTPS only, refuses redirects, and is bounded by one overall deadline
(resolution, connect, TLS, the request body and every read) and a byte cap. GET and POST
share every one of these steps: one client, one set of limits.

The connection itself (http.client, ssl: a fifth of a cold start to import) is in
jwt/https_client.py, imported by the first request that goes over the network, which
pays far more for its TLS context and handshake.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from collections.abc import Mapping
from typing import Protocol

from ruleauth.errors import safe_text
from ruleauth.jwt.keys import FetchError

DEFAULT_FETCH_TIMEOUT = 3.0
MAX_FETCH_TIMEOUT = 3.0


class KeyFetcher(Protocol):
    """Fetches one HTTPS resource. Tests substitute their own."""

    def fetch(self, url: str, *, deadline: float, max_bytes: int) -> bytes:
        """The body of a 200 response. `deadline` is on time.monotonic(). Raises FetchError."""
        ...


_DNS_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
MAX_HOST_LENGTH = 253  # RFC 1035 §2.3.4: 255 octets on the wire, 253 characters written out


def check_host(host: str) -> str | None:
    """Why `host` (a URL's hostname) cannot be connected to, or None.

    An IP address, or a DNS name of labels of 1-63 letters, digits and inner
    hyphens, 253 characters at most (one trailing dot allowed); a name in
    Unicode is judged in its IDNA form, the one the resolver and TLS are given.
    """
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    try:
        ascii_host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        ascii_host = None
    if ascii_host is not None and ascii_host.endswith("."):
        ascii_host = ascii_host[:-1]
    if ascii_host is None or not ascii_host:
        return f"has a host {safe_text(host)} with an empty label or one over 63 characters"
    if len(ascii_host) > MAX_HOST_LENGTH:
        return f"has a host of {len(ascii_host)} characters (at most {MAX_HOST_LENGTH})"
    for label in ascii_host.split("."):
        if not label or len(label) > 63:
            return f"has a host {safe_text(host)} with an empty label or one over 63 characters"
        if not _DNS_LABEL.fullmatch(label):
            return f"has a host {safe_text(host)} that is not a DNS name (letters, digits, inner hyphens)"
    return None


def check_https_url(url: object) -> str | None:
    """Why `url` is not an acceptable HTTPS URL, or None if it is.

    The one check for configured URLs (issuer, jwks_uri) and for the jwks_uri a
    discovery document gives, so both refuse the same hosts.
    """
    if not isinstance(url, str) or not url:
        return "is not a string"
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        return "contains whitespace or control characters"
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme != "https":
        return "is not https://"
    if not parts.hostname:
        return "has no host"
    bad_host = check_host(parts.hostname)
    if bad_host:
        return bad_host
    if parts.username is not None or parts.password is not None:
        return "has credentials in it"
    if parts.fragment:
        return "has a fragment"
    if port == 0:
        return "has port 0"
    return None


class HttpsFetcher:
    """GET or POST over HTTPS with one overall deadline, a byte cap and no redirects."""

    user_agent = "ruleauth-jwks/1"

    def fetch(self, url: str, *, deadline: float, max_bytes: int) -> bytes:
        return self._request("GET", url, None, {}, deadline=deadline, max_bytes=max_bytes)

    def post(self, url: str, body: bytes, headers: Mapping[str, str], *, deadline: float, max_bytes: int) -> bytes:
        """The body of a 200 answer to a POST of `body` (with `headers`, e.g. Content-Type and
        Authorization). Raises FetchError; its message never holds the request's headers or body."""
        return self._request("POST", url, body, headers, deadline=deadline, max_bytes=max_bytes)

    def _request(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: Mapping[str, str],
        *,
        deadline: float,
        max_bytes: int,
    ) -> bytes:
        problem = check_https_url(url)
        if problem:
            raise FetchError(f"URL {problem}")
        from ruleauth.jwt import https_client

        return https_client.request(
            method, url, body, headers, deadline=deadline, max_bytes=max_bytes, user_agent=self.user_agent
        )
