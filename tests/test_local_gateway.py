"""`ruleauth serve`: the real server over loopback with a real HTTP client."""

from __future__ import annotations

import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from ruleauth.policy.arn import asked_arn
from ruleauth.policy.iam import ALLOW, EXPLICIT_DENY, evaluate_response
from ruleauth.runtime.authorizer import Authorization, Authorizer
from ruleauth.runtime.events import parse_event
from ruleauth.tools.local_gateway import LocalGateway, make_handler
from ruleauth.tools.synthetic_events import build_event
from tests.cli_support import DEMO, Server, no_traceback, run_cli, serve, write

EXPLICIT = {"Message": "User is not authorized to access this resource with an explicit deny"}
IMPLICIT = {"Message": "User is not authorized to access this resource"}


def test_the_articles_curl_session(tmp_path):
    with serve(tmp_path, str(DEMO)) as server:
        assert server.url.startswith("http://127.0.0.1:")
        status, body = server.json("/hello", headers={"Authorization": "17"})
        assert status == 200 and body == {"principal": "anonymous", "context": {"caller": "odd-number"}}
        status, headers, raw = server.request("/hello", headers={"Authorization": "2"})
        assert status == 403 and json.loads(raw) == EXPLICIT
        assert headers.get("x-amzn-ErrorType") == "AccessDeniedException"
        status, body = server.json("/hello", headers={"Authorization": "abc"})
        assert status == 403 and body["Message"].startswith("User is not authorized")
        status, headers, raw = server.request("/hello")
        assert status == 401 and json.loads(raw) == {"message": "Unauthorized"}
        code, out = server.stop()
        log = server.log()
    assert code in (0, 130)
    assert "stopped" in out
    assert "Traceback" not in log and "Traceback" not in out
    lines = [line for line in log.splitlines() if line.startswith("GET /hello")]
    assert len(lines) == 4
    assert "decision=allow" in lines[0] and "rule='odd numbers only'" in lines[0]
    assert "reason=rule_false" in lines[1] and "reason=rule_error" in lines[2]
    assert "identity source missing" in lines[3] and "without calling the authorizer" in lines[3]
    assert "abc" not in log.replace("abc123", "")  # no credential value in the log


TWO_ROUTES = """
version: 1
token: {header: Authorization}
cache: {mode: identity, sources: {headers: [Authorization]}}
rules:
  - name: a
    route: GET /a
    auth: token
    allow: token == "alice" || token == "bob"
  - name: b
    route: GET /b
    auth: token
    allow: token == "alice"
"""


def expected_from_cache(rules, first_path: str, token: str, second_path: str) -> tuple[int, dict | None]:
    """What API Gateway answers on `second_path` from the response cached on `first_path`."""
    authorizer = Authorizer.load(rules)
    event = build_event("rest-request", "GET", first_path, token=token, token_config=authorizer.ruleset.token)
    response = authorizer.authorize(event).response
    arn = asked_arn(parse_event(build_event("rest-request", "GET", second_path)).arn)
    outcome = evaluate_response(response, arn)
    if outcome == ALLOW:
        return 200, None
    return 403, EXPLICIT if outcome == EXPLICIT_DENY else IMPLICIT


def test_cached_policy_is_re_evaluated_for_a_new_route(tmp_path):
    rules = write(tmp_path / "rules.yaml", TWO_ROUTES)
    with serve(tmp_path, str(rules), "--cache-ttl", "1") as server:
        assert server.json("/a", headers={"Authorization": "bob"})[0] == 200
        status, _, raw = server.request("/b", headers={"Authorization": "bob"})
        expected_status, expected_body = expected_from_cache(rules, "/a", "bob", "/b")
        assert status == expected_status == 403
        assert json.loads(raw) == expected_body
        assert server.json("/b", headers={"Authorization": "alice"})[0] == 200
        status, _, _ = server.request("/a", headers={"Authorization": "alice"})
        assert status == expected_from_cache(rules, "/b", "alice", "/a")[0]
        time.sleep(1.2)  # past the TTL: the authorizer is called again
        assert server.json("/b", headers={"Authorization": "bob"})[0] == 403
        server.stop()
        lines = [line for line in server.log().splitlines() if line.startswith("GET /")]
    assert ["hit" in line for line in lines] == [False, True, False, True, False]
    assert "authorizer not called" in lines[1] and "decision=" not in lines[1]
    assert "decision=deny" in lines[4] and "cache=miss" in lines[4]


def test_cache_ttl_zero_calls_the_authorizer_every_time(tmp_path):
    rules = write(tmp_path / "rules.yaml", TWO_ROUTES)
    with serve(tmp_path, str(rules), "--cache-ttl", "0") as server:
        assert server.json("/a", headers={"Authorization": "bob"})[0] == 200
        status, body = server.json("/b", headers={"Authorization": "bob"})
        assert status == 403 and body == EXPLICIT  # the rule itself denies, not a cached policy
        status, _, _ = server.request("/b")
        assert status == 401  # REST REQUEST without caching: API Gateway calls the authorizer anyway
        server.stop()
        log = server.log()
    assert "cache=hit" not in log and log.count("cache=off") == 2
    assert "401 decision=unauthorized reason=missing_credential" in log


class _Upstream(BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        _Upstream.seen.append({k.lower(): v for k, v in self.headers.items()})
        status = 404 if self.path.startswith("/missing") else 200
        body = json.dumps({"upstream": True, "path": self.path}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        return


@pytest.fixture
def upstream():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Upstream.seen.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_allowed_requests_go_upstream_with_context_headers(tmp_path, upstream):
    with serve(tmp_path, str(DEMO), "--upstream", upstream) as server:
        status, body = server.json("/hello?x=1", headers={"Authorization": "17", "X-Ruleauth-Caller": "forged"})
        assert status == 200 and body == {"upstream": True, "path": "/hello?x=1"}
        seen = _Upstream.seen[-1]
        assert seen["x-ruleauth-principal"] == "anonymous"
        assert seen["x-ruleauth-caller"] == "odd-number"  # the client's forged value is dropped
        assert seen["authorization"] == "17"
        status, _, _ = server.request("/hello", headers={"Authorization": "4"})
        assert status == 403 and len(_Upstream.seen) == 1  # denied requests never reach the backend
        server.stop()


def test_upstream_unreachable_is_502(tmp_path):
    with serve(tmp_path, str(DEMO), "--upstream", "http://127.0.0.1:9") as server:
        status, _, _ = server.request("/hello", headers={"Authorization": "17"})
        assert status == 502
        server.stop()
        assert "upstream unreachable" in server.log()


class _Failing:
    """An authorizer whose handler fails, or returns what API Gateway cannot parse."""

    def __init__(self, mode: str):
        self.real = Authorizer.load(DEMO)
        self.ruleset = self.real.ruleset
        self.mode = mode

    def authorize(self, event, now=None, claims=None):
        if self.mode == "raise":
            raise RuntimeError("boom")
        result = self.real.authorize(event)
        return Authorization(result.decision, {"principalId": "x", "policyDocument": {"Statement": "nope"}})


@pytest.mark.parametrize(
    "mode, logged", [("raise", "raised RuntimeError"), ("malformed", "invalid authorizer response")]
)
def test_handler_failure_is_500_with_the_reason_in_the_log(mode, logged):
    log = io.StringIO()
    gateway = LocalGateway(_Failing(mode))
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(gateway, log))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = Server(None, f"http://127.0.0.1:{server.server_address[1]}", None)  # type: ignore[arg-type]
        status, headers, raw = client.request("/hello", headers={"Authorization": "17"})
    finally:
        server.shutdown()
        server.server_close()
    assert status == 500 and json.loads(raw) == {"message": None}
    assert headers.get("x-amzn-ErrorType") == "AuthorizerConfigurationException"
    assert logged in log.getvalue()


def test_websocket_and_http_api_event_types(tmp_path):
    rules = write(
        tmp_path / "rules.yaml",
        """
        version: 1
        token: {query: key}
        cache: {mode: disabled, sources: {query: [key]}}
        rules:
          - name: connect
            route: $connect
            auth: token
            allow: token == "ok"
          - name: hello
            route: GET /hello
            auth: token
            allow: token == "ok"
    """,
    )
    with serve(tmp_path, str(rules), "--event-type", "websocket") as server:
        assert server.request("/?key=ok")[0] == 200
        assert server.request("/?key=no")[0] == 403
        assert server.request("/")[0] == 401  # WebSocket: a missing identity source is a 401 at the handshake
        server.stop()
    with serve(tmp_path, str(rules), "--event-type", "http-2.0") as server:
        assert server.request("/hello?key=ok")[0] == 200
        assert server.request("/hello?key=no")[0] == 403
        server.stop()


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["/no/such/rules"], 2, "does not exist"),
        ([str(DEMO), "--upstream", "ftp://example"], 2, "http:// or https://"),
        ([str(DEMO), "--cache-ttl", "5000"], 2, "between 0 and 3600"),
        ([str(DEMO), "--port", "70000"], 2, "between 0 and 65535"),
        ([str(DEMO), "--event-type", "grpc"], 2, "invalid choice"),
        ([str(DEMO), "--verbose"], 2, "unrecognized arguments"),
    ],
)
def test_bad_input_is_exit_2(args, code, message):
    done = run_cli("serve", *args, timeout=20)
    no_traceback(done)
    assert done.returncode == code and message in done.stderr


def test_broken_rules_are_3_and_port_in_use_is_2(tmp_path):
    broken = write(tmp_path / "broken.yaml", "version: 2\n")
    done = run_cli("serve", str(broken), timeout=20)
    no_traceback(done)
    assert done.returncode == 3 and "version must be the integer 1" in done.stderr
    holder = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    try:
        done = run_cli("serve", str(DEMO), "--port", str(holder.server_address[1]), timeout=20)
    finally:
        holder.server_close()
    no_traceback(done)
    assert done.returncode == 2 and "cannot listen" in done.stderr


SIMPLE = """
version: 1
token: {header: Authorization}
response: simple
cache: {mode: disabled}
rules:
  - name: hello
    route: GET /hello
    auth: token
    allow: token == "ok"
"""


@pytest.mark.parametrize(
    "rules_text, event_type, credential",
    [
        (SIMPLE, "http-2.0", "ok"),
        (SIMPLE, "http-2.0", "no"),
        (SIMPLE, "http-2.0", None),
        (TWO_ROUTES, "rest-request", "bob"),
        (TWO_ROUTES, "rest-request", "carol"),
        (TWO_ROUTES, "rest-request", None),
    ],
)
def test_serve_answers_with_the_status_and_body_the_authorization_reports(tmp_path, rules_text, event_type, credential):
    # One mapping from response to (status, body): dry-run and `test` report what `serve` answers.
    rules = write(tmp_path / "rules.yaml", rules_text)
    authorizer = Authorizer.load(rules)
    headers = {"Authorization": credential} if credential is not None else {}
    path = "/hello" if rules_text is SIMPLE else "/b"
    authorization = authorizer.authorize(build_event(event_type, "GET", path, headers=headers))
    gateway = LocalGateway(authorizer, event_type=event_type, ttl=0)
    answer = gateway.handle("GET", path, list(headers.items()), b"", "127.0.0.1")
    assert answer.status == authorization.status
    if authorization.status != 200:
        assert json.loads(answer.body) == authorization.body
    if rules_text is SIMPLE and credential == "no":
        assert authorization.body == {"message": "Forbidden"}
