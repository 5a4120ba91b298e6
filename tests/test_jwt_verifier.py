"""Token verification: one test per row J01-J28 of docs/threats.md.

Keys are served by a fake fetcher (the network tests are in test_jwks_*.py and
test_jwt_oidc_provider.py); every test here also forbids real network access.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ruleauth.jwt import verifier as jwt_verifier
from ruleauth.jwt.keys import parse_jwks
from ruleauth.jwt.verifier import JwtConfigError, JwtError, JwtVerifier, provider_problems
from tests.jwt_support import (
    AUDIENCE,
    ISSUER,
    JWKS_URI,
    NOW,
    FakeClock,
    FakeFetcher,
    b64,
    b64uint,
    claims,
    default_jwks,
    ec_key,
    forbid_network,
    forge,
    jwks_bytes,
    provider,
    public_jwk,
    rsa_key,
    token,
)

P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    return forbid_network(monkeypatch)


class Env:
    """A verifier over fake keys and a fake clock."""

    def __init__(self, providers: list[Any] | None = None, routes: dict[str, Any] | None = None, **kw: Any) -> None:
        self.clock = FakeClock()
        self.fetcher = FakeFetcher(routes if routes is not None else {JWKS_URI: default_jwks()})
        self.verifier = JwtVerifier(providers or [provider()], fetcher=self.fetcher, clock=self.clock, **kw)

    def ok(self, tok: str, **kw: Any) -> dict[str, Any]:
        return dict(self.verifier.verify(tok, **kw).claims)

    def reason(self, tok: Any, **kw: Any) -> str:
        with pytest.raises(JwtError) as info:
            self.verifier.verify(tok, **kw)
        return info.value.reason

    def error(self, tok: Any, **kw: Any) -> JwtError:
        with pytest.raises(JwtError) as info:
            self.verifier.verify(tok, **kw)
        return info.value


@pytest.fixture
def env() -> Env:
    return Env()


def spki_pem(key: Any) -> bytes:
    return key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)


def test_valid_tokens_for_each_algorithm(env: Env) -> None:
    assert env.ok(token(alg="RS256"))["sub"] == "user-1"
    assert env.ok(token(alg="ES256", kid="e1"))["sub"] == "user-1"
    assert env.ok(token(alg="EdDSA", kid="d1"))["sub"] == "user-1"
    assert env.ok(token(alg="PS256", kid="k1"))["sub"] == "user-1"
    assert env.verifier.verify(token()).provider == "corp"


# ---------------------------------------------------------------- J1-J4: algorithm confusion


@pytest.mark.parametrize("alg", ["none", "None", "nOnE", "NONE", ""])
def test_J01_alg_none_spellings_rejected(env: Env, alg: str) -> None:
    unsigned = forge({"alg": alg, "typ": "JWT", "kid": "k1"}, claims())
    assert unsigned.endswith(".")
    assert env.reason(unsigned) == "jwt_invalid"
    # also with a signature appended, and with alg missing altogether
    assert env.reason(unsigned + "AAAA") == "jwt_invalid"
    assert env.reason(forge({"typ": "JWT"}, claims())) == "jwt_invalid"


@pytest.mark.parametrize("algs", [("none",), ("RS256", "none"), ("NONE",)])
def test_J01_alg_none_in_config_is_a_config_error(algs: tuple[str, ...]) -> None:
    problems = provider_problems(provider(algorithms=algs))
    assert any("not allowed" in p and "asymmetric" in p for p in problems), problems
    with pytest.raises(JwtConfigError, match="asymmetric"):
        JwtVerifier([provider(algorithms=algs)], fetcher=FakeFetcher())


def test_J02_hs256_keyed_with_rsa_public_pem_rejected(env: Env) -> None:
    for key in (rsa_key(), ec_key()):
        forged = forge({"alg": "HS256", "typ": "JWT", "kid": "k1"}, claims(), key=spki_pem(key), alg="HS256")
        assert env.reason(forged) == "jwt_invalid"
    assert env.fetcher.calls == []  # refused on the header alone


def test_J03_hs256_keyed_with_ssh_or_mangled_pem_rejected(env: Env) -> None:
    pem = spki_pem(rsa_key())
    ssh = rsa_key().public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH)
    variants = [
        ssh,
        pem.replace(b"\n", b"\r\n"),
        b"\xef\xbb\xbf" + pem,
        b"  " + pem + b"\n\n",
        pem.replace(b"PUBLIC KEY", b"RSA PUBLIC KEY"),
    ]
    for secret in variants:
        forged = forge({"alg": "HS256", "typ": "JWT", "kid": "k1"}, claims(), key=secret, alg="HS256")
        assert env.reason(forged) == "jwt_invalid"


def test_J04_hs256_keyed_with_public_jwk_rejected_and_mixed_config_is_error(env: Env) -> None:
    jwk_text = json.dumps(public_jwk(rsa_key(), "k1"))
    for secret in (jwk_text, json.dumps(json.loads(jwk_text), separators=(",", ":"))):
        forged = forge({"alg": "HS256", "typ": "JWT", "kid": "k1"}, claims(), key=secret.encode(), alg="HS256")
        assert env.reason(forged) == "jwt_invalid"
    problems = provider_problems(provider(algorithms=("RS256", "HS256")))
    assert any("'HS256' is not allowed" in p for p in problems), problems
    with pytest.raises(JwtConfigError, match="HS256"):
        JwtVerifier([provider(algorithms=("RS256", "HS256"))], fetcher=FakeFetcher())


# ---------------------------------------------------------------- J5-J9: keys


def test_J05_header_alg_must_equal_jwk_alg() -> None:
    keyset = jwks_bytes(public_jwk(rsa_key(), "ps", alg="PS256"), public_jwk(rsa_key(), "rs", alg="RS256"))
    env = Env(routes={JWKS_URI: keyset})
    # correctly bound: accepted
    assert env.ok(token(alg="PS256", kid="ps"))
    assert env.ok(token(alg="RS256", kid="rs"))
    # PS256 signature sent as RS256 to the PS256-bound key, and the reverse
    ps_sig = token(alg="PS256", kid="ps").split(".")[2]
    relabelled = forge({"alg": "RS256", "typ": "JWT", "kid": "ps"}, claims())[:-1] + ps_sig
    assert env.reason(relabelled) == "jwt_invalid"
    assert env.reason(token(alg="RS256", kid="ps")) == "jwt_invalid"
    assert env.reason(token(alg="PS256", kid="rs")) == "jwt_invalid"


def test_J06_remote_oct_key_dropped_and_hs256_rejected() -> None:
    secret = b"0123456789abcdef0123456789abcdef"
    keyset = jwks_bytes({"kty": "oct", "kid": "h", "k": b64(secret)}, public_jwk(rsa_key(), "k1"))
    parsed = parse_jwks(keyset)
    assert [k.kid for k in parsed.keys] == ["k1"]
    assert any("oct" in note for note in parsed.dropped)
    env = Env(routes={JWKS_URI: keyset}, providers=[provider(algorithms=("RS256",))])
    forged = forge({"alg": "HS256", "typ": "JWT", "kid": "h"}, claims(), key=secret, alg="HS256")
    assert env.reason(forged) == "jwt_invalid"
    forged_rs = forge({"alg": "RS256", "typ": "JWT", "kid": "h"}, claims(), key=rsa_key(2048, 1))
    assert env.reason(forged_rs) == "jwt_invalid"
    assert env.ok(token())  # the good key still works


def test_J07_ecdsa_psychic_and_malformed_signatures_rejected() -> None:
    env = Env()
    good = token(alg="ES256", kid="e1")
    h, p, s = good.split(".")
    assert env.ok(good)
    der = ec_key().sign(f"{h}.{p}".encode(), ec.ECDSA(hashes.SHA256()))
    r, s_int = decode_dss_signature(der)
    bad_sigs = {
        "zeros": b"\x00" * 64,
        "der": der,
        "r=n": P256_N.to_bytes(32, "big") + s_int.to_bytes(32, "big"),
        "s=n": r.to_bytes(32, "big") + P256_N.to_bytes(32, "big"),
        "r=s=n": P256_N.to_bytes(32, "big") * 2,
        "r+n": (r + P256_N).to_bytes(33, "big") + s_int.to_bytes(32, "big"),
        "short": (r.to_bytes(32, "big") + s_int.to_bytes(32, "big"))[:63],
        "empty": b"",
    }
    for name, sig in bad_sigs.items():
        assert env.reason(f"{h}.{p}.{b64(sig)}") == "jwt_invalid", name


def test_J08_key_curve_mismatch_rejected() -> None:
    keyset = jwks_bytes(public_jwk(ec_key("P-384"), "e384"), public_jwk(ec_key("P-256"), "e256"))
    env = Env(routes={JWKS_URI: keyset}, providers=[provider(algorithms=("ES256", "ES384"))])
    # ES256 header, P-384 key (signed for real with ES384's hash and the P-384 key)
    forged = forge({"alg": "ES256", "typ": "JWT", "kid": "e384"}, claims(), key=ec_key("P-384"), alg="ES384")
    assert env.reason(forged) == "jwt_invalid"
    # ES384 header pointing at the P-256 key
    forged = forge({"alg": "ES384", "typ": "JWT", "kid": "e256"}, claims(), key=ec_key("P-256"), alg="ES256")
    assert env.reason(forged) == "jwt_invalid"
    # an RSA alg pointing at an EC key
    assert env.reason(token(alg="RS256", kid="e256")) == "jwt_invalid"
    assert env.ok(token(alg="ES384", kid="e384", key=ec_key("P-384")))
    # the shared signature primitive refuses the mismatch too
    assert not jwt_verifier._verify_signature("ES256", ec_key("P-384").public_key(), b"m", b"\x00" * 96)


def _sect283k1_pem() -> bytes:
    """An SPKI for sect283k1 built by hand (cryptography >= 47 cannot even make one)."""

    def tlv(tag: int, body: bytes) -> bytes:
        assert len(body) < 256
        return bytes([tag]) + (bytes([len(body)]) if len(body) < 128 else bytes([0x81, len(body)])) + body

    ec_public_key = bytes.fromhex("06072a8648ce3d0201")
    sect283k1 = bytes.fromhex("06052b81040010")
    point = b"\x04" + bytes(range(1, 37)) + bytes(range(2, 38))
    der = tlv(0x30, tlv(0x30, ec_public_key + sect283k1) + tlv(0x03, b"\x00" + point))
    body = base64.encodebytes(der).replace(b"\n", b"")
    return b"-----BEGIN PUBLIC KEY-----\n" + body + b"\n-----END PUBLIC KEY-----\n"


@pytest.mark.parametrize("curve", ["sect283k1", "secp256k1"])
def test_J08_static_pem_on_non_allowlisted_curve_is_config_error(tmp_path: Any, curve: str) -> None:
    if curve == "sect283k1":
        pem = _sect283k1_pem()
    else:
        pem = (
            ec.generate_private_key(ec.SECP256K1())
            .public_key()
            .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        )
    path = tmp_path / "key.pem"
    path.write_bytes(pem)
    cfg = provider(jwks_uri=None, jwks_file=str(path), algorithms=("ES256",))
    problems = provider_problems(cfg)
    assert len(problems) == 1 and str(path) in problems[0], problems
    assert "not allowed" in problems[0] or "unsupported" in problems[0], problems
    with pytest.raises(JwtConfigError, match="jwks_file"):
        JwtVerifier([cfg])


def test_J09_weak_rsa_jwk_dropped_and_static_pem_is_config_error(tmp_path: Any) -> None:
    weak = rsa_key(1024)
    nums = rsa_key().public_key().public_numbers()
    e3 = {"kty": "RSA", "kid": "e3", "n": b64uint(nums.n), "e": b64uint(3)}
    keyset = jwks_bytes(public_jwk(weak, "weak"), e3, public_jwk(rsa_key(), "k1"))
    parsed = parse_jwks(keyset)
    assert [k.kid for k in parsed.keys] == ["k1"]
    env = Env(routes={JWKS_URI: keyset})
    assert env.reason(token(key=weak, kid="weak")) == "jwt_invalid"
    assert env.ok(token())
    path = tmp_path / "weak.pem"
    path.write_bytes(spki_pem(weak))
    cfg = provider(jwks_uri=None, jwks_file=str(path), algorithms=("RS256",))
    assert any("1024 bits is too weak" in p for p in provider_problems(cfg))
    with pytest.raises(JwtConfigError, match="too weak"):
        JwtVerifier([cfg])


# ---------------------------------------------------------------- J10-J13: header injection


KID_ATTACKS: list[Any] = [
    "../../dev/null",
    "/etc/passwd",
    "' OR '1'='1",
    "https://evil.example/jwks.json",
    "k" * 257,
    "k1\n",
    "\x1b[31mk1",
    "k1\x00",
    "K1",
    " k1",
    "",
    123,
    ["k1"],
    {"$ne": None},
    True,
]


@pytest.mark.parametrize("kid", KID_ATTACKS, ids=range(len(KID_ATTACKS)))
def test_J10_kid_injection_rejected_and_escaped(env: Env, kid: Any) -> None:
    forged = forge({"alg": "RS256", "typ": "JWT", "kid": kid}, claims(), key=rsa_key())
    err = env.error(forged)
    assert err.reason == "jwt_invalid"
    text = str(err)
    assert "\n" not in text and "\x1b" not in text and "\x00" not in text
    assert len(text) < 400
    # kid is a dict key only: nothing but the configured JWKS URL was ever fetched
    assert set(env.fetcher.calls) <= {JWKS_URI}


@pytest.mark.parametrize(
    "member",
    ["jwk", "jku", "x5u", "x5c"],
)
def test_J11_embedded_or_remote_key_headers_never_dereferenced(member: str, monkeypatch: pytest.MonkeyPatch) -> None:
    attempts = forbid_network(monkeypatch)
    env = Env()
    attacker = rsa_key(2048, 7)
    values = {
        "jwk": public_jwk(attacker, "k1"),
        "jku": "https://attacker.example/jwks.json",
        "x5u": "https://attacker.example/cert.pem",
        "x5c": [b64(spki_pem(attacker))],
    }
    for kid in ("k1", "attacker"):
        forged = forge({"alg": "RS256", "typ": "JWT", "kid": kid, member: values[member]}, claims(), key=attacker)
        assert env.reason(forged) == "jwt_invalid"
    assert attempts == []
    assert set(env.fetcher.calls) <= {JWKS_URI}
    # the header member alone does not spoil a token signed by the real key
    assert env.ok(token(header={member: values[member]}))


@pytest.mark.parametrize("crit", [["exp"], ["foo"], [], "exp", ["b64"]])
def test_J12_crit_rejected(env: Env, crit: Any) -> None:
    assert env.reason(token(header={"crit": crit})) == "jwt_invalid"


def test_J13_b64_false_rejected_without_decoding_payload(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    header = {"alg": "RS256", "typ": "JWT", "kid": "k1", "b64": False, "crit": ["b64"]}
    detached = forge(header, "$.{not base64 at all}", signature=b"x" * 256).replace("$.", "$")
    err = env.error(detached)
    assert err.reason == "jwt_invalid"
    header2 = dict(header)
    header2.pop("crit")
    calls: list[str] = []
    real = jwt_verifier._decode_segment

    def spy(segment: str, what: str) -> bytes:
        calls.append(what)
        return real(segment, what)

    monkeypatch.setattr(jwt_verifier, "_decode_segment", spy)
    for h in (header, header2):
        err = env.error(forge(h, "eyJzdWIiOiJ4In0", signature=b"x" * 256))
        assert err.reason == "jwt_invalid"
        assert ("crit" in str(err)) or ("b64" in str(err))
    assert calls == ["header", "header"]


# ---------------------------------------------------------------- J14-J20: encoding and shape


def test_J14_duplicate_json_members_rejected(env: Env) -> None:
    payload = json.dumps(claims())[:-1] + ', "sub": "admin"}'
    forged = forge({"alg": "RS256", "typ": "JWT", "kid": "k1"}, payload.encode(), key=rsa_key())
    assert env.reason(forged) == "jwt_invalid"
    header = b'{"alg":"RS256","kid":"k1","alg":"RS256"}'
    assert env.reason(forge(header, claims(), key=rsa_key(), alg="RS256")) == "jwt_invalid"
    nested = json.dumps(claims(ctx={"a": 1}))[:-2] + ', "a": 2}}'
    assert env.reason(forge({"alg": "RS256", "kid": "k1"}, nested.encode(), key=rsa_key())) == "jwt_invalid"


def test_J15_encoding_tricks_rejected(env: Env) -> None:
    good = token()
    assert env.ok(good)
    h, p, s = good.split(".")
    sig = b64(b"\xfb\xff" + bytes(254))  # contains '-' and '_' once re-encoded
    alt = f"{h}.{p}.{sig}"
    assert "-" in sig or "_" in sig
    mutations = [
        alt.replace("-", "+").replace("_", "/"),  # standard alphabet
        f"{h}.{p}.!!!!",
        f"{h}.{p}.{s[:-1]}{chr(ord(s[-1]) ^ 1)}" if s[-1] not in "AQgw" else f"{h}.{p}.{s[:-1]}B",
        f"{h}.{p[:10]} {p[10:]}.{s}",
        f"{h}.{p[:10]}\x00{p[10:]}.{s}",
        f"{h}.{p}\n.{s}",
        f"{h}.{p}.{s}é",
        f" {good}",
        f"{h}.{p}.{s}.",
        f"{h}.{p}.{s}=",  # wrong padding count
    ]
    # non-canonical last character: same bytes, different unused bits
    last = s[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    if len(s) % 4:
        idx = alphabet.index(last)
        mutations.append(f"{h}.{p}.{s[:-1]}{alphabet[idx | 1] if idx % 2 == 0 else alphabet[idx - 1]}")
    for m in mutations:
        assert env.reason(m) == "jwt_invalid", repr(m[-20:])


def test_J16_padded_spelling_gets_the_same_decision(env: Env) -> None:
    good = token()
    h, p, s = good.split(".")
    padded = ".".join(seg + "=" * (-len(seg) % 4) for seg in (h, p, s))
    assert padded != good
    assert env.ok(good) == env.ok(padded)
    assert len(env.verifier._cache) == 1  # one canonical entry for both spellings
    # ECDSA high-S: the other valid signature of the same message gets the same decision
    es = token(alg="ES256", kid="e1")
    h, p, s = es.split(".")
    raw = jwt_verifier.b64url_decode(s)
    r, s_int = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    twin = f"{h}.{p}.{b64(r.to_bytes(32, 'big') + (P256_N - s_int).to_bytes(32, 'big'))}"
    assert env.ok(es) == env.ok(twin)
    # and an expired token is expired in both spellings
    old = token(exp=int(NOW) - 5)
    padded_old = ".".join(seg + "=" * (-len(seg) % 4) for seg in old.split("."))
    assert padded_old != old
    assert env.reason(old) == env.reason(padded_old) == "jwt_expired"


@pytest.mark.parametrize("tok", ["Bearer {t}", "bearer {t}", "{t} ", " {t}", "Bearer  {t}", "{t},{t}", "Basic {t}"])
def test_J17_scheme_or_whitespace_in_token_rejected_by_verifier(env: Env, tok: str) -> None:
    # The Authorization header is parsed by the credential extractor; the verifier
    # itself never strips a scheme or whitespace, so anything but the bare token fails.
    assert env.reason(tok.format(t=token())) == "jwt_invalid"


def test_J18_oversize_token_rejected_before_decoding(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*a: Any, **k: Any) -> Any:
        raise AssertionError("decoded an oversize token")

    monkeypatch.setattr(jwt_verifier, "b64url_decode", boom)
    monkeypatch.setattr(jwt_verifier, "strict_json", boom)
    big = token(pad="x" * 70_000)
    assert len(big) > 64 * 1024
    err = env.error(big)
    assert err.reason == "jwt_invalid" and "longer than 8192" in str(err)
    just_over = "a" * 8193
    assert env.reason(just_over) == "jwt_invalid"


def test_J19_deep_nesting_rejected() -> None:
    env = Env()
    deep_header = b64(b"[" * 3000 + b"]" * 3000)
    assert env.reason(f"{deep_header}.e30.AA") == "jwt_invalid"
    brackets = b64(b"[" * 6000)
    assert env.reason(f"{brackets}.e30.AA") == "jwt_invalid"

    def nested(depth: int) -> Any:
        value: Any = 1
        for _ in range(depth):
            value = [value]
        return value

    # the claims object is depth 1, so a claim may hold 31 more levels
    assert env.ok(token(deep=nested(31)))
    assert env.reason(token(deep=nested(32))) == "jwt_invalid"
    assert env.reason(token(deep=nested(900))) == "jwt_invalid"
    assert env.ok(token(groups=["g"] * 256))
    assert env.reason(token(groups=["g"] * 257)) == "jwt_invalid"
    assert env.reason(token(ctx={"a": {"b": nested(40)}})) == "jwt_invalid"


def test_J20_nested_jwt_jwe_and_json_serialization_rejected(env: Env) -> None:
    inner = token()
    assert env.reason(token(header={"cty": "JWT"})) == "jwt_invalid"
    nested = forge({"alg": "RS256", "kid": "k1", "cty": "JWT"}, inner.encode(), key=rsa_key())
    assert env.reason(nested) == "jwt_invalid"
    assert env.reason("eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a.b.c.d") == "jwt_invalid"
    assert env.reason(forge({"alg": "RS256", "kid": "k1", "enc": "A256GCM"}, claims(), key=rsa_key())) == "jwt_invalid"
    general = json.dumps({"payload": "e30", "signatures": [{"protected": "e30", "signature": "AA"}]})
    assert env.reason(general) == "jwt_invalid"
    for payload in (b'"just a string"', b"[1,2]", b"null", b"17"):
        assert env.reason(forge({"alg": "RS256", "kid": "k1"}, payload, key=rsa_key())) == "jwt_invalid"


# ---------------------------------------------------------------- J21-J28: claims


def test_J21_token_type_confusion_rejected() -> None:
    env = Env(providers=[provider(typ="at+jwt")])
    assert env.ok(token(header={"typ": "at+jwt"}))
    assert env.ok(token(header={"typ": "AT+JWT"}))
    assert env.ok(token(header={"typ": "application/at+jwt"}))
    for typ in ("JWT", "jwt", "id_token+jwt", "logout+jwt", None, "at+jwt2"):
        assert env.reason(token(header={"typ": typ})) == "jwt_invalid", typ
    assert env.reason(token(header={"typ": 1})) == "jwt_invalid"
    cognito = Env(providers=[provider(token_use="access", audience=(), client_ids=("app1",))])
    assert cognito.ok(token(aud=None, client_id="app1", token_use="access"))
    for use in ("id", "refresh", None, ["access"]):
        assert cognito.reason(token(aud=None, client_id="app1", token_use=use)) == "jwt_invalid", use


@pytest.mark.parametrize("name", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("value", ["123", str(int(NOW) + 600), True, False, None, [int(NOW) + 600], {"t": 1}])
def test_J22_non_numeric_time_claims_rejected(env: Env, name: str, value: Any) -> None:
    over: dict[str, Any] = {name: value}
    tok = (
        token(**over)
        if value is not None
        else forge({"alg": "RS256", "kid": "k1"}, {**claims(), name: None}, key=rsa_key())
    )
    assert env.reason(tok) == "jwt_invalid"


def test_J22_missing_exp_and_non_finite_numbers_rejected(env: Env) -> None:
    assert env.reason(token(exp=None)) == "jwt_invalid"
    for literal in (b"NaN", b"Infinity", b"-Infinity", b"1e400"):
        payload = json.dumps(claims(exp=0)).encode().replace(b'"exp": 0', b'"exp": ' + literal)
        assert literal in payload
        assert env.reason(forge({"alg": "RS256", "kid": "k1"}, payload, key=rsa_key())) == "jwt_invalid"
    assert env.ok(token(exp=NOW + 600.5))  # a float is a JSON number


def test_J23_leeway_bounds_and_config_limit() -> None:
    env = Env(providers=[provider(leeway=60)])
    assert env.ok(token(exp=int(NOW) - 30))
    assert env.reason(token(exp=int(NOW) - 61)) == "jwt_expired"
    assert env.ok(token(nbf=int(NOW) + 30))
    assert env.reason(token(nbf=int(NOW) + 61)) == "jwt_invalid"
    assert env.reason(token(iat=int(NOW) + 61)) == "jwt_invalid"
    strict = Env()
    assert strict.reason(token(exp=int(NOW))) == "jwt_expired"
    assert strict.reason(token(exp=int(NOW) - 1)) == "jwt_expired"
    assert strict.ok(token(exp=int(NOW) + 1))
    # `now` overrides the clock (dry-run --now)
    assert strict.ok(token(exp=int(NOW) - 100, iat=int(NOW) - 300), now=NOW - 200)
    for leeway in (86400, 301, -1):
        assert any("leeway" in p for p in provider_problems(provider(leeway=leeway))), leeway
    assert provider_problems(provider(leeway=300)) == []
    with pytest.raises(JwtConfigError, match="leeway"):
        JwtVerifier([provider(leeway=86400)], fetcher=FakeFetcher())


@pytest.mark.parametrize(
    "iss",
    [
        "http",
        "https://idp.example",  # prefix
        ISSUER + "/",
        ISSUER + "/auth",
        "https://IDP.example.test",
        " " + ISSUER,
        ISSUER + " ",
        ISSUER + "\u200b",
        "http://idp.example.test",
        ISSUER.upper(),
    ],
)
def test_J24_issuer_must_match_exactly(env: Env, iss: str) -> None:
    assert env.reason(token(iss=iss)) == "jwt_invalid"
    assert env.fetcher.calls == []  # an unknown issuer costs no fetch


@pytest.mark.parametrize("iss", [[ISSUER], {"iss": ISSUER}, 1, True, None])
def test_J25_non_string_iss_rejected(env: Env, iss: Any) -> None:
    tok = token(iss=iss) if iss is not None else token(iss=None)
    assert env.reason(tok) == "jwt_invalid"


def test_J26_audience_rules() -> None:
    env = Env()
    assert env.ok(token(aud=AUDIENCE))
    assert env.ok(token(aud=["other", AUDIENCE]))  # multi-audience: any configured one must appear
    for aud in (None, "other", ["other"], [], [AUDIENCE, 1], 1, {"a": AUDIENCE}, AUDIENCE + "/"):
        assert env.reason(token(aud=aud)) == "jwt_invalid", aud
    # OIDC: with client_ids configured, azp (or client_id) must name a known client
    both = Env(providers=[provider(client_ids=("web",))])
    assert both.ok(token(aud=["other", AUDIENCE], azp="web"))
    assert both.reason(token(aud=["other", AUDIENCE], azp="evil")) == "jwt_invalid"
    assert both.reason(token(aud=[AUDIENCE])) == "jwt_invalid"  # names no client
    # Cognito access tokens: no aud, client_id instead
    cognito = Env(providers=[provider(audience=(), client_ids=("app1", "app2"))])
    assert cognito.ok(token(aud=None, client_id="app2"))
    assert cognito.reason(token(aud=None, client_id="app3")) == "jwt_invalid"
    assert cognito.reason(token(aud=None)) == "jwt_invalid"
    assert cognito.reason(token(aud=None, client_id=["app1"])) == "jwt_invalid"
    assert cognito.ok(token(aud="app1"))  # an ID token names its client in aud
    # nothing configured: a configuration error, not "anything goes"
    problems = provider_problems(provider(audience=(), client_ids=()))
    assert any("audience" in p and "client_ids" in p for p in problems), problems
    with pytest.raises(JwtConfigError, match="audience"):
        JwtVerifier([provider(audience=(), client_ids=())], fetcher=FakeFetcher())


def test_J27_keys_of_another_issuer_do_not_verify() -> None:
    a = provider(name="a", issuer="https://a.example.test", jwks_uri="https://a.example.test/jwks")
    b = provider(name="b", issuer="https://b.example.test", jwks_uri="https://b.example.test/jwks")
    key_a, key_b = rsa_key(2048, 0), rsa_key(2048, 1)
    env = Env(
        providers=[a, b],
        routes={a.jwks_uri: jwks_bytes(public_jwk(key_a, "k1")), b.jwks_uri: jwks_bytes(public_jwk(key_b, "k1"))},
    )
    assert env.verifier.verify(token(key=key_a, iss=a.issuer)).provider == "a"
    assert env.reason(token(key=key_b, iss=a.issuer)) == "jwt_invalid"
    assert env.fetcher.calls == [a.jwks_uri]  # b's keys were never even fetched
    assert env.verifier.verify(token(key=key_b, iss=b.issuer)).provider == "b"
    assert env.reason(token(key=key_a, iss=b.issuer)) == "jwt_invalid"
    # a rule narrowing to one provider refuses the other's tokens
    assert env.reason(token(key=key_b, iss=b.issuer), allowed=["a"]) == "jwt_invalid"
    assert env.verifier.verify(token(key=key_a, iss=a.issuer), allowed=["a"]).provider == "a"


def test_J28_removed_key_rejected_after_lifespan() -> None:
    old, new = rsa_key(2048, 0), rsa_key(2048, 2)
    routes: dict[str, Any] = {JWKS_URI: jwks_bytes(public_jwk(old, "old"))}
    env = Env(routes=routes)
    tok = token(key=old, kid="old", exp=int(NOW) + 86400)
    assert env.ok(tok)
    routes[JWKS_URI] = jwks_bytes(public_jwk(new, "new"))  # the IdP revokes "old"
    env.clock.advance(299)
    assert env.ok(tok)  # still within the lifespan of the cached set
    env.clock.advance(2)
    assert env.reason(tok) == "jwt_invalid"  # refetched: "old" is gone, cached verdict too
    assert env.ok(token(key=new, kid="new", exp=int(NOW) + 86400))


# ---------------------------------------------------------------- the contract around errors


def test_error_text_never_contains_token_or_signature(env: Env) -> None:
    bad = token(kid="k-unknown\n\x1b[2J", iss=ISSUER)
    sig = bad.split(".")[2]
    for tok in (bad, bad[:-4] + "AAAA", token(iss="https://evil\n" + "x" * 500), "x" * 9000):
        err = env.error(tok)
        text = str(err)
        assert sig not in text and tok not in text
        assert "\n" not in text and "\x1b" not in text


def test_any_internal_failure_is_jwt_invalid(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*a: Any, **k: Any) -> Any:
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(jwt_verifier, "_check_shape", explode)
    err = env.error(token())
    assert err.reason == "jwt_invalid" and "ZeroDivisionError" in str(err)
    assert env.reason(None) == "jwt_invalid"
    assert env.reason(b"abc") == "jwt_invalid"


def test_verified_token_cache_respects_exp_and_is_bypassed_by_now(env: Env) -> None:
    tok = token(exp=int(NOW) + 10)
    assert env.ok(tok)
    assert len(env.verifier._cache) == 1
    env.clock.advance(10)
    assert env.reason(tok) == "jwt_expired"
    assert env.ok(tok, now=NOW)  # dry run at an earlier time
    other = Env(token_cache_size=0)
    assert other.ok(tok) and len(other.verifier._cache) == 0
