"""Key sets fetched from the servers identity providers run, over real HTTPS on 127.0.0.1.

Two servers, started by these tests with a certificate from the throwaway test CA:
  * a stock Node `https.createServer` (tests/servers/jwks-server.mjs, Node's built-in
    `https` module only) answering `Connection: close`, with the body chunked or with a
    Content-Length;
  * Python's `http.server` speaking HTTP/1.0: the body ends when the server closes
    (no length), or has a Content-Length.
Each writes the body in pieces of a chosen size, so the client sees it arrive in many
writes. Every body up to the byte cap must be read whole, whatever the framing; one
byte more is refused.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from ruleauth.jwt.fetch import HttpsFetcher
from ruleauth.jwt.keys import DEFAULT_MAX_BYTES, FetchError
from ruleauth.runtime.authorizer import Authorizer
from ruleauth.tools.synthetic_events import build_event
from tests.jwt_support import AUDIENCE, ISSUER, NOW, ec_key, public_jwk, rsa_key, token
from tests.oidc.fixtures import *  # noqa: F403
from tests.oidc.harness import TlsFiles

NODE_SERVER = Path(__file__).resolve().parent / "servers" / "jwks-server.mjs"
CAP = DEFAULT_MAX_BYTES

# (body bytes, bytes per write): the extremes of both, and sizes either side of the
# 8 KiB read buffer and the 16 KiB TLS record. One-byte writes stay on small bodies,
# where they already mean thousands of writes, so the test stays fast.
SIZES_AND_WRITES = [
    (1024, 1),
    (1024, 16384),
    (8 * 1024 + 1, 1),
    (20 * 1024, 100),
    (64 * 1024, 7),
    (64 * 1024, 1),
    (CAP, 1024),
    (CAP, 16384),
]

# server, framing: how the body's end is known
FRAMINGS = [
    ("node", "chunked"),  # Connection: close, Transfer-Encoding: chunked
    ("node", "length"),  # Connection: close, Content-Length
    ("python10", "close"),  # HTTP/1.0, no length: the body ends when the server closes
    ("python10", "length"),  # HTTP/1.0, Content-Length
]


# ---------------------------------------------------------------- the servers


class _Http10Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    server: _Http10Server

    def do_GET(self) -> None:
        _, framing, write, name = self.path.split("/")
        path = self.server.body_dir / Path(name).name
        if not path.is_file():
            self.send_error(404)
            return
        body, size = path.read_bytes(), int(write)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if framing == "length":
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        for offset in range(0, len(body), size):  # wfile is unbuffered: one send per piece
            self.wfile.write(body[offset : offset + size])

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Http10Server(ThreadingHTTPServer):
    daemon_threads = True
    body_dir: Path


@pytest.fixture(scope="module")
def body_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bodies")


@pytest.fixture(scope="module")
def python10_server(tls_files: TlsFiles, body_dir: Path) -> Iterator[str]:
    httpd = _Http10Server(("127.0.0.1", 0), _Http10Handler)
    httpd.body_dir = body_dir
    httpd.socket = tls_files.server_context().wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def node_server(tls_files: TlsFiles, body_dir: Path) -> Iterator[str]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    proc = subprocess.Popen(
        [
            node,
            str(NODE_SERVER),
            "--cert",
            str(tls_files.cert_pem),
            "--key",
            str(tls_files.key_pem),
            "--dir",
            str(body_dir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        assert line.startswith("READY "), f"the node server did not start ({proc.poll()})"
        yield f"https://127.0.0.1:{int(line.split()[1])}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture
def servers(node_server: str, python10_server: str, trust_test_ca: TlsFiles) -> dict[str, str]:
    return {"node": node_server, "python10": python10_server}


# ---------------------------------------------------------------- bodies


def padded_jwks(size: int) -> bytes:
    """A key set of exactly `size` bytes: one real key and a padding member."""
    doc = {"keys": [public_jwk(ec_key("P-256", 0), "e1")], "padding": ""}
    empty = len(json.dumps(doc).encode())
    assert size >= empty
    doc["padding"] = "x" * (size - empty)
    data = json.dumps(doc).encode()
    assert len(data) == size
    return data


def fetch(url: str, max_bytes: int = CAP) -> bytes:
    # A generous deadline: these tests are about framing, the deadline has its own tests.
    return HttpsFetcher().fetch(url, deadline=time.monotonic() + 30, max_bytes=max_bytes)


@pytest.mark.parametrize("server,framing", FRAMINGS)
@pytest.mark.parametrize("size,write", SIZES_AND_WRITES)
def test_every_body_up_to_the_cap_is_read_whole_whatever_the_framing_and_writes(
    servers: dict[str, str], body_dir: Path, server: str, framing: str, size: int, write: int
) -> None:
    name = f"body-{size}.json"
    if not (body_dir / name).exists():
        (body_dir / name).write_bytes(padded_jwks(size))
    body = fetch(f"{servers[server]}/{framing}/{write}/{name}")
    assert body == (body_dir / name).read_bytes()


@pytest.mark.parametrize("server,framing", FRAMINGS)
def test_a_body_one_byte_over_the_cap_is_refused_whatever_the_framing(
    servers: dict[str, str], body_dir: Path, server: str, framing: str
) -> None:
    name = "over-cap.json"
    if not (body_dir / name).exists():
        (body_dir / name).write_bytes(padded_jwks(CAP + 1))
    with pytest.raises(FetchError, match="larger than the cap"):
        fetch(f"{servers[server]}/{framing}/16384/{name}")


# ---------------------------------------------------------------- a provider's real key set


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, public_key: Any, issuer: str, signer: Any, ca: bool) -> x509.Certificate:
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(signer, hashes.SHA256())
    )


@pytest.fixture(scope="module")
def provider_key_set() -> bytes:
    """12 RSA signing keys, each with an x5c chain (its certificate, then the CA's), as large IdPs publish."""
    ca_key = ec_key("P-384", 7)
    ca = _cert("Test IdP Token Signing CA", ca_key.public_key(), "Test IdP Token Signing CA", ca_key, True)
    ca_der = ca.public_bytes(Encoding.DER)
    keys = []
    for i in range(12):
        leaf = _cert(f"idp-signing-{i}", rsa_key(2048, i).public_key(), "Test IdP Token Signing CA", ca_key, False)
        der = leaf.public_bytes(Encoding.DER)
        jwk = public_jwk(rsa_key(2048, i), f"signing-{i}", alg="RS256")
        jwk["x5c"] = [base64.b64encode(der).decode(), base64.b64encode(ca_der).decode()]
        jwk["x5t#S256"] = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()
        jwk["issuer"] = ISSUER
        keys.append(jwk)
    data = json.dumps({"keys": keys}, indent=2).encode()
    assert 20 * 1024 <= len(data) <= CAP  # bigger than a TLS record and the 8 KiB read buffer
    return data


RULES = """\
version: 1
token: {header: Authorization, scheme: Bearer}
jwt:
  issuer: %s
  audience: [%s]
  algorithms: [RS256]
  jwks_uri: %s
principal: claims.sub
rules:
  - name: read
    route: GET /orders/{id}
    allow: "'read:orders' in scopes"
"""


@pytest.mark.parametrize("server,framing,write", [(s, f, w) for s, f in FRAMINGS for w in (1024, 16384)])
def test_a_token_signed_by_a_large_providers_key_set_is_allowed_end_to_end(
    servers: dict[str, str],
    body_dir: Path,
    provider_key_set: bytes,
    tmp_path: Path,
    server: str,
    framing: str,
    write: int,
) -> None:
    (body_dir / "idp-keys.json").write_bytes(provider_key_set)
    uri = f"{servers[server]}/{framing}/{write}/idp-keys.json"
    (tmp_path / "rules.yaml").write_text(RULES % (ISSUER, AUDIENCE, uri))
    authorizer = Authorizer.load(tmp_path / "rules.yaml")  # nothing cached: the first request fetches
    bearer = token(key=rsa_key(2048, 7), kid="signing-7")
    event = build_event("rest-request", "GET", "/orders/1", headers={"Authorization": f"Bearer {bearer}"})
    result = authorizer.authorize(event, now=NOW + 1)
    assert (result.decision.outcome, result.decision.principal) == ("allow", "user-1"), result.decision.reason
    assert authorizer.verifier.fetch_stats() == {"default": (1, 0)}
