"""The mutual TLS client certificate: the `request.client_cert` variables and RFC 8705 binding.

API Gateway forwards the certificate's PEM and a few strings of its own (docs/apigw-facts.md
"Client certificates"). The strings are given to rules as API Gateway wrote them; everything
else is read from the PEM with `cryptography`, only for rule sets that read the certificate or
bind tokens to it, and once per distinct PEM in a warm container. A PEM that does not parse
gives none of the fields read from it: rules reading them fail (a deny), never the request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ruleauth.cache import Cache
from ruleauth.errors import CredentialError
from ruleauth.model import ClientCert
from ruleauth.reasons import Reason

# Larger PEMs are not read (their fields are absent): a client certificate is a few KiB.
MAX_PEM_CHARS = 16 * 1024
MAX_TEXT_CHARS = 8 * 1024
PARSED_CACHE_SIZE = 256
THUMBPRINT_CLAIM = "x5t#S256"


@dataclass(frozen=True)
class _Parsed:
    """What the PEM says; None where it could not be read."""

    fingerprint: str | None = None
    not_before: int | None = None  # Unix seconds, as a JWT's exp and `now_unix`
    not_after: int | None = None
    sans: tuple[list[str], list[str], list[str]] | None = None  # dns, uri, email


_parsed: Cache[str, _Parsed] = Cache(PARSED_CACHE_SIZE)
_UNREADABLE = _Parsed()


def variables(cert: ClientCert | None) -> dict[str, Any]:
    """`request.client_cert`: {} without a certificate; otherwise the fields it gives."""
    if cert is None:
        return {}
    found: dict[str, Any] = {}
    for name in ("subject_dn", "issuer_dn", "serial_number"):
        text = getattr(cert, name)
        if text and len(text) <= MAX_TEXT_CHARS:
            found[name] = text
    parsed = _parse(cert.pem)
    if parsed.not_before is not None:
        found["not_before"] = parsed.not_before
    if parsed.not_after is not None:
        found["not_after"] = parsed.not_after
    if parsed.fingerprint is not None:
        found["fingerprint_sha256"] = parsed.fingerprint
    if parsed.sans is not None:
        found["san_dns"], found["san_uri"], found["san_email"] = (list(names) for names in parsed.sans)
    return found


def thumbprint(cert: ClientCert | None) -> str | None:
    """base64url (no padding) of the SHA-256 of the certificate's DER, or None without a
    readable certificate: RFC 8705's x5t#S256, and `request.client_cert.fingerprint_sha256`."""
    return None if cert is None else _parse(cert.pem).fingerprint


def check_binding(cert: ClientCert | None, claims: Mapping[str, Any]) -> None:
    """RFC 8705 §3: the token's cnf["x5t#S256"] must be the thumbprint of the certificate the
    client presented. Raises CredentialError (a 401) with the reason for each failure."""
    presented = thumbprint(cert)
    if presented is None:
        what = "no client certificate" if cert is None or not cert.pem else "an unreadable client certificate"
        raise CredentialError(
            Reason.CLIENT_CERT_MISSING,
            f"the token's provider is certificate_bound, and the request has {what} (mutual TLS)",
        )
    cnf = claims.get("cnf")
    bound = cnf.get(THUMBPRINT_CLAIM) if isinstance(cnf, Mapping) else None
    if not isinstance(bound, str):
        raise CredentialError(
            Reason.CNF_MISSING, f'the token has no cnf["{THUMBPRINT_CLAIM}"] string binding it to a certificate'
        )
    if not hmac.compare_digest(bound.encode("utf-8", "surrogatepass"), presented.encode("ascii")):
        raise CredentialError(
            Reason.CNF_MISMATCH, f'the token\'s cnf["{THUMBPRINT_CLAIM}"] names another client certificate'
        )


def _parse(pem: str) -> _Parsed:
    if not pem or len(pem) > MAX_PEM_CHARS:
        return _UNREADABLE
    found = _parsed.get(pem)
    if found is None:
        found = _read(pem)
        _parsed.put(pem, found)
    return found


def _read(pem: str) -> _Parsed:
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
        der = cert.public_bytes(_der())
    except Exception:  # whatever a malformed PEM makes the library raise, its fields are absent
        return _UNREADABLE
    fingerprint = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode("ascii")
    not_before: int | None
    not_after: int | None
    try:
        not_before = int(cert.not_valid_before_utc.timestamp())
        not_after = int(cert.not_valid_after_utc.timestamp())
    except (ValueError, OverflowError):  # a validity the library cannot represent
        not_before = not_after = None
    return _Parsed(fingerprint, not_before, not_after, _sans(cert))


def _sans(cert: Any) -> tuple[list[str], list[str], list[str]] | None:
    """The subject alternative names by kind ([] for a certificate without the extension), or
    None when the extension does not parse."""
    from cryptography import x509

    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], [], []
    except ValueError:
        return None
    return (
        [str(n) for n in names.get_values_for_type(x509.DNSName)],
        [str(n) for n in names.get_values_for_type(x509.UniformResourceIdentifier)],
        [str(n) for n in names.get_values_for_type(x509.RFC822Name)],
    )


def _der() -> Any:
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.DER
