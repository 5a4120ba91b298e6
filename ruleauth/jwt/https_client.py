"""The HTTPS connection behind jwt/fetch.py's HttpsFetcher: one overall deadline over
resolution, connect, TLS, the request and every read; a byte cap on what is read.

Imported by the first request that fetches or posts (jwt/fetch.py), not at the cold start:
http.client and ssl cost a fifth of a cold start to import, and a rule set with a
`jwks_file`, or none of `jwks_uri`/`issuer` discovery/introspection, never needs them.
"""

from __future__ import annotations

import http.client
import io
import ipaddress
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

from ruleauth.jwt.keys import FetchError

# Status line and headers are not part of the body cap but still bounded.
_MAX_HEADER_BYTES = 32 * 1024
# Neither is chunked framing, which can outweigh the body: a server writing one byte
# at a time sends `1\r\n` + the byte + `\r\n`, six bytes on the wire per byte of body.
# The body itself is held to the cap; the bytes read from the socket to `_WIRE_FACTOR`
# times the cap (plus headers), so no framing an honest server uses is refused.
_WIRE_FACTOR = 6


class _DeadlineSocket:
    """Shrinks the socket timeout before every operation to what is left.

    urllib and http.client apply `timeout` to each socket operation, so a server
    dripping one byte per second could hold a fetch forever; here each call can
    only use the time remaining until the single deadline. CPython's SSL
    handshake and read loops honour one timeout as a total, so this bounds TLS too.
    """

    def __init__(self, sock: ssl.SSLSocket, deadline: float, read_cap: int) -> None:
        self._sock = sock
        self._deadline = deadline
        self._read_left = read_cap
        self._readers = 0
        self._closing = False

    def _arm(self) -> None:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("deadline reached")
        self._sock.settimeout(remaining)

    def sendall(self, data: bytes) -> None:
        self._arm()
        self._sock.sendall(data)

    def recv_into(self, buffer: Any, nbytes: int = 0) -> int:
        if self._read_left <= 0:
            raise FetchError("response is larger than the byte cap")
        self._arm()
        view = memoryview(buffer)
        limit = min(len(view) if nbytes == 0 else nbytes, self._read_left)
        n = self._sock.recv_into(view[:limit], limit)
        self._read_left -= n
        return n

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        self._readers += 1
        return io.BufferedReader(_SocketReader(self))

    def close(self) -> None:
        # The semantics of socket.socket.close(): while a file from makefile() is
        # open, the connection stays up. http.client relies on it: on a response
        # that ends the connection (`Connection: close`, HTTP/1.0, a body read
        # until close) it closes its socket at once and reads the body through
        # the response's file afterwards.
        self._closing = True
        if self._readers == 0:
            self._sock.close()

    def _reader_closed(self) -> None:
        self._readers -= 1
        if self._closing and self._readers == 0:
            self._sock.close()


class _SocketReader(io.RawIOBase):
    def __init__(self, sock: _DeadlineSocket) -> None:
        self._sock: _DeadlineSocket | None = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._sock is None:
            raise ValueError("read from a closed response")
        return self._sock.recv_into(buffer)

    def close(self) -> None:
        sock, self._sock = self._sock, None
        super().close()
        if sock is not None:
            sock._reader_closed()


def _resolve(host: str, port: int, deadline: float) -> list[tuple[Any, ...]]:
    """getaddrinfo bounded by the deadline (the resolver has no timeout of its own)."""
    try:
        ip = ipaddress.ip_address(host)
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 0, "", (host, port))]
    except ValueError:
        pass
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["ok"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except Exception as exc:  # UnicodeError for a name IDNA refuses, not only OSError
            box["err"] = exc

    worker = threading.Thread(target=run, name="ruleauth-dns", daemon=True)
    worker.start()
    worker.join(max(0.0, deadline - time.monotonic()))
    if worker.is_alive():
        raise FetchError("DNS resolution did not finish before the deadline")
    if "err" in box:
        raise FetchError(f"DNS resolution failed ({type(box['err']).__name__})")
    found: list[tuple[Any, ...]] = box["ok"]
    return found


class _DeadlineHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, *, deadline: float, read_cap: int) -> None:
        self._ruleauth_context = ssl.create_default_context()  # honours SSL_CERT_FILE / SSL_CERT_DIR
        super().__init__(host, port, context=self._ruleauth_context)
        self._deadline = deadline
        self._read_cap = read_cap

    def connect(self) -> None:
        last: Exception | None = None
        sock: socket.socket | None = None
        for family, socktype, proto, _name, addr in _resolve(self.host, self.port, self._deadline):
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                break
            candidate = socket.socket(family, socktype, proto)
            try:
                candidate.settimeout(remaining)
                candidate.connect(addr)
                sock = candidate
                break
            except OSError as exc:
                candidate.close()
                last = exc
        if sock is None:
            raise last or TimeoutError("deadline reached")
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            sock.close()
            raise TimeoutError("deadline reached")
        sock.settimeout(remaining)
        tls = self._ruleauth_context.wrap_socket(sock, server_hostname=self.host)
        self.sock = _DeadlineSocket(tls, self._deadline, self._read_cap)


def request(
    method: str,
    url: str,
    body: bytes | None,
    headers: Mapping[str, str],
    *,
    deadline: float,
    max_bytes: int,
    user_agent: str,
) -> bytes:
    """The body of a 200 answer from `url` (checked by the caller: jwt/fetch.py check_https_url).
    Raises FetchError; its message never holds the request's headers or body."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or 443
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    wire_cap = _WIRE_FACTOR * max_bytes + _MAX_HEADER_BYTES
    conn = _DeadlineHTTPSConnection(host, port, deadline=deadline, read_cap=wire_cap)
    resp: http.client.HTTPResponse | None = None
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        conn.putheader("Accept", "application/json")
        conn.putheader("Accept-Encoding", "identity")
        conn.putheader("User-Agent", user_agent)
        conn.putheader("Connection", "close")
        for name, value in headers.items():
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        if 300 <= resp.status < 400:
            raise FetchError(f"HTTP {resp.status} redirect refused")
        if resp.status != 200:
            raise FetchError(f"HTTP {resp.status}")
        length = resp.getheader("Content-Length")
        if length is not None and length.isdigit() and int(length) > max_bytes:
            raise FetchError(f"response of {int(length)} bytes is larger than the cap of {max_bytes}")
        data = resp.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise FetchError(f"response is larger than the cap of {max_bytes} bytes")
        return data
    except FetchError:
        raise
    except TimeoutError:
        raise FetchError("no complete response before the deadline") from None
    except ssl.SSLError as exc:
        raise FetchError(f"TLS failed ({exc.reason or type(exc).__name__})") from None
    except Exception as exc:  # OSError, HTTPException, ValueError...: FetchError is the only way out
        raise FetchError(f"request failed ({type(exc).__name__})") from None
    finally:
        if resp is not None:
            resp.close()  # with conn.close(), the last holder of the socket: the TLS socket closes here
        conn.close()
