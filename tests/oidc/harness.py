"""Test servers on 127.0.0.1: the real OpenID provider (node oidc-provider) and
small hand-written HTTPS servers that misbehave on purpose (slow, huge, redirecting,
failing, lying about the issuer).

Both serve a certificate from a throwaway `trustme` CA; tests trust it through
SSL_CERT_FILE, the same variable a deployment would use.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import trustme

OIDC_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class TlsFiles:
    ca_pem: Path
    cert_pem: Path
    key_pem: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert_pem, self.key_pem)
        return ctx


def make_tls(directory: Path) -> TlsFiles:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    files = TlsFiles(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    ca.cert_pem.write_to_path(str(files.ca_pem))
    cert.cert_chain_pems[0].write_to_path(str(files.cert_pem))
    cert.private_key_pem.write_to_path(str(files.key_pem))
    return files


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- fault-injection server

Handler = Callable[[BaseHTTPRequestHandler, "FaultServer"], None]


def reply(body: bytes | str | dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Handler:
    if isinstance(body, dict):
        body = json.dumps(body)
    data = body.encode() if isinstance(body, str) else body

    def handle(req: BaseHTTPRequestHandler, server: FaultServer) -> None:
        req.send_response(status)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            req.send_header(name, value)
        req.end_headers()
        req.wfile.write(data)

    return handle


def redirect(location: str, status: int = 302) -> Handler:
    return reply(b"", status=status, headers={"Location": location})


def slow_drip(where: str = "body", interval: float = 0.05, total_bytes: int = 100_000) -> Handler:
    """Sends one byte per `interval`, in the status line or the body, until the client hangs up."""

    def handle(req: BaseHTTPRequestHandler, server: FaultServer) -> None:
        try:
            if where == "headers":
                line = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * total_bytes
                stream = line
            else:
                req.send_response(200)
                req.send_header("Content-Length", str(total_bytes))
                req.end_headers()
                req.wfile.flush()
                stream = b" " * total_bytes
            for i in range(len(stream)):
                if server.stopping.is_set():
                    return
                req.wfile.write(stream[i : i + 1])
                req.wfile.flush()
                time.sleep(interval)
        except OSError:
            server.client_gave_up.set()

    return handle


def endless(chunk: int = 64 * 1024, limit: int = 100 * 1024 * 1024, chunked: bool = True) -> Handler:
    """A body of up to `limit` bytes (a 100 MB JWKS), streamed until the client hangs up."""

    def handle(req: BaseHTTPRequestHandler, server: FaultServer) -> None:
        req.send_response(200)
        req.send_header("Content-Type", "application/json")
        if chunked:
            req.send_header("Transfer-Encoding", "chunked")
        else:
            req.send_header("Content-Length", str(limit))
        req.end_headers()
        piece = b'{"keys":[' + b" " * (chunk - 9)
        sent = 0
        try:
            while sent < limit and not server.stopping.is_set():
                data = piece if sent == 0 else b" " * chunk
                if chunked:
                    req.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                else:
                    req.wfile.write(data)
                sent += len(data)
        except OSError:
            server.client_gave_up.set()
            return
        server.bytes_sent = sent

    return handle


class _RequestHandler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.server.owner.posts.append((self.path, dict(self.headers.items()), self.rfile.read(length)))
        self.do_GET()

    def do_GET(self) -> None:
        fault = self.server.owner
        fault.hits.append(self.path)
        route = fault.routes.get(self.path)
        if route is None:
            reply({"error": "not found"}, status=404)(self, fault)
        else:
            route(self, fault)
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: FaultServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hanging up mid-response is the point of several tests


@dataclass
class FaultServer:
    """An HTTPS server on 127.0.0.1 whose routes tests set per path."""

    tls: TlsFiles
    routes: dict[str, Handler] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)
    posts: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)  # path, headers, body
    stopping: threading.Event = field(default_factory=threading.Event)
    client_gave_up: threading.Event = field(default_factory=threading.Event)
    bytes_sent: int = 0

    def start(self) -> FaultServer:
        self._httpd = _Server(("127.0.0.1", 0), _RequestHandler)
        self._httpd.owner = self
        ctx = self.tls.server_context()
        # Handshake in the handler thread, so one slow client cannot block accept().
        self._httpd.socket = ctx.wrap_socket(self._httpd.socket, server_side=True, do_handshake_on_connect=False)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fault-server", daemon=True
        )
        self._thread.start()
        return self

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base + path

    def stop(self) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()


# ---------------------------------------------------------------- the real OpenID provider


class OidcProviderNotInstalled(RuntimeError):
    pass


@dataclass
class OidcProvider:
    """panva/oidc-provider run by node as a subprocess, over HTTPS on a fixed port."""

    tls: TlsFiles
    workdir: Path
    port: int = field(default_factory=free_port)
    audience: str = "https://api.example.test"
    process: subprocess.Popen[bytes] | None = None

    @property
    def issuer(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self, private_jwks: dict[str, Any], timeout: float = 30.0) -> None:
        node = shutil.which("node")
        if node is None or not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
            raise OidcProviderNotInstalled(
                "the OpenID provider is not installed: run tests/oidc/setup.sh (needs node >= 20 and npm)"
            )
        keys_path = self.workdir / f"keys-{time.monotonic_ns()}.json"
        keys_path.write_text(json.dumps(private_jwks))
        log_path = self.workdir / "provider.log"
        self._log = open(log_path, "ab")  # noqa: SIM115 -- the provider writes it until stop() closes it
        self.process = subprocess.Popen(
            [
                node,
                str(OIDC_DIR / "provider.mjs"),
                "--port",
                str(self.port),
                "--issuer",
                self.issuer,
                "--jwks",
                str(keys_path),
                "--cert",
                str(self.tls.cert_pem),
                "--key",
                str(self.tls.key_pem),
                "--audience",
                self.audience,
            ],
            cwd=OIDC_DIR,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env={**os.environ, "NODE_ENV": "test"},
        )
        assert self.process.stdout is not None
        ready = threading.Event()

        def watch() -> None:
            assert self.process is not None and self.process.stdout is not None
            for line in self.process.stdout:
                if line.startswith(b"READY "):
                    ready.set()

        threading.Thread(target=watch, name="oidc-provider-stdout", daemon=True).start()
        deadline = time.monotonic() + timeout
        while not ready.wait(0.05):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the OpenID provider did not start; see {log_path}")

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None

    def restart(self, private_jwks: dict[str, Any]) -> None:
        """Stop and start again on the same port with another key set (key rotation)."""
        self.stop()
        self.start(private_jwks)

    @property
    def introspection_endpoint(self) -> str:
        return self.issuer + "/token/introspection"

    def revoke(self, token: str, client_id: str, client_secret: str) -> None:
        """Revokes `token` at the provider's revocation endpoint (RFC 7009), as its client."""
        import urllib.parse
        import urllib.request

        ctx = ssl.create_default_context(cafile=str(self.tls.ca_pem))
        body = urllib.parse.urlencode(
            {"token": token, "token_type_hint": "access_token", "client_id": client_id, "client_secret": client_secret}
        ).encode()
        req = urllib.request.Request(self.issuer + "/token/revocation", data=body, method="POST")
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            assert resp.status == 200

    def client_credentials_token(self, client_id: str, client_secret: str, scope: str = "read:orders") -> str:
        """An access token from the provider's token endpoint (stdlib client; trusts the test CA)."""
        import urllib.parse
        import urllib.request

        ctx = ssl.create_default_context(cafile=str(self.tls.ca_pem))
        body = urllib.parse.urlencode(
            {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret, "scope": scope}
        ).encode()
        req = urllib.request.Request(self.issuer + "/token", data=body, method="POST")
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            return json.load(resp)["access_token"]
