"""Which Ed25519 and Ed448 public keys can verify signatures honestly (docs/keys.md).

cryptography (OpenSSL) takes any 32 or 57 bytes as an EdDSA public key. Some of
them are degenerate: a small-order point (the identity, for one) verifies a forged
signature on every message, and a non-canonical or off-curve encoding is no key
anybody generated. An honest public key is [a]B for the base point B, so it
decodes canonically (RFC 8032 §5.1.3, §5.2.3) and lies in the prime-order
subgroup; `problem()` says why a key does not.

Plain integer arithmetic on the curves of RFC 8032 §5.1 and §5.2, run when a key
set is read (once per distinct key), never per token.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass


@dataclass(frozen=True)
class _Curve:
    name: str
    p: int  # field prime
    a: int  # twisted Edwards a: a*x^2 + y^2 = 1 + d*x^2*y^2
    d: int
    order: int  # L, the prime order of the base point
    cofactor: int
    size: int  # bytes in an encoded point


_P25519 = 2**255 - 19
_P448 = 2**448 - 2**224 - 1

ED25519 = _Curve(
    name="Ed25519",
    p=_P25519,
    a=_P25519 - 1,
    d=(-121665 * pow(121666, -1, _P25519)) % _P25519,
    order=2**252 + 27742317777372353535851937790883648493,
    cofactor=8,
    size=32,
)
ED448 = _Curve(
    name="Ed448",
    p=_P448,
    a=1,
    d=_P448 - 39081,
    order=2**446 - 13818066809895115352007386748515426880336692474882178609894547503885,
    cofactor=4,
    size=57,
)
CURVES = {c.name: c for c in (ED25519, ED448)}

_Point = tuple[int, int, int]  # projective (X : Y : Z), x = X/Z, y = Y/Z


class _Undecodable(Exception):
    pass


def _sqrt_ratio(c: _Curve, u: int, v: int) -> int:
    """x with v*x^2 == u (mod p), as RFC 8032 computes it; _Undecodable if there is none."""
    p = c.p
    if c is ED25519:  # p = 5 (mod 8): §5.1.3 step 3
        x = u * pow(v, 3, p) * pow(u * pow(v, 7, p), (p - 5) // 8, p) % p
        if (v * x * x - u) % p == 0:
            return x
        if (v * x * x + u) % p == 0:
            return x * pow(2, (p - 1) // 4, p) % p
        raise _Undecodable
    x = pow(u, 3, p) * v * pow(pow(u, 5, p) * pow(v, 3, p), (p - 3) // 4, p) % p  # p = 3 (mod 4): §5.2.3
    if (v * x * x - u) % p == 0:
        return x
    raise _Undecodable


def _decode(c: _Curve, data: bytes) -> _Point:
    """RFC 8032 point decoding, strict: a y >= p or a "negative zero" x is non-canonical."""
    n = int.from_bytes(data, "little")
    sign = n >> (8 * c.size - 1)
    y = n & ~(1 << (8 * c.size - 1))
    if y >= c.p:  # for Ed448 this also covers the seven unused bits of the last byte
        raise ValueError("non-canonical")
    u = (y * y - 1) % c.p
    v = (c.d * y * y - c.a) % c.p  # (y^2 - 1) / (d*y^2 - a) = x^2
    x = _sqrt_ratio(c, u, v)
    if x == 0 and sign:
        raise ValueError("non-canonical")
    if x & 1 != sign:
        x = c.p - x
    return (x, y, 1)


def _add(c: _Curve, p1: _Point, p2: _Point) -> _Point:
    # Projective addition for twisted Edwards curves (Bernstein, Birkner, Joye, Lange,
    # Peters, "Twisted Edwards Curves", 2008, §6). With a square and d a non-square, as on
    # both curves here, it is complete: it also doubles and handles the identity.
    p = c.p
    x1, y1, z1 = p1
    x2, y2, z2 = p2
    a_ = z1 * z2 % p
    b = a_ * a_ % p
    cc = x1 * x2 % p
    dd = y1 * y2 % p
    e = c.d * cc % p * dd % p
    f = (b - e) % p
    g = (b + e) % p
    x3 = a_ * f % p * ((x1 + y1) * (x2 + y2) - cc - dd) % p
    y3 = a_ * g % p * (dd - c.a * cc) % p
    return (x3, y3, f * g % p)


def _times(c: _Curve, k: int, point: _Point) -> _Point:
    result: _Point = (0, 1, 1)
    for bit in bin(k)[2:]:
        result = _add(c, result, result)
        if bit == "1":
            result = _add(c, result, point)
    return result


def _is_identity(c: _Curve, point: _Point) -> bool:
    x, y, z = point
    return x % c.p == 0 and (y - z) % c.p == 0


@functools.lru_cache(maxsize=512)  # a refetched set repeats its keys: ~2 ms (Ed25519) to ~7 ms (Ed448) each
def problem(curve: str, data: bytes) -> str | None:
    """Why the encoded public key `data` on `curve` ("Ed25519" or "Ed448") must not verify, or None."""
    c = CURVES[curve]
    if len(data) != c.size:
        return f"is not {c.size} bytes"
    try:
        point = _decode(c, data)
    except ValueError:
        return "is a non-canonical point encoding"
    except _Undecodable:
        return "is not a point of the curve"
    if _is_identity(c, _times(c, c.cofactor, point)):
        return "is a small-order point (it would verify forged signatures)"
    if not _is_identity(c, _times(c, c.order, point)):
        return "is not in the prime-order subgroup (it has a small-order component)"
    return None
