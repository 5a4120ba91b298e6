"""Keys that must never verify, and keys listed more than once.

Every degenerate key kind is refused: as a load error naming file:line in
`ruleauth validate` when bundled (`jwks_file`), dropped (logged once, the other
keys still usable) when it comes in a remote key set. The small-order encodings
are the ones listed in docs/keys.md: Wycheproof's eight canonical Ed25519 ones,
and for both curves the variants derived here by the rules written there
(y + p where that still fits, the sign bit on a point whose x is 0).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed448, ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ruleauth.jwt.keys import JwksFormatError, parse_jwk, parse_jwks
from ruleauth.jwt.verifier import JwtError, JwtVerifier, provider_problems
from tests.cli_support import no_traceback, run_cli, run_json
from tests.jwt_support import (
    JWKS_URI,
    NOW,
    FakeClock,
    FakeFetcher,
    b64,
    b64uint,
    claims,
    ec_key,
    ed_key,
    forge,
    jwks_bytes,
    provider,
    public_jwk,
    rsa_key,
    token,
)

P25519 = 2**255 - 19
P448 = 2**448 - 2**224 - 1

# Wycheproof ed25519_test.json, SmallOrderPublicKey (tcId 152-159): all 8 small-order points.
ED25519_SMALL_ORDER_CANONICAL = [
    "0100000000000000000000000000000000000000000000000000000000000000",  # identity
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # order 2: y = -1
    "0000000000000000000000000000000000000000000000000000000000000000",  # order 4: y = 0
    "0000000000000000000000000000000000000000000000000000000000000080",  # order 4, other x
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",  # order 8
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
]


def _enc(y: int, sign: int, size: int) -> bytes:
    return (y | sign << (8 * size - 1)).to_bytes(size, "little")


def _ed25519_small_order() -> dict[str, bytes]:
    out = {f"canonical-{i}": bytes.fromhex(h) for i, h in enumerate(ED25519_SMALL_ORDER_CANONICAL)}
    for y in (0, 1):  # y + p < 2**255 only for y < 19; of the small-order y values, 0 and 1
        for sign in (0, 1):
            out[f"y={y}+p,sign={sign}"] = _enc(y + P25519, sign, 32)
    for y in (1, P25519 - 1):  # x = 0: the sign bit set is a "negative zero"
        out[f"y={'1' if y == 1 else '-1'},x=-0"] = _enc(y, 1, 32)
    return out


def _ed448_small_order() -> dict[str, bytes]:
    # edwards448 (cofactor 4): identity (0, 1), order 2 (0, -1), order 4 (±1, 0); x = 1 is odd.
    out = {
        "identity": _enc(1, 0, 57),
        "order-2": _enc(P448 - 1, 0, 57),
        "order-4,x=1": _enc(0, 1, 57),
        "order-4,x=-1": _enc(0, 0, 57),
    }
    for y in (1, P448 - 1):
        out[f"y={'1' if y == 1 else '-1'},x=-0"] = _enc(y, 1, 57)
    for y in (0, 1):
        for sign in (0, 1):
            out[f"y={y}+p,sign={sign}"] = _enc(y + P448, sign, 57)
    return out


def _raw(public: Any) -> bytes:
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _with_order_two(data: bytes) -> bytes:
    """An honest point plus the order-2 point (0, -1): (x, y) -> (-x, -y), a mixed-order key."""
    size, p = len(data), (P25519 if len(data) == 32 else P448)
    n = int.from_bytes(data, "little")
    sign, y = n >> (8 * size - 1), n & ~(1 << (8 * size - 1))
    return _enc(p - y, 1 - sign, size)


def okp(crv: str, x: bytes, kid: str | None = None) -> dict[str, Any]:
    jwk: dict[str, Any] = {"kty": "OKP", "crv": crv, "x": b64(x)}
    if kid:
        jwk["kid"] = kid
    return jwk


def rsa_with_e(e: int) -> dict[str, Any]:
    return {"kty": "RSA", "n": b64uint(rsa_key().public_key().public_numbers().n), "e": b64uint(e)}


ED448_HONEST = _raw(ed448.Ed448PrivateKey.generate().public_key())
ED25519_HONEST = _raw(ed_key().public_key())

# (kind, JWK, what the refusal says)
DEGENERATE: list[tuple[str, dict[str, Any], str]] = [
    *[(f"Ed25519 small order {n}", okp("Ed25519", x), "") for n, x in _ed25519_small_order().items()],
    *[(f"Ed448 small order {n}", okp("Ed448", x), "") for n, x in _ed448_small_order().items()],
    *[
        (f"Ed25519 non-canonical y={k}+p,sign={s}", okp("Ed25519", _enc(k + P25519, s, 32)), "non-canonical")
        for k in (2, 3, 7, 18)
        for s in (0, 1)
    ],
    (
        "Ed448 non-canonical unused bits",
        okp("Ed448", ED448_HONEST[:-1] + bytes([ED448_HONEST[-1] | 1])),
        "non-canonical",
    ),
    ("Ed25519 off the curve", okp("Ed25519", _enc(2, 0, 32)), "not a point of the curve"),
    ("Ed448 off the curve", okp("Ed448", _enc(2, 0, 57)), "not a point of the curve"),
    ("Ed25519 mixed order", okp("Ed25519", _with_order_two(ED25519_HONEST)), "prime-order subgroup"),
    ("Ed448 mixed order", okp("Ed448", _with_order_two(ED448_HONEST)), "prime-order subgroup"),
    *[
        (f"RSA e={e}", rsa_with_e(e), "invalid RSA key parameters") for e in (0, 1, 65538)
    ],  # cryptography refuses these itself
    *[(f"RSA e={e}", rsa_with_e(e), "exponent") for e in (3, 17, 65535, 2**32 + 1, 2**64 + 1)],
    ("RSA e huge", rsa_with_e(2**2040 + 1), "exponent of 2041 bits"),
    *[
        (f"key_ops {ops!r}", {**public_jwk(ec_key("P-256", 2), None), "key_ops": ops}, "key_ops")
        for ops in (["sign"], [], ["encrypt", "wrapKey"], "verify", [1], None)
        if ops is not None
    ],
    ("use enc", public_jwk(ec_key("P-256", 2), None, use="enc"), "use"),
]
SMALL_ORDER_NEEDLE = "small-order point"


def _needle(kind: str, needle: str) -> str:
    if "small order" in kind:
        # a y >= p or a negative zero is refused as non-canonical before its order is asked
        return "non-canonical" if ("+p" in kind or "x=-0" in kind) else SMALL_ORDER_NEEDLE
    return needle


def test_the_small_order_lists_are_complete_and_distinct() -> None:
    assert len(set(_ed25519_small_order().values())) == 14
    assert len(set(_ed448_small_order().values())) == 10


@pytest.mark.parametrize("kind,jwk,needle", DEGENERATE, ids=[d[0] for d in DEGENERATE])
def test_a_degenerate_key_is_refused_by_the_jwk_parser(kind: str, jwk: dict[str, Any], needle: str) -> None:
    with pytest.raises(JwksFormatError, match=_needle(kind, needle)):
        parse_jwk(jwk)


def test_the_honest_keys_next_to_them_load() -> None:
    assert parse_jwk(okp("Ed25519", ED25519_HONEST)).crv == "Ed25519"
    assert parse_jwk(okp("Ed448", ED448_HONEST)).crv == "Ed448"
    for e in (65537, 2**32 - 1):
        assert parse_jwk(rsa_with_e(e)).kty == "RSA"
    for ops in (["verify"], ["sign", "verify"]):
        assert parse_jwk({**public_jwk(ec_key("P-256", 2), None), "key_ops": ops}).kty == "EC"


def test_the_identity_key_would_verify_a_forgery_on_any_payload_and_is_refused() -> None:
    forged = b"\x01" + bytes(63)
    identity = ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(ED25519_SMALL_ORDER_CANONICAL[0]))
    for payload in (b"anything", b"another"):
        identity.verify(forged, payload)  # what the library alone does: the forgery verifies
    with pytest.raises(InvalidSignature):
        ed25519.Ed25519PublicKey.from_public_bytes(ED25519_HONEST).verify(forged, b"anything")
    keyset = jwks_bytes(okp("Ed25519", bytes.fromhex(ED25519_SMALL_ORDER_CANONICAL[0]), "id"))
    verifier = JwtVerifier([provider()], fetcher=FakeFetcher({JWKS_URI: keyset}), clock=FakeClock())
    tok = forge({"alg": "EdDSA", "kid": "id"}, claims(sub="mallory"), signature=forged)
    with pytest.raises(JwtError) as info:
        verifier.verify(tok)
    assert info.value.reason == "jwks_unavailable"  # the set held nothing usable: the fetch failed


def _kid(i: int) -> str:
    return f"bad-{i}"


def test_a_remote_set_drops_each_degenerate_key_logs_it_once_and_keeps_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bad = [{**jwk, "kid": _kid(i)} for i, (_, jwk, _n) in enumerate(DEGENERATE)]
    keyset = jwks_bytes(*bad, public_jwk(rsa_key(), "k1"), public_jwk(ed_key(), "d1"))
    parsed = parse_jwks(keyset)
    assert [k.kid for k in parsed.keys] == ["k1", "d1"]
    assert len(parsed.dropped) == len(DEGENERATE)
    clock = FakeClock()
    fetcher = FakeFetcher({JWKS_URI: keyset})
    verifier = JwtVerifier([provider()], fetcher=fetcher, clock=clock)
    forged = forge({"alg": "EdDSA", "kid": _kid(0)}, claims(), signature=b"\x01" + bytes(63))
    with caplog.at_level(logging.WARNING, logger="ruleauth.jwt.key_cache"):
        for _ in range(2):  # two fetches of the same set
            assert verifier.verify(token(exp=int(NOW) + 7200), now=clock.now)
            assert verifier.verify(token(alg="EdDSA", kid="d1", exp=int(NOW) + 7200), now=clock.now)
            with pytest.raises(JwtError) as info:
                verifier.verify(forged, now=clock.now)
            assert info.value.reason == "jwt_invalid"
            clock.advance(301)
    assert len(fetcher.calls) == 2
    for i in range(len(DEGENERATE)):
        logged = [r for r in caplog.records if f"'{_kid(i)}'" in r.getMessage()]
        assert len(logged) == 1, (DEGENERATE[i][0], [r.getMessage() for r in logged])


RULES_HEAD = """\
version: 1
token: {header: Authorization, scheme: Bearer}
jwt:
"""
PROVIDER = """\
  - name: p{i}
    issuer: https://idp{i}.example.test
    audience: [api]
    algorithms: [RS256, ES256, EdDSA]
    jwks_file: keys-{i}.json
"""
RULES_TAIL = """\
rules:
  - name: read
    route: GET /orders
    allow: "true"
"""


def test_ruleauth_validate_refuses_each_degenerate_bundled_key_at_its_providers_line(tmp_path: Path) -> None:
    text = RULES_HEAD
    lines: dict[str, int] = {}
    for i, (_, jwk, _n) in enumerate(DEGENERATE):
        (tmp_path / f"keys-{i}.json").write_bytes(jwks_bytes(public_jwk(rsa_key(), "k1"), {**jwk, "kid": _kid(i)}))
        lines[f"p{i}"] = text.count("\n") + 1
        text += PROVIDER.format(i=i)
    rules = tmp_path / "rules.yaml"
    rules.write_text(text + RULES_TAIL)
    status, report = run_json("validate", str(rules))
    assert status == 1
    problems = [p for p in report["problems"] if p["severity"] == "error"]
    assert len(problems) == len(DEGENERATE), [p["message"] for p in problems]
    for i, (kind, _, needle) in enumerate(DEGENERATE):
        mine = [p for p in problems if f"jwt provider 'p{i}'" in p["message"]]
        assert len(mine) == 1, kind
        assert (mine[0]["file"], mine[0]["line"]) == (str(rules), lines[f"p{i}"]), kind
        assert f"kid '{_kid(i)}'" in mine[0]["message"] and _needle(kind, needle) in mine[0]["message"], mine[0]


def test_validate_runs_without_a_traceback_on_a_degenerate_key(tmp_path: Path) -> None:
    (tmp_path / "keys-0.json").write_bytes(jwks_bytes(okp("Ed25519", bytes(32), "z")))
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES_HEAD + PROVIDER.format(i=0) + RULES_TAIL)
    done = run_cli("validate", str(rules))
    no_traceback(done)
    assert done.returncode == 1 and f"{rules}:4:" in done.stdout and "small-order point" in done.stdout


# ---------------------------------------------------------------- the same key listed twice


def _verifier(*jwks: dict[str, Any]) -> JwtVerifier:
    return JwtVerifier([provider()], fetcher=FakeFetcher({JWKS_URI: jwks_bytes(*jwks)}), clock=FakeClock())


def _reason(verifier: JwtVerifier, tok: str) -> str:
    with pytest.raises(JwtError) as info:
        verifier.verify(tok)
    return info.value.reason


@pytest.mark.parametrize(
    "listings",
    [
        [public_jwk(rsa_key(), "k1", alg="RS256"), public_jwk(rsa_key(), "k1")],
        [public_jwk(rsa_key(), "k1"), public_jwk(rsa_key(), "k1", alg="RS256")],
        [public_jwk(rsa_key(), "k1", alg="RS256"), public_jwk(rsa_key(), "k1", alg="PS256")],
        [public_jwk(rsa_key(), "k1"), public_jwk(rsa_key(), "k1", use=None)],
        [public_jwk(rsa_key(), "k1"), {**public_jwk(rsa_key(), "k1"), "key_ops": ["verify"]}],
    ],
    ids=["alg-then-none", "none-then-alg", "two-algs", "use-and-not", "key_ops-and-not"],
)
def test_the_same_key_listed_twice_under_one_kid_verifies_with_that_kid(listings: list[dict[str, Any]]) -> None:
    verifier = _verifier(*listings, public_jwk(ec_key(), "e1"))
    assert verifier.verify(token(kid="k1")).claims["sub"] == "user-1"
    fits_ps = any(j.get("alg") in (None, "PS256") for j in listings)
    if fits_ps:
        assert verifier.verify(token(alg="PS256", kid="k1"))
    else:
        assert _reason(verifier, token(alg="PS256", kid="k1")) == "jwt_invalid"  # every listing binds RS256


def test_a_kidless_copy_of_a_kided_key_leaves_tokens_without_kid_verifiable() -> None:
    for listings in (
        [public_jwk(rsa_key(), "k1"), public_jwk(rsa_key(), None)],
        [public_jwk(rsa_key(), None), public_jwk(rsa_key(), "k1"), public_jwk(rsa_key(), "k2")],
    ):
        verifier = _verifier(*listings)
        assert verifier.verify(token(kid=None))
        assert verifier.verify(token(kid="k1"))


def test_different_keys_stay_ambiguous_where_a_choice_would_be_a_guess() -> None:
    # two different RSA keys and no kid in the token: which one is meant is a guess
    verifier = _verifier(public_jwk(rsa_key(2048, 0), None), public_jwk(rsa_key(2048, 1), "k2"))
    assert _reason(verifier, token(kid=None)) == "jwt_invalid"
    assert verifier.verify(token(key=rsa_key(2048, 1), kid="k2"))
    # different keys under one kid: the kid is unusable for every alg (no "first wins")
    verifier = _verifier(
        public_jwk(rsa_key(2048, 0), "dup"),
        public_jwk(rsa_key(2048, 1), "dup", alg="RS256"),
        public_jwk(ec_key(), "e1"),
    )
    assert _reason(verifier, token(key=rsa_key(2048, 0), kid="dup")) == "jwt_invalid"
    assert _reason(verifier, token(key=rsa_key(2048, 1), kid="dup")) == "jwt_invalid"
    assert verifier.verify(token(alg="ES256", kid="e1"))


def test_a_bundled_file_listing_one_key_twice_loads(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_bytes(
        jwks_bytes(public_jwk(rsa_key(), "k1", alg="RS256"), public_jwk(rsa_key(), "k1"), public_jwk(rsa_key(), None))
    )
    verifier = JwtVerifier([provider(jwks_uri=None, jwks_file=str(path))], clock=FakeClock())
    assert verifier.verify(token(kid="k1")) and verifier.verify(token(kid=None))


@pytest.mark.parametrize(
    "public",
    [
        ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(ED25519_SMALL_ORDER_CANONICAL[0])),
        ed25519.Ed25519PublicKey.from_public_bytes(_with_order_two(ED25519_HONEST)),
        ed448.Ed448PublicKey.from_public_bytes(_enc(1, 0, 57)),
    ],
    ids=["Ed25519 identity", "Ed25519 mixed order", "Ed448 identity"],
)
def test_a_degenerate_key_in_a_bundled_pem_file_is_a_load_error(tmp_path: Path, public: Any) -> None:
    path = tmp_path / "keys.pem"
    path.write_bytes(public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    problems = provider_problems(provider(jwks_uri=None, jwks_file=str(path), algorithms=("EdDSA",)))
    assert any("PEM block 0:" in p and "order" in p for p in problems), problems
