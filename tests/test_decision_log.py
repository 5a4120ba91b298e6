"""The decision log: one JSON line per decision with SPEC's fields, and never a secret (A10)."""

import datetime
import importlib
import io
import json
import sys

import pytest

from ruleauth.errors import safe_text
from ruleauth.runtime import decision_log
from ruleauth.tools.synthetic_events import build_event

NOW = 1_800_000_000.0
FIELDS = {"decision", "reason", "rule", "route", "principal", "provider", "latency_ms", "request_id"}

TOKEN = "Q9zX7wV5uT3sR1pOk8Jh"
COOKIE = "K8jH6gF4dS2aL0mNb7Vc"
QUERY_SECRET = "Ww3Ee4Rr5Tt6Yy7Uu8Ii"
HEADER_SECRET = "Zz1Xx2Cc3Vv4Bb5Nn6Mm"

RULES = """\
version: 1
cache: {mode: disabled}
token: {header: Authorization, scheme: Bearer}
principal: "request.headers['x-user']"
context:
  user: "request.headers['x-user']"
rules:
  - name: orders
    route: GET /orders/{id}
    allow: "token.startsWith('Q9') && request.params.id == '1'"
  - name: broken
    route: GET /broken
    allow: "request.headers['x-missing'] == token"
"""


def emitted(result):
    stream = io.StringIO()
    decision_log.emit(decision_log.record(result.decision, result.latency_ms, result.internal_error), stream)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    return lines[0]


def secret_fragments(*secrets, size=6):
    return {s[i : i + size] for s in secrets for i in range(len(s) - size + 1)}


def event(path="/orders/1", token=TOKEN, user="alice", **extra):
    headers = {
        "Authorization": f"Bearer {token}",
        "X-User": user,
        "X-Api-Key": HEADER_SECRET,
        "Cookie": f"session={COOKIE}; theme=dark",
    }
    return build_event("rest-request", "GET", path, headers=headers, query={"access_token": QUERY_SECRET}, **extra)


def test_one_json_line_per_decision_with_the_spec_fields(authorizer):
    result = authorizer(RULES).authorize(event(), now=NOW)
    line = json.loads(emitted(result))
    assert set(line) >= FIELDS
    assert (line["decision"], line["reason"], line["rule"], line["route"], line["principal"]) == (
        "allow",
        "rule_true",
        "orders",
        "GET /orders/{id}",
        "alice",
    )
    assert line["request_id"] == "dry-run" and isinstance(line["latency_ms"], (int, float))


def test_cel_errors_log_the_error_class_only(authorizer):
    result = authorizer(RULES).authorize(event("/broken"), now=NOW)
    line = json.loads(emitted(result))
    assert (line["reason"], line["error_class"], line["level"]) == ("rule_error", "KeyError", "WARNING")
    assert "x-missing" not in emitted(result)


@pytest.mark.parametrize("path", ["/orders/1", "/orders/2", "/broken", "/nowhere"])
def test_A10_no_fragment_of_any_secret_appears_in_the_log(authorizer, path):
    auth = authorizer(RULES)
    results = [
        auth.authorize(event(path), now=NOW),
        auth.authorize(event(path, token=TOKEN + " extra"), now=NOW),
        auth.authorize(build_event("rest-token", "GET", path, headers={"Authorization": f"Bearer {TOKEN}"}), now=NOW),
    ]
    text = "\n".join(emitted(r) for r in results)
    leaked = {f for f in secret_fragments(TOKEN, COOKIE, QUERY_SECRET, HEADER_SECRET) if f in text}
    assert not leaked, text


def test_A10_unauthorized_decisions_do_not_log_the_refused_credential(authorizer):
    auth = authorizer(RULES)
    twice = event()
    twice["multiValueHeaders"]["Authorization"] = [f"Bearer {TOKEN}", f"Bearer {TOKEN[::-1]}"]
    result = auth.authorize(twice, now=NOW)
    assert result.response is None
    text = emitted(result)
    assert not {f for f in secret_fragments(TOKEN, TOKEN[::-1]) if f in text}


INJECTED = (
    'evil\n{"decision":"allow"}\r\x1b[31mred\x1b[0m\u2028' + "A" * 200
)  # under the 256-char principal limit, over the 128-char log cut


def test_A10_caller_strings_are_escaped_and_cut_at_128_characters(authorizer):
    result = authorizer(RULES).authorize(event(user=INJECTED), now=NOW)
    text = emitted(result)
    assert "\n" not in text.rstrip("\n") and "\r" not in text and "\x1b" not in text and "\u2028" not in text
    line = json.loads(text)
    assert len(line["principal"]) <= 128 and line["principal"].startswith("evil\\n")
    assert line["decision"] == "allow"  # the injected `"decision":"allow"` stayed inside a string


def test_A10_request_ids_are_escaped_too(authorizer):
    bad = event()
    bad["requestContext"]["requestId"] = "id\n\x1b[2J" + "x" * 500
    line = json.loads(emitted(authorizer(RULES).authorize(bad, now=NOW)))
    assert line["request_id"].startswith("id\\n\\x1b") and len(line["request_id"]) <= 128


@pytest.mark.parametrize("value", ["plain", "line\nbreak", "\x1b[31m", "é", "\u2028", 42, None, "x" * 1000])
def test_safe_text_is_printable_ascii_and_at_most_128(value):
    text = decision_log.safe_text(value)
    assert len(text) <= 128 and text.isascii() and text.isprintable()


HOSTILE = {
    "newlines": "a\nb\r\nc\u2028d\u0085e",
    "escape sequences": "\x1b[2J\x1b]0;title\x07",
    "quotes": 'it\'s "quoted" \\ back',
    "a lone surrogate": "x\ud800y",
    "10 KiB": "\x1b" * 10 * 1024,
    "non-ASCII": "é\u200b\U0001f600",
}


@pytest.mark.parametrize(
    "value",
    [*HOSTILE.values(), 10**5000, None, b"bytes"],
    ids=[*HOSTILE, "a 5000-digit int", "None", "bytes"],
)
@pytest.mark.parametrize("quoted", [True, False], ids=["in a message", "as a log field"])
def test_hostile_text_comes_out_as_one_bounded_ascii_line_in_messages_and_log_fields(value, quoted):
    text = safe_text(value, 40, quoted=quoted)
    assert text.isascii() and text.isprintable()
    body = text[1:-1] if quoted and isinstance(value, str) else text
    assert len(body) <= 40
    if not isinstance(value, str):
        assert text == f"<{type(value).__name__}>"  # never str() or repr() of the value
    elif len(value.encode("unicode_escape")) > 40:
        assert body.endswith("...")
    if quoted and isinstance(value, str):
        assert text[0] == text[-1] == "'" and "'" not in body.replace("\\'", "")


def test_the_log_line_and_a_jwt_error_cut_the_same_hostile_text_the_same_way(authorizer):
    from ruleauth.jwt import verifier  # its messages quote token text with the same function

    hostile = HOSTILE["escape sequences"] + "A" * 300
    assert verifier.safe_text is safe_text
    assert decision_log.safe_text(hostile) == safe_text(hostile, 128, quoted=False)
    line = json.loads(emitted(authorizer(RULES).authorize(event(user=hostile[:250]), now=NOW)))
    assert line["principal"] == safe_text(hostile[:250], 128, quoted=False)


def test_log_level_filters_info_lines(monkeypatch, authorizer):
    result = authorizer(RULES).authorize(event(), now=NOW)
    stream = io.StringIO()
    monkeypatch.setenv("RULEAUTH_LOG_LEVEL", "WARNING")
    decision_log.emit(decision_log.record(result.decision, 1.0), stream)
    assert stream.getvalue() == ""
    monkeypatch.setenv("RULEAUTH_LOG_LEVEL", "DEBUG")
    decision_log.emit(decision_log.record(result.decision, 1.0), stream)
    assert len(stream.getvalue().splitlines()) == 1


def test_A10_the_handler_writes_exactly_one_clean_line_per_invocation(write_rules, monkeypatch, capsys):
    monkeypatch.setenv("RULEAUTH_RULES", str(write_rules(RULES)))
    monkeypatch.setenv("RULEAUTH_LOG_LEVEL", "INFO")
    monkeypatch.delenv("RULEAUTH_RESPONSE", raising=False)
    sys.modules.pop("ruleauth.handler", None)
    try:
        handler = importlib.import_module("ruleauth.handler")
        capsys.readouterr()
        assert handler.handler(event(), None)["principalId"] == "alice"
        with pytest.raises(Exception, match=r"^Unauthorized$"):
            handler.handler(event(token="two words"), None)
        handler.handler(event("/broken", user=INJECTED), None)
        handler.handler({"junk": True}, None)
    finally:
        sys.modules.pop("ruleauth.handler", None)
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert len(lines) == 4 and [json.loads(x)["decision"] for x in lines] == ["allow", "unauthorized", "deny", "deny"]
    everything = out.out + out.err
    assert not {f for f in secret_fragments(TOKEN, COOKIE, QUERY_SECRET, HEADER_SECRET) if f in everything}
    assert "\x1b" not in everything


# --- Powertools-shaped records (docs/logging.md) ---------------------------------------------

TRACE_HEADER = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


def lambda_context(request_id="8476a536-e9f4-11e8-9739-2dfe598c3fcd"):
    from awslambdaric.lambda_context import LambdaContext  # the runtime's own context class

    return LambdaContext(request_id, None, None, 0, "arn:aws:lambda:eu-west-1:123456789012:function:authz")


def test_decision_lines_carry_powertools_fields_from_the_context_the_trace_header_and_the_environment(
    authorizer, monkeypatch
):
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "authz")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
    monkeypatch.setenv("_X_AMZN_TRACE_ID", TRACE_HEADER)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "orders-authz")
    stream = io.StringIO()
    log = decision_log.DecisionLog(stream=stream)
    auth = authorizer(RULES)
    for _ in range(2):
        result = auth.authorize(event(), now=NOW)
        log.write(result.decision, result.latency_ms, None, lambda_context())
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert set(first) >= FIELDS
    assert {k: first[k] for k in ("level", "message", "service", "function_name", "function_memory_size")} == {
        "level": "INFO",
        "message": "ruleauth decision",
        "service": "orders-authz",
        "function_name": "authz",
        "function_memory_size": 1024,
    }
    assert first["function_arn"] == "arn:aws:lambda:eu-west-1:123456789012:function:authz"
    assert first["function_request_id"] == "8476a536-e9f4-11e8-9739-2dfe598c3fcd"
    assert first["xray_trace_id"] == "1-5759e988-bd862e3fe1be46a994272793"
    assert (first["cold_start"], second["cold_start"]) == (True, False)
    stamp = datetime.datetime.strptime(first["timestamp"], "%Y-%m-%dT%H:%M:%S.%f%z")
    assert stamp.utcoffset() == datetime.timedelta(0) and len(first["timestamp"]) == len("2026-01-01T00:00:00.000Z")
    assert list(first)[:3] == ["level", "message", "timestamp"]


@pytest.mark.parametrize(
    "env, service",
    [
        ({}, "ruleauth"),
        ({"RULEAUTH_SERVICE": "gw"}, "gw"),
        ({"RULEAUTH_SERVICE": "gw", "POWERTOOLS_SERVICE_NAME": "pt"}, "pt"),
        ({"POWERTOOLS_SERVICE_NAME": " ", "RULEAUTH_SERVICE": "gw"}, "gw"),
    ],
)
def test_the_service_is_powertools_then_ruleauth_then_the_default(env, service):
    assert decision_log.service_name(env) == service


@pytest.mark.parametrize(
    "header, root",
    [
        (TRACE_HEADER, "1-5759e988-bd862e3fe1be46a994272793"),
        ("Parent=53995c3f42cd8ad8;Root=1-abc;Sampled=0", "1-abc"),
        ("Sampled=1", None),
        ("", None),
        (None, None),
    ],
)
def test_the_xray_trace_id_is_the_root_of_the_trace_header(header, root):
    assert decision_log.xray_trace_id(header) == root


@pytest.mark.parametrize("level, written", [("TRACE", 2), ("DEBUG", 2), ("INFO", 2), ("WARN", 1), ("FATAL", 0)])
def test_lambdas_own_log_levels_filter_the_decision_lines(authorizer, monkeypatch, level, written):
    monkeypatch.delenv("RULEAUTH_LOG_LEVEL", raising=False)
    monkeypatch.setenv("AWS_LAMBDA_LOG_LEVEL", level)
    stream = io.StringIO()
    log = decision_log.DecisionLog(stream=stream)
    auth = authorizer(RULES)
    for path in ("/orders/1", "/broken"):  # an INFO line and a WARNING line
        result = auth.authorize(event(path), now=NOW)
        log.write(result.decision, result.latency_ms)
    assert len(stream.getvalue().splitlines()) == written
