"""Key fetching and caching: one test per row K01-K10 of docs/threats.md.

Misbehaving servers are small HTTPS servers on 127.0.0.1 (tests/oidc/harness.py)
with a throwaway CA trusted through SSL_CERT_FILE; the clock is fake, so cache
lifetimes pass without sleeping.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from typing import Any

import pytest

from ruleauth.jwt.fetch import HttpsFetcher
from ruleauth.jwt.https_client import _resolve
from ruleauth.jwt.keys import FetchError, parse_jwks
from ruleauth.jwt.verifier import JwtError, JwtVerifier
from tests.jwt_support import (
    ISSUER,
    JWKS_URI,
    NOW,
    FakeClock,
    FakeFetcher,
    b64uint,
    default_jwks,
    ec_key,
    forbid_network,
    jwks_bytes,
    provider,
    public_jwk,
    rsa_key,
    token,
)
from tests.oidc.fixtures import *  # noqa: F403
from tests.oidc.harness import FaultServer, endless, redirect, reply, slow_drip


def reason(verifier: JwtVerifier, tok: str) -> str:
    with pytest.raises(JwtError) as info:
        verifier.verify(tok)
    return info.value.reason


def discovery(server: FaultServer, issuer: str | None = None, jwks_path: str = "/jwks") -> dict[str, Any]:
    return {"issuer": issuer or server.base, "jwks_uri": server.url(jwks_path)}


def served_verifier(server: FaultServer, clock: FakeClock, *, discovery_doc: bool = True, **kw: Any) -> JwtVerifier:
    """A verifier whose one provider is `server` (issuer = server.base), real HTTPS fetcher."""
    cfg = provider(issuer=server.base, jwks_uri=None if discovery_doc else server.url("/jwks"))
    kw.setdefault("fetch_timeout", 1.0)
    return JwtVerifier([cfg], clock=clock, **kw)


def test_https_fetcher_reads_from_trusted_server(fault_server: FaultServer) -> None:
    fault_server.routes["/x"] = reply(b'{"ok": true}')
    import time

    body = HttpsFetcher().fetch(fault_server.url("/x"), deadline=time.monotonic() + 2, max_bytes=1024)
    assert json.loads(body) == {"ok": True}


def test_https_fetcher_refuses_untrusted_certificate_and_plain_http(
    fault_server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    fault_server.routes["/x"] = reply(b"{}")
    monkeypatch.delenv("SSL_CERT_FILE")  # back to the system store, which does not know the test CA
    with pytest.raises(FetchError, match="TLS"):
        HttpsFetcher().fetch(fault_server.url("/x"), deadline=time.monotonic() + 2, max_bytes=1024)
    for url in ("http://127.0.0.1/x", "file:///etc/passwd", "https://user:pw@127.0.0.1/x", "ftp://x/"):
        with pytest.raises(FetchError, match="URL"):
            HttpsFetcher().fetch(url, deadline=time.monotonic() + 2, max_bytes=1024)


def test_discovery_and_jwks_over_https(fault_server: FaultServer) -> None:
    fault_server.routes["/.well-known/openid-configuration"] = reply(discovery(fault_server))
    fault_server.routes["/jwks"] = reply(default_jwks())
    clock = FakeClock()
    verifier = served_verifier(fault_server, clock)
    assert fault_server.hits == []  # construction is offline
    assert verifier.verify(token(iss=fault_server.base)).provider == "corp"
    assert fault_server.hits == ["/.well-known/openid-configuration", "/jwks"]
    verifier.verify(token(iss=fault_server.base, alg="ES256", kid="e1"))
    assert len(fault_server.hits) == 2  # cached across calls (warm container)


def test_K01_unknown_issuer_makes_no_outbound_request(monkeypatch: pytest.MonkeyPatch) -> None:
    attempts = forbid_network(monkeypatch)
    verifier = JwtVerifier([provider()])  # the real HTTPS fetcher
    for iss in (
        "http://169.254.169.254/",
        "http://169.254.169.254/latest/meta-data/",
        "https://evil.example",
        "file:///etc/passwd",
    ):
        tok = token(iss=iss, header={"jku": "http://169.254.169.254/jwks", "x5u": "http://127.0.0.1:1/"})
        assert reason(verifier, tok) == "jwt_invalid"
    assert attempts == []
    assert verifier.keys_for("corp").fetch_count == 0


def test_K02_random_kid_storm_refetches_once_per_cooldown() -> None:
    clock = FakeClock()
    fetcher = FakeFetcher({JWKS_URI: default_jwks()})
    verifier = JwtVerifier([provider()], fetcher=fetcher, clock=clock)
    attacker = rsa_key(2048, 5)
    for _ in range(1000):
        assert reason(verifier, token(key=attacker, kid=secrets.token_hex(8))) == "jwt_invalid"
    assert len(fetcher.calls) == 1  # the first (cold) fetch; every refetch is inside its cooldown
    clock.advance(29)
    assert reason(verifier, token(key=attacker, kid="again")) == "jwt_invalid"
    assert len(fetcher.calls) == 1
    clock.advance(1)
    for _ in range(100):
        assert reason(verifier, token(key=attacker, kid=secrets.token_hex(8))) == "jwt_invalid"
    assert len(fetcher.calls) == 2
    assert verifier.verify(token())  # known kids are unaffected


@pytest.mark.parametrize("where", ["body", "headers"])
def test_K03_slow_jwks_cut_at_deadline(fault_server: FaultServer, where: str) -> None:
    fault_server.routes["/.well-known/openid-configuration"] = reply(discovery(fault_server))
    fault_server.routes["/jwks"] = slow_drip(where=where)
    verifier = served_verifier(fault_server, FakeClock(), fetch_timeout=1.0)
    assert reason(verifier, token(iss=fault_server.base)) == "jwks_unavailable"
    # the client hung up on the drip; the server did not finish sending
    assert fault_server.client_gave_up.wait(10)


def test_K03_warm_cache_keeps_serving_while_endpoint_hangs(fault_server: FaultServer) -> None:
    fault_server.routes["/jwks"] = reply(default_jwks())
    clock = FakeClock()
    verifier = served_verifier(fault_server, clock, discovery_doc=False, fetch_timeout=0.5)
    tok = token(iss=fault_server.base, exp=int(NOW) + 7200)
    assert verifier.verify(tok)
    fault_server.routes["/jwks"] = slow_drip()
    clock.advance(301)  # past the lifespan: a refresh is attempted and times out
    assert verifier.verify(tok, now=clock.now)  # `now` skips the verified-token cache
    assert fault_server.hits == ["/jwks", "/jwks"]


@pytest.mark.parametrize("chunked", [True, False])
def test_K04_huge_jwks_cut_at_byte_cap_and_last_good_set_kept(fault_server: FaultServer, chunked: bool) -> None:
    fault_server.routes["/jwks"] = reply(default_jwks())
    clock = FakeClock()
    verifier = served_verifier(fault_server, clock, discovery_doc=False)
    tok = token(iss=fault_server.base, exp=int(NOW) + 7200)
    assert verifier.verify(tok)
    fault_server.routes["/jwks"] = endless(chunked=chunked)
    clock.advance(301)
    assert verifier.verify(tok, now=clock.now)  # the failed refresh did not wipe the cache
    assert fault_server.hits == ["/jwks", "/jwks"]
    # cold, the same server is simply unavailable
    cold = served_verifier(fault_server, FakeClock(), discovery_doc=False)
    assert reason(cold, tok) == "jwks_unavailable"


def test_K04_key_count_cap() -> None:
    many = jwks_bytes(*[public_jwk(ec_key("P-256", i % 3), f"k{i}") for i in range(101)])
    fetcher = FakeFetcher({JWKS_URI: many})
    verifier = JwtVerifier([provider()], fetcher=fetcher, clock=FakeClock())
    assert reason(verifier, token(alg="ES256", kid="k0", key=ec_key("P-256", 0))) == "jwks_unavailable"
    fetcher.routes[JWKS_URI] = jwks_bytes(*[public_jwk(ec_key("P-256", i % 3), f"k{i}") for i in range(100)])
    relaxed = JwtVerifier([provider()], fetcher=fetcher, clock=FakeClock())
    assert relaxed.verify(token(alg="ES256", kid="k0", key=ec_key("P-256", 0)))


def test_K05_server_errors_do_not_wipe_cache_within_stale_window(fault_server: FaultServer) -> None:
    fault_server.routes["/.well-known/openid-configuration"] = reply(discovery(fault_server))
    fault_server.routes["/jwks"] = reply(default_jwks())
    clock = FakeClock()
    verifier = served_verifier(fault_server, clock, lifespan=300, max_stale=3600, cooldown=30)
    far = int(NOW) + 86400

    def fresh() -> str:  # a new token each time, so the verified-token cache does not answer
        return token(iss=fault_server.base, exp=far, jti=secrets.token_hex(4))

    assert verifier.verify(fresh())
    fault_server.routes["/jwks"] = reply(b"oops", status=500)
    fault_server.routes["/.well-known/openid-configuration"] = reply(b"oops", status=503)
    clock.advance(301)
    assert verifier.verify(fresh())  # refresh failed, last good set serves
    clock.advance(3600 - 10)
    assert verifier.verify(fresh())
    clock.advance(20)  # lifespan + max_stale exceeded: no more trust in the old set
    assert reason(verifier, fresh()) == "jwks_unavailable"
    fault_server.routes["/jwks"] = reply(default_jwks())
    fault_server.routes["/.well-known/openid-configuration"] = reply(discovery(fault_server))
    clock.advance(30)  # the next attempt after the cooldown recovers
    assert verifier.verify(fresh())


def test_K06_mixed_jwks_bad_keys_ignored_duplicate_kid_unusable() -> None:
    nums = rsa_key().public_key().public_numbers()
    keyset = jwks_bytes(
        {"kty": "oct", "kid": "h", "k": "c2VjcmV0"},
        {**public_jwk(rsa_key(2048, 3), "enc"), "use": "enc"},
        public_jwk(rsa_key(2048, 0), "dup"),
        public_jwk(ec_key("P-256", 0), "dup"),
        {"kty": "RSA", "kid": "even-n", "n": b64uint(nums.n + 1), "e": "AQAB"},
        {"kty": "RSA", "kid": "junk-n", "n": "!!!", "e": "AQAB"},
        {"kty": "RSA", "kid": "e1", "n": b64uint(nums.n), "e": b64uint(1)},
        {"kty": "EC", "kid": "off-curve", "crv": "P-256", "x": b64uint(1, 32), "y": b64uint(2, 32)},
        {"kty": "RSA", "kid": 7, "n": b64uint(nums.n), "e": "AQAB"},
        "not an object",
        public_jwk(rsa_key(2048, 0), "good"),
        public_jwk(ec_key("P-256", 1), "good-ec"),
    )
    parsed = parse_jwks(keyset)
    assert sorted(k.kid for k in parsed.keys if k.kid) == ["good", "good-ec"]
    assert parsed.by_kid["dup"] is None
    verifier = JwtVerifier([provider()], fetcher=FakeFetcher({JWKS_URI: keyset}), clock=FakeClock())
    assert verifier.verify(token(key=rsa_key(2048, 0), kid="good"))
    assert verifier.verify(token(alg="ES256", key=ec_key("P-256", 1), kid="good-ec"))
    # neither of the two keys published as "dup" wins
    assert reason(verifier, token(key=rsa_key(2048, 0), kid="dup")) == "jwt_invalid"
    assert reason(verifier, token(alg="ES256", key=ec_key("P-256", 0), kid="dup")) == "jwt_invalid"
    assert reason(verifier, token(key=rsa_key(2048, 3), kid="enc")) == "jwt_invalid"
    assert reason(verifier, token(key=rsa_key(), kid="e1")) == "jwt_invalid"


def test_K07_discovery_issuer_mismatch_or_http_jwks_uri_unavailable(fault_server: FaultServer) -> None:
    fault_server.routes["/.well-known/openid-configuration"] = reply(
        discovery(fault_server, issuer="https://evil.example/")
    )
    fault_server.routes["/jwks"] = reply(default_jwks())
    verifier = served_verifier(fault_server, FakeClock())
    assert reason(verifier, token(iss=fault_server.base)) == "jwks_unavailable"
    assert "/jwks" not in fault_server.hits  # never fell back to what the document said
    for variant in (fault_server.base + "/", fault_server.base.upper(), None):
        fault_server.routes["/.well-known/openid-configuration"] = reply(
            {"issuer": variant, "jwks_uri": fault_server.url("/jwks")}
        )
        assert reason(served_verifier(fault_server, FakeClock()), token(iss=fault_server.base)) == "jwks_unavailable"
    fault_server.routes["/.well-known/openid-configuration"] = reply(
        {"issuer": fault_server.base, "jwks_uri": f"http://127.0.0.1:{fault_server.port}/jwks"}
    )
    assert reason(served_verifier(fault_server, FakeClock()), token(iss=fault_server.base)) == "jwks_unavailable"
    assert "/jwks" not in fault_server.hits


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_K08_redirects_refused(fault_server: FaultServer, status: int) -> None:
    fault_server.routes["/.well-known/openid-configuration"] = reply(discovery(fault_server, jwks_path="/moved"))
    fault_server.routes["/moved"] = redirect(fault_server.url("/jwks"), status=status)
    fault_server.routes["/jwks"] = reply(default_jwks())
    verifier = served_verifier(fault_server, FakeClock())
    assert reason(verifier, token(iss=fault_server.base)) == "jwks_unavailable"
    assert "/jwks" not in fault_server.hits
    fault_server.routes["/.well-known/openid-configuration"] = redirect("https://127.0.0.1:1/elsewhere", status=status)
    assert reason(served_verifier(fault_server, FakeClock()), token(iss=fault_server.base)) == "jwks_unavailable"


def test_K09_rotation_new_kid_after_cooldown_old_kid_gone_after_lifespan() -> None:
    old, new = rsa_key(2048, 0), rsa_key(2048, 4)
    clock = FakeClock()
    fetcher = FakeFetcher({JWKS_URI: jwks_bytes(public_jwk(old, "old"))})
    verifier = JwtVerifier([provider()], fetcher=fetcher, clock=clock)
    old_tok = token(key=old, kid="old", exp=int(NOW) + 86400)
    assert verifier.verify(old_tok)
    # the IdP publishes "new" next to "old"; a token with "new" arrives 10 s later
    fetcher.routes[JWKS_URI] = jwks_bytes(public_jwk(old, "old"), public_jwk(new, "new"))
    clock.advance(10)
    new_tok = token(key=new, kid="new", exp=int(NOW) + 86400)
    assert reason(verifier, new_tok) == "jwt_invalid"  # within the cooldown of the last fetch
    clock.advance(20)
    assert verifier.verify(new_tok)  # unknown kid → one refetch → accepted
    assert len(fetcher.calls) == 2
    # then "old" is withdrawn; it keeps working only until the set's lifespan ends
    fetcher.routes[JWKS_URI] = jwks_bytes(public_jwk(new, "new"))
    clock.advance(299)
    assert verifier.verify(old_tok)
    clock.advance(1)
    assert reason(verifier, old_tok) == "jwt_invalid"
    assert verifier.verify(new_tok)


def test_K10_interleaved_requests_are_independent() -> None:
    verifier = JwtVerifier([provider()], fetcher=FakeFetcher({JWKS_URI: default_jwks()}), clock=FakeClock())
    alice = token(sub="alice", groups=["admin"])
    bob = token(sub="bob", groups=["user"])
    first = verifier.verify(alice)
    assert verifier.verify(bob).claims["sub"] == "bob"
    first.claims["groups"].append("root")  # a careless caller mutates its claims
    first.claims["sub"] = "mallory"  # type: ignore[index]
    again = verifier.verify(alice)  # answered from the verified-token cache
    assert again.claims["sub"] == "alice" and again.claims["groups"] == ["admin"]
    assert again.claims is not first.claims
    assert verifier.verify(bob).claims["groups"] == ["user"]
    # nothing about a request lingers on the verifier: only keys, verified-token entries and
    # the introspection provider's client (None here) with its answer cache
    assert set(vars(verifier)) == {
        "_providers",
        "_by_name",
        "_clock",
        "_cache",
        "_introspected",
        "_introspector",
    }
    assert verifier.introspector is None
    assert ISSUER in verifier._providers


BAD_HOSTS = ["bad..host", "a" * 64 + ".example.test", ("a" * 62 + ".") * 4 + "com"]


@pytest.fixture
def thread_errors(monkeypatch: pytest.MonkeyPatch) -> list[type[BaseException]]:
    """Exceptions that escape any thread (each would print a traceback on stderr)."""
    seen: list[type[BaseException]] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: seen.append(args.exc_type))
    return seen


@pytest.mark.parametrize("host", BAD_HOSTS)
def test_a_discovered_jwks_uri_with_a_bad_host_is_jwks_unavailable_logged_and_counted(
    fault_server: FaultServer, host: str, caplog: pytest.LogCaptureFixture, thread_errors: list[Any]
) -> None:
    fault_server.routes["/.well-known/openid-configuration"] = reply(
        {"issuer": fault_server.base, "jwks_uri": f"https://{host}/jwks"}
    )
    verifier = served_verifier(fault_server, FakeClock())
    with caplog.at_level(logging.WARNING, logger="ruleauth.jwt.key_cache"):
        assert reason(verifier, token(iss=fault_server.base)) == "jwks_unavailable"
    failures = [r.getMessage() for r in caplog.records if "jwks fetch for provider corp failed" in r.getMessage()]
    assert len(failures) == 1 and "discovery jwks_uri has a host" in failures[0], failures
    assert verifier.fetch_stats() == {"corp": (1, 1)}
    assert thread_errors == []


@pytest.mark.parametrize("host", BAD_HOSTS)
def test_the_resolver_turns_every_failure_into_a_fetch_error(host: str, thread_errors: list[Any]) -> None:
    # Below the URL check: what getaddrinfo raises for a name IDNA refuses (UnicodeError) is a FetchError too.
    with pytest.raises(FetchError, match="DNS resolution failed"):
        _resolve(host, 443, time.monotonic() + 2)
    assert thread_errors == []


@pytest.mark.parametrize("error", [KeyError("ok"), UnicodeError("label empty or too long"), RuntimeError("bug")])
def test_a_fetcher_raising_anything_is_a_failed_fetch_logged_and_counted(
    error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    verifier = JwtVerifier([provider()], fetcher=FakeFetcher({JWKS_URI: error}), clock=FakeClock())
    with caplog.at_level(logging.WARNING, logger="ruleauth.jwt.key_cache"):
        assert reason(verifier, token()) == "jwks_unavailable"
    assert any(
        f"jwks fetch for provider corp failed: unexpected {type(error).__name__}" in r.getMessage()
        for r in caplog.records
    )
    assert verifier.fetch_stats() == {"corp": (1, 1)}
