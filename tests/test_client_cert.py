"""Mutual TLS: the `request.client_cert` variables, RFC 8705 certificate-bound tokens, and
their cache safety. Certificates are real (a trustme CA issuing client certificates with
subject alternative names), tokens are really signed, and events are the vendored REST and
HTTP API samples, which carry `clientCert` in the documented shape (their PEMs are AWS's
placeholders; the tests put real ones in the same place)."""

from __future__ import annotations

import base64
import copy
import datetime
import hashlib
import json
import time
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_private_key
from cryptography.x509.oid import NameOID

from ruleauth.runtime.lambda_handler import make_handler
from ruleauth.tools.local_gateway import LocalGateway
from ruleauth.tools.synthetic_events import build_event, client_cert_fields
from tests.cli_support import no_traceback, run_cli, run_json
from tests.conftest import engine_knobs
from tests.jwt_support import AUDIENCE, ISSUER, NOW, claims, default_jwks, ec_key, jwks_bytes, public_jwk, token
from tests.test_cli_validate import MISMATCHED_TEMPLATE

EVENTS = Path(__file__).parent / "fixtures" / "events"
# The vendored events that carry a clientCert, by where the shape keeps it.
REST = "rest-request-multivalue.json"  # requestContext.identity.clientCert
HTTP_V1 = "http-v1-request.json"  # requestContext.identity.clientCert
HTTP_V2 = "http-v2-request-docs.json"  # requestContext.authentication.clientCert
SHAPES = [REST, HTTP_V1, HTTP_V2]
OTHER_ISSUER = "https://plain.example.test"

CA = trustme.CA(organization_name="ruleauth test client CA")


def issue(*names: str) -> str:
    """A client certificate from the test CA, its SANs DNS names and e-mail addresses."""
    return CA.issue_cert(*names, common_name=names[0]).cert_chain_pems[0].bytes().decode("ascii")


def issue_with_uri(uri: str) -> str:
    """A client certificate whose SAN is a URI (trustme issues DNS, IP and e-mail names only),
    signed by the same CA."""
    ca_cert = x509.load_pem_x509_certificate(CA.cert_pem.bytes())
    ca_key = load_pem_private_key(CA.private_key_pem.bytes(), None)
    key = ec_key(n=3)
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "workload")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(0x0A1B2C)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return cert.public_bytes(Encoding.PEM).decode("ascii")


ALICE = issue("alice.clients.example.test", "alice@example.test")
BOB = issue("bob.clients.example.test", "bob@example.test")


def thumbprint(pem: str) -> str:
    der = x509.load_pem_x509_certificate(pem.encode()).public_bytes(Encoding.DER)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def sample(name: str, pem: str | None = None, bearer: str | None = None, raw_cert: object = None) -> dict:
    """A vendored event: its clientCert replaced by the fields for `pem` (or by `raw_cert`, or
    removed when both are None), its credential by `bearer`."""
    event = copy.deepcopy(json.loads((EVENTS / name).read_text()))
    context = event["requestContext"]
    holder = context["authentication"] if name == HTTP_V2 else context["identity"]
    if pem is not None:
        holder["clientCert"] = client_cert_fields(pem)
    elif raw_cert is not None:
        holder["clientCert"] = raw_cert
    else:
        del holder["clientCert"]
    if bearer is not None:
        event["headers"] = {"Authorization": f"Bearer {bearer}"}
        if "multiValueHeaders" in event:
            event["multiValueHeaders"] = {"Authorization": [f"Bearer {bearer}"]}
    return event


CERT_RULES = """\
version: 1
token: {header: Authorization, scheme: Bearer}
cache: {mode: MODE}
context:
  client: request.client_cert.subject_dn
  thumbprint: request.client_cert.fingerprint_sha256
rules:
  - name: clients of the test CA
    route: GET /request
    auth: none
    allow: ALLOW
"""


def cert_rules(allow: str, mode: str = "disabled", extra: str = "") -> str:
    return CERT_RULES.replace("MODE", mode).replace("ALLOW", json.dumps(allow)) + extra


@pytest.mark.parametrize("shape", SHAPES)
def test_the_certificate_variables_come_from_the_event_and_the_pem_on_every_event_shape(authorizer, shape):
    rules = cert_rules(
        "request.client_cert.san_dns == ['alice.clients.example.test']"
        " && request.client_cert.san_email == ['alice@example.test'] && request.client_cert.san_uri == []"
        " && request.client_cert.not_before < now_unix && now_unix < request.client_cert.not_after"
        " && request.client_cert.subject_dn.contains('alice.clients.example.test')"
        " && request.client_cert.serial_number.matches('^[0-9a-f]{2}(:[0-9a-f]{2})*$')"
    )
    auth = authorizer(rules)
    result = auth.authorize(sample(shape, ALICE), now=time.time())
    fields = client_cert_fields(ALICE)
    assert (result.decision.outcome, result.decision.reason) == ("allow", "rule_true")
    assert result.response["context"] == {"client": fields["subjectDN"], "thumbprint": thumbprint(ALICE)}
    # Another client of the same CA is another certificate: its own names and thumbprint.
    other = auth.authorize(sample(shape, BOB), now=time.time())
    assert other.decision.outcome == "deny"
    assert other.response["context"]["thumbprint"] == thumbprint(BOB) != thumbprint(ALICE)


def test_a_uri_san_and_the_validity_times_read_from_the_pem(authorizer):
    pem = issue_with_uri("spiffe://example.test/ns/prod/sa/billing")
    start = int(datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC).timestamp())
    auth = authorizer(
        cert_rules(
            f"request.client_cert.san_uri == ['spiffe://example.test/ns/prod/sa/billing']"
            f" && request.client_cert.san_dns == [] && request.client_cert.not_before == {start}"
            f" && request.client_cert.not_after == {start + 3650 * 86400}"
            " && request.client_cert.serial_number == '0a:1b:2c'"
        )
    )
    assert auth.authorize(sample(REST, pem), now=NOW).decision.reason == "rule_true"


@pytest.mark.parametrize("shape", SHAPES)
def test_without_a_certificate_the_fields_are_absent_and_rules_reading_them_deny(authorizer, shape):
    auth = authorizer(cert_rules("request.client_cert.subject_dn != ''"))
    result = auth.authorize(sample(shape), now=NOW)
    assert (result.decision.outcome, result.decision.reason) == ("deny", "rule_error")
    # Both context values are left out (and logged), not a crash.
    assert "context" not in result.response
    assert sorted(key for key, _ in result.decision.omitted_context) == ["client", "thumbprint"]
    guarded = authorizer(cert_rules("has(request.client_cert.subject_dn)"))
    assert guarded.authorize(sample(shape), now=NOW).decision.reason == "rule_false"
    assert guarded.authorize(sample(shape, ALICE), now=NOW).decision.reason == "rule_true"


BROKEN_PEMS = [
    "CERT_CONTENT",  # AWS's documented placeholder
    ALICE[:200],  # cut short
    ALICE.replace("MII", "MIJ", 1),  # DER that no longer parses
    "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n",
    "-----BEGIN CERTIFICATE-----\n" + "A" * 20000 + "\n-----END CERTIFICATE-----\n",  # over the cap
    "é" + ALICE,  # not ASCII
]


@pytest.mark.parametrize("pem", BROKEN_PEMS, ids=range(len(BROKEN_PEMS)))
@pytest.mark.parametrize("shape", [REST, HTTP_V2])
def test_a_pem_that_does_not_parse_keeps_the_gateway_strings_and_drops_the_pem_fields(authorizer, shape, pem):
    broken = {**client_cert_fields(ALICE), "clientCertPem": pem}
    from_pem = authorizer(cert_rules("request.client_cert.fingerprint_sha256 != ''"))
    result = from_pem.authorize(sample(shape, raw_cert=broken), now=NOW)
    assert (result.decision.outcome, result.decision.reason) == ("deny", "rule_error")
    assert result.response["context"] == {"client": broken["subjectDN"]}
    for name in ("not_before", "not_after", "san_dns", "san_uri", "san_email"):
        assert (
            not authorizer(cert_rules(f"has(request.client_cert.{name})"))
            .authorize(sample(shape, raw_cert=broken), now=NOW)
            .decision.allowed
        )


@pytest.mark.parametrize(
    "raw", [None, "a string", ["a", "list"], {"clientCertPem": 7, "subjectDN": ["x"]}, {"validity": "x"}, {}]
)
def test_a_client_cert_of_the_wrong_form_is_no_certificate_and_never_a_crash(authorizer, raw):
    auth = authorizer(cert_rules("size(request.client_cert) == 0"))
    event = sample(REST)
    event["requestContext"]["identity"]["clientCert"] = raw
    result = auth.authorize(event, now=NOW)
    assert (result.decision.outcome, result.decision.reason) == ("allow", "rule_true")


def test_the_engines_agree_on_the_certificate_variables(authorizer):
    """Whichever engine the process runs (dev.py's passes set RULEAUTH_ENGINE and
    RULEAUTH_CEL_INTERPRETER), the fields have the same values and types."""
    rules = cert_rules(
        "request.client_cert.not_after - request.client_cert.not_before > 86400"
        " && size(request.client_cert.san_dns) == 1"
        " && request.client_cert.san_dns.exists(n, n.endsWith('.example.test'))"
        " && request.client_cert['issuer_dn'].contains('ruleauth test client CA')"
    )
    for environ in ({}, {"RULEAUTH_CEL_INTERPRETER": "1"}, {"RULEAUTH_ENGINE": "cel-expr-python"}):
        auth = authorizer(rules, {**engine_knobs(), **environ})
        assert auth.authorize(sample(HTTP_V2, ALICE), now=NOW).decision.reason == "rule_true", environ


# ------------------------------------------------------------------ load-time checks


def test_an_unknown_certificate_field_is_a_load_error_with_a_suggestion(load_problems):
    problems = load_problems(cert_rules("request.client_cert.subject == 'x'"))
    assert any(
        "unknown field of request.client_cert 'subject'; did you mean 'subject_dn'?" in p.message for p in problems
    )
    problems = load_problems(cert_rules("request.client_certs.subject_dn == 'x'"))
    assert any("did you mean 'client_cert'?" in p.message for p in problems)


@pytest.mark.parametrize("mode", ["identity", "route"])
@pytest.mark.parametrize(
    "where",
    [
        ("allow", "request.client_cert.subject_dn == 'CN=a'"),
        ("context", "request.client_cert.fingerprint_sha256"),
        ("principal", "request.client_cert.subject_dn"),
        ("allow", "size(request.client_cert) > 0"),
    ],
)
def test_reading_the_certificate_under_caching_is_a_load_error_naming_cache_mode_disabled(load_problems, mode, where):
    kind, expression = where
    text = f"""\
    version: 1
    cache: {{mode: {mode}}}
    {"context: {c: " + json.dumps(expression) + "}" if kind == "context" else ""}
    {"principal: " + json.dumps(expression) if kind == "principal" else ""}
    rules:
      - name: r
        route: GET /request
        auth: token
        allow: {json.dumps(expression) if kind == "allow" else "true"}
    """
    problems = load_problems(text)
    messages = [p.message for p in problems if "request.client_cert" in p.message]
    assert messages, [p.message for p in problems]
    assert all("cache.mode: disabled" in m and "identity.clientCert.clientCertPem" in m for m in messages)


@pytest.mark.parametrize("mode", ["identity", "route"])
def test_the_certificate_in_the_cache_key_makes_reading_it_safe(load_rules, load_problems, mode):
    base = """\
    version: 1
    cache: {mode: MODE, sources: {headers: [Authorization], context: [SOURCES]}}
    context: {client: request.client_cert.subject_dn}
    rules:
      - name: r
        route: GET /request
        auth: token
        allow: ALLOW
    """.replace("MODE", mode)

    def text(sources: str, allow: str) -> str:
        return base.replace("SOURCES", sources).replace("ALLOW", json.dumps(allow))

    everything = "request.client_cert.fingerprint_sha256 != '' && 'a' in request.client_cert.san_dns"
    load_rules(text("identity.clientCert.clientCertPem", everything))
    # A field's own identity source fixes that field only.
    load_rules(text("identity.clientCert.subjectDN", "request.client_cert.subject_dn != ''"))
    problems = load_problems(text("identity.clientCert.subjectDN", everything))
    assert any("fingerprint_sha256" in p.message and "cache.mode: disabled" in p.message for p in problems)


def test_a_certificate_bound_provider_under_caching_needs_the_certificate_in_the_cache_key(
    tmp_path, load_problems, load_rules
):
    write_key_sets(tmp_path)
    rules = bound_rules("identity", sources="")
    problems = load_problems(rules)
    assert any("'bound' is certificate_bound" in p.message and "cache.mode: disabled" in p.message for p in problems), [
        p.message for p in problems
    ]
    load_rules(bound_rules("identity", sources="identity.clientCert.clientCertPem"))
    load_rules(bound_rules("disabled", sources=""))


@pytest.mark.parametrize("value", ["yes", "1", "'true'", "[true]"])
def test_certificate_bound_must_be_a_yaml_boolean(tmp_path, load_problems, value):
    write_key_sets(tmp_path)
    problems = load_problems(
        bound_rules("disabled", sources="").replace("certificate_bound: true", f"certificate_bound: {value}")
    )
    assert any("certificate_bound must be true or false" in p.message for p in problems)


# ------------------------------------------------------------------ certificate-bound tokens (RFC 8705)

BOUND_RULES = """\
version: 1
token: {header: Authorization, scheme: Bearer}
cache: {mode: MODE, sources: {headers: [Authorization], context: [SOURCES]}}
jwt:
  - name: bound
    issuer: %s
    audience: [%s]
    jwks_file: corp.json
    certificate_bound: true
  - name: plain
    issuer: %s
    audience: [%s]
    algorithms: [ES256]
    jwks_file: plain.json
context:
  provider: auth.provider
rules:
  - name: bound only
    route: GET /request
    auth: {jwt: [bound]}
    allow: "'read:orders' in scopes"
  - name: either provider
    route: POST /request
    auth: {jwt: [bound, plain]}
    allow: "'read:orders' in scopes"
""" % (ISSUER, AUDIENCE, OTHER_ISSUER, AUDIENCE)


def write_key_sets(directory: Path) -> None:
    (directory / "corp.json").write_bytes(default_jwks())
    (directory / "plain.json").write_bytes(jwks_bytes(public_jwk(ec_key(n=7), "p1")))


def bound_rules(mode: str, sources: str) -> str:
    return BOUND_RULES.replace("MODE", mode).replace("SOURCES", sources)


@pytest.fixture
def bound(tmp_path):
    """bound(mode) → an Authorizer with a certificate-bound and a plain provider."""
    write_key_sets(tmp_path)

    def load(mode: str = "disabled"):
        from ruleauth.runtime.authorizer import Authorizer

        sources = "identity.clientCert.clientCertPem" if mode != "disabled" else ""
        (tmp_path / "rules.yaml").write_text(bound_rules(mode, sources))
        return Authorizer.load(tmp_path / "rules.yaml", environ=engine_knobs())

    return load


def alice_token(**overrides) -> str:
    return token(cnf={"x5t#S256": thumbprint(ALICE)}, **overrides)


def plain_token() -> str:
    return token(ec_key(n=7), alg="ES256", kid="p1", iss=OTHER_ISSUER)


def post(event: dict) -> dict:
    """The same event asking for POST /request (the route both providers may call)."""
    event = copy.deepcopy(event)
    for key in ("methodArn", "routeArn"):
        if key in event:
            event[key] = event[key].replace("/GET/", "/POST/")
    return event


MODES = ["disabled", "identity", "route"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", SHAPES)
def test_the_bound_client_is_allowed_and_any_other_client_with_its_token_is_refused(bound, shape, mode):
    auth = bound(mode)
    stolen = alice_token()
    allowed = auth.authorize(sample(shape, ALICE, stolen), now=NOW + 1)
    assert (allowed.decision.outcome, allowed.decision.reason, allowed.decision.provider) == (
        "allow",
        "rule_true",
        "bound",
    )
    # Twice each, so that the second answer comes through the warm container's caches.
    for _ in range(2):
        other = auth.authorize(sample(shape, BOB, stolen), now=NOW + 1)
        assert (other.decision.outcome, other.decision.reason, other.response) == ("unauthorized", "cnf_mismatch", None)
        none = auth.authorize(sample(shape, None, stolen), now=NOW + 1)
        assert (none.decision.outcome, none.decision.reason) == ("unauthorized", "client_cert_missing")
        unreadable = auth.authorize(
            sample(shape, raw_cert={**client_cert_fields(ALICE), "clientCertPem": "CERT_CONTENT"}, bearer=stolen),
            now=NOW + 1,
        )
        assert unreadable.decision.reason == "client_cert_missing"
        assert auth.authorize(sample(shape, ALICE, stolen), now=NOW + 1).decision.allowed


@pytest.mark.parametrize(
    "cnf, reason",
    [
        (None, "cnf_missing"),
        ({}, "cnf_missing"),
        ("a string", "cnf_missing"),
        ({"x5t#S256": 7}, "cnf_missing"),
        ({"jkt": "a DPoP key thumbprint"}, "cnf_missing"),
        ({"x5t#S256": "AAAA"}, "cnf_mismatch"),
        ({"x5t#S256": thumbprint(ALICE) + "="}, "cnf_mismatch"),  # padded: not the RFC 8705 form
        ({"x5t#S256": thumbprint(ALICE).upper()}, "cnf_mismatch"),
    ],
)
def test_a_token_without_the_presented_certificates_thumbprint_is_refused_with_its_reason(bound, cnf, reason):
    result = bound().authorize(sample(REST, ALICE, token(cnf=cnf)), now=NOW + 1)
    assert (result.decision.outcome, result.decision.reason) == ("unauthorized", reason)


@pytest.mark.parametrize("mode", MODES)
def test_a_route_accepting_a_bound_and_an_unbound_provider_binds_only_the_bound_ones_tokens(bound, mode):
    auth = bound(mode)
    plain = auth.authorize(post(sample(HTTP_V2, None, plain_token())), now=NOW + 1)
    assert (plain.decision.outcome, plain.decision.provider) == ("allow", "plain")
    with_cert = auth.authorize(post(sample(HTTP_V2, BOB, plain_token())), now=NOW + 1)
    assert with_cert.decision.outcome == "allow"
    unbound = auth.authorize(post(sample(HTTP_V2, None, alice_token())), now=NOW + 1)
    assert unbound.decision.reason == "client_cert_missing"
    assert auth.authorize(post(sample(HTTP_V2, ALICE, alice_token())), now=NOW + 1).decision.allowed
    # The plain provider's token is no way into the bound-only route.
    assert auth.authorize(sample(HTTP_V2, ALICE, plain_token()), now=NOW + 1).decision.reason == "jwt_invalid"


def test_each_binding_failure_is_logged_and_counted_under_its_own_reason(bound, capsys):
    authorizer = bound()
    now = int(time.time())
    fresh = {"iat": now - 10, "exp": now + 600}  # the handler decides at the clock's time
    handler = make_handler(authorizer, environ={"RULEAUTH_METRICS": "1"})
    cases = [
        (sample(REST, BOB, alice_token(**fresh)), "cnf_mismatch"),
        (sample(REST, None, alice_token(**fresh)), "client_cert_missing"),
        (sample(REST, ALICE, token(**fresh)), "cnf_missing"),
    ]
    for event, _ in cases:
        capsys.readouterr()
        with pytest.raises(Exception, match=r"^Unauthorized$"):
            handler(event)
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        logged = [line for line in lines if "decision" in line]
        counted = [line for line in lines if "_aws" in line and "Reason" in line]
        assert [(line["decision"], line["reason"]) for line in logged] == [("unauthorized", _)]
        assert [line["Reason"] for line in counted] == [_]
        assert ALICE.splitlines()[1] not in json.dumps(lines)  # no certificate in logs
    assert handler(sample(REST, ALICE, alice_token(**fresh)))["principalId"] == "user-1"


# ------------------------------------------------------------------ dry-run and serve


def write_bound_dir(tmp_path: Path) -> Path:
    write_key_sets(tmp_path)
    rules = bound_rules("disabled", "") + (
        "  - name: names the client\n    route: GET /whoami\n    auth: none\n"
        "    allow: request.client_cert.san_email == ['alice@example.test']\n"
    )
    (tmp_path / "rules.yaml").write_text(
        rules.replace(
            "context:\n  provider: auth.provider\n",
            "context:\n  provider: auth.provider\n  client: request.client_cert.subject_dn\n",
        )
    )
    (tmp_path / "alice.pem").write_text(ALICE)
    (tmp_path / "bob.pem").write_text(BOB)
    return tmp_path


@pytest.mark.parametrize("event_type", ["rest-request", "http-1.0", "http-2.0"])
def test_dry_run_client_cert_builds_the_event_fields_from_a_real_certificate(tmp_path, event_type):
    rules = write_bound_dir(tmp_path)
    args = ("dry-run", str(rules), "--event-type", event_type, "--method", "GET", "--path", "/whoami")
    # The rules name Authorization as an identity source: without it an HTTP API answers 401
    # itself, without calling the authorizer, whatever the cache (docs/apigw-facts.md).
    args += ("-H", "Authorization: not-read-here")
    code, out = run_json(*args, "--client-cert", str(rules / "alice.pem"))
    assert (code, out["decision"], out["reason"]) == (0, "allow", "rule_true")
    assert out["context"]["client"] == client_cert_fields(ALICE)["subjectDN"]
    code, out = run_json(*args, "--client-cert", str(rules / "bob.pem"))
    assert (out["decision"], out["reason"]) == ("deny", "rule_false")
    code, out = run_json(*args)
    assert (out["decision"], out["reason"]) == ("deny", "rule_error")


@pytest.mark.parametrize("event_type", ["rest-request", "http-2.0"])
def test_dry_run_client_cert_with_a_token_checks_its_binding(tmp_path, event_type):
    rules = write_bound_dir(tmp_path)
    bearer = alice_token(iat=int(time.time()) - 10, exp=int(time.time()) + 600)
    args = (
        "dry-run",
        str(rules),
        "--event-type",
        event_type,
        "--method",
        "GET",
        "--path",
        "/request",
        "--token",
        bearer,
    )
    code, out = run_json(*args, "--client-cert", str(rules / "alice.pem"))
    assert (out["decision"], out["reason"]) == ("allow", "rule_true")
    code, out = run_json(*args, "--client-cert", str(rules / "bob.pem"))
    assert (out["decision"], out["reason"], out["status"]) == ("unauthorized", "cnf_mismatch", 401)
    # Offline claims are bound the same way.
    offline = json.dumps(claims(cnf={"x5t#S256": thumbprint(ALICE)}))
    base = ("dry-run", str(rules), "--event-type", event_type, "--method", "GET", "--path", "/request")
    assert run_json(*base, "--claims", offline, "--client-cert", str(rules / "alice.pem"))[1]["decision"] == "allow"
    assert run_json(*base, "--claims", offline)[1]["reason"] == "client_cert_missing"


def test_dry_run_client_cert_fills_an_event_file_and_refuses_what_is_no_certificate(tmp_path):
    rules = write_bound_dir(tmp_path)
    event = sample(REST)
    event["methodArn"] = event["methodArn"].replace("/GET/request", "/GET/whoami")
    (tmp_path / "event.json").write_text(json.dumps(event))
    code, out = run_json(
        "dry-run", str(rules), "--event", str(tmp_path / "event.json"), "--client-cert", str(rules / "alice.pem")
    )
    assert (out["decision"], out["context"]["client"]) == ("allow", client_cert_fields(ALICE)["subjectDN"])
    (tmp_path / "key.pem").write_text(CA.private_key_pem.bytes().decode())
    for bad in (tmp_path / "key.pem", tmp_path / "missing.pem"):
        done = run_cli("dry-run", str(rules), "--method", "GET", "--path", "/whoami", "--client-cert", str(bad))
        no_traceback(done)
        assert done.returncode == 2 and "--client-cert" in done.stderr
    done = run_cli(
        "dry-run",
        str(rules),
        "--event-type",
        "rest-token",
        "--method",
        "GET",
        "--path",
        "/whoami",
        "--client-cert",
        str(rules / "alice.pem"),
    )
    assert done.returncode == 2 and "carry no client certificate" in done.stderr


def test_serve_client_cert_pretends_the_client_sent_it(tmp_path, bound):
    authorizer = bound("identity")
    bearer = alice_token(iat=int(time.time()) - 10, exp=int(time.time()) + 600)
    headers = [("Authorization", f"Bearer {bearer}")]
    as_alice = LocalGateway(authorizer, client_cert=client_cert_fields(ALICE), ttl=300)
    assert as_alice.handle("GET", "/request", headers, b"", "127.0.0.1").status == 200
    assert as_alice.handle("GET", "/request", headers, b"", "127.0.0.1").log.endswith(
        "cache=hit (authorizer not called)"
    )
    as_bob = LocalGateway(authorizer, client_cert=client_cert_fields(BOB), ttl=300)
    assert as_bob.handle("GET", "/request", headers, b"", "127.0.0.1").status == 401
    # The certificate is an identity source here: without one API Gateway answers 401 itself.
    anonymous = LocalGateway(authorizer, ttl=300).handle("GET", "/request", headers, b"", "127.0.0.1")
    assert (
        anonymous.status == 401
        and "identity source missing (context identity.clientCert.clientCertPem)" in anonymous.log
    )


def test_build_event_places_the_certificate_where_each_shape_carries_it():
    fields = client_cert_fields(ALICE)
    assert (
        build_event("rest-request", "GET", "/", client_cert=fields)["requestContext"]["identity"]["clientCert"]
        == fields
    )
    assert build_event("http-1.0", "GET", "/", client_cert=fields)["requestContext"]["identity"]["clientCert"] == fields
    assert build_event("http-2.0", "GET", "/", client_cert=fields)["requestContext"]["authentication"] == {
        "clientCert": fields
    }
    assert "requestContext" not in build_event("rest-token", "GET", "/", client_cert=fields)
    assert fields["validity"]["notBefore"].endswith(" GMT")


@pytest.mark.parametrize("payload, warned", [("TOKEN", True), ("REQUEST", False)])
def test_validate_template_warns_that_a_token_authorizer_gets_no_certificate(tmp_path, payload, warned):
    rules = write_bound_dir(tmp_path)
    template = tmp_path / "template.yaml"
    # The CLI tests' SAM API, its authorizer of the payload type asked.
    template.write_text(MISMATCHED_TEMPLATE.replace("FunctionPayloadType: REQUEST", f"FunctionPayloadType: {payload}"))
    done = run_cli("validate", str(rules / "rules.yaml"), "--template", str(template))
    no_traceback(done)
    message = "is a TOKEN authorizer, whose events carry no client certificate"
    assert (message in done.stdout + done.stderr) == warned, done.stdout + done.stderr
    if warned:
        assert "certificate_bound bound" in done.stdout + done.stderr


KEYED_RULES = """\
version: 1
token: {header: Authorization, scheme: Bearer}
cache: {mode: MODE, sources: {headers: [Authorization], context: [identity.clientCert.clientCertPem]}}
context:
  client: request.client_cert.subject_dn
rules:
  - name: alice only
    route: GET /request
    auth: token
    allow: "'alice.clients.example.test' in request.client_cert.san_dns"
"""


@pytest.mark.parametrize("mode", ["identity", "route"])
@pytest.mark.parametrize("shape", SHAPES)
def test_a_warm_container_answers_each_certificate_for_itself_under_the_same_token(tmp_path, shape, mode):
    # The warm path remembers rule answers under the values each rule reads (caller views):
    # the certificate is one of them, so Bob never gets the answer computed for Alice.
    from ruleauth.runtime.authorizer import Authorizer

    (tmp_path / "rules.yaml").write_text(KEYED_RULES.replace("MODE", mode))
    auth = Authorizer.load(tmp_path / "rules.yaml", environ=engine_knobs())
    for _ in range(3):
        alice = auth.authorize(sample(shape, ALICE, "the-same-token"), now=NOW + 1)
        bob = auth.authorize(sample(shape, BOB, "the-same-token"), now=NOW + 1)
        assert (alice.decision.outcome, bob.decision.outcome) == ("allow", "deny")
        assert alice.decision.context["client"] != bob.decision.context["client"]


def test_every_field_a_rule_may_read_is_one_a_readable_certificate_gives_and_no_other():
    """The compiler's list of request.client_cert fields (what `validate` accepts) and what the
    runtime fills in are one set, for REST and HTTP API events alike."""
    from ruleauth.cel.compiler import CLIENT_CERT_FIELDS
    from ruleauth.runtime import client_cert
    from ruleauth.runtime.events import parse_event

    fields = client_cert_fields(issue("device.partners.example.com", "ops@partners.example.com"))
    for event_type in ("rest-request", "http-1.0", "http-2.0"):
        event = build_event(event_type, "GET", "/hello", client_cert=fields)
        given = client_cert.variables(parse_event(event).client_cert)
        assert set(given) == set(CLIENT_CERT_FIELDS), event_type


def test_each_certificate_identity_source_keys_the_cache_on_the_field_api_gateway_names():
    """An identity source `identity.clientCert.X` must key ruleauth's caches on the event's own
    `clientCert.X`: an attribute that did not exist would key every client alike."""
    from ruleauth.rules.ruleset import CERT_SOURCES
    from ruleauth.runtime.events import parse_event

    fields = client_cert_fields(issue("device.partners.example.com"))
    for event_type in ("rest-request", "http-2.0"):
        cert = parse_event(build_event(event_type, "GET", "/hello", client_cert=fields)).client_cert
        assert cert is not None
        for source, attribute in CERT_SOURCES.items():
            expected: object = fields
            for name in source.split(".")[2:]:  # identity.clientCert.validity.notBefore → validity, notBefore
                assert isinstance(expected, dict)
                expected = expected[name]
            assert expected and getattr(cert, attribute) == expected, (event_type, source)
