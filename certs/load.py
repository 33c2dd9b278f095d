"""Reading the certificates law firms and courts actually send.

PEM (one or many), DER / `.cer`, PKCS#7 bundles (`.p7b`/`.p7c`, PEM or DER, also a
detached `.p7s` signature), bare base64 of any of these, and S/MIME signed mail
(`multipart/signed` with an `application/pkcs7-signature` part, or
`application/pkcs7-mime; smime-type=signed-data`), whose embedded certificates
are taken. The signature itself is not verified: trust in a party's certificate
comes from the person importing it, not from the mail it came in.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import email
import email.policy
import re
from collections.abc import Sequence
from email.message import EmailMessage

from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs7

from certs.describe import email_addresses, is_ca
from certs.errors import CertificateFormatError

PKCS7_TYPES = {
    "application/pkcs7-signature",
    "application/x-pkcs7-signature",
    "application/pkcs7-mime",
    "application/x-pkcs7-mime",
}
_HEADER_LINE = re.compile(rb"^[A-Za-z][A-Za-z0-9-]*:[ \t]")
_BASE64 = re.compile(rb"^[A-Za-z0-9+/=\s]+$")


def read_certificates(data: bytes, name: str = "input") -> list[x509.Certificate]:
    """Every certificate in `data`, whatever the container; CertificateFormatError if none."""
    stripped = data.lstrip()
    if b"-----BEGIN " in data:
        found = _pem(data)
    elif _HEADER_LINE.match(stripped):
        found = _mail(data, name)
    else:
        found = _der(data)
        if not found and _BASE64.match(stripped):
            try:
                found = _der(base64.b64decode(b"".join(stripped.split()), validate=True))
            except binascii.Error:
                found = []
    if not found:
        raise CertificateFormatError(
            f"{name}: no certificate found (read as PEM, DER, PKCS#7 and S/MIME signed mail)"
        )
    return found


def end_entity(
    certs: Sequence[x509.Certificate],
    *,
    addresses: Sequence[str] = (),
    domains: Sequence[str] = (),
    name: str = "input",
) -> x509.Certificate:
    """The one certificate in a bundle that belongs to a mailbox rather than to a CA.

    Several? Those naming the party's addresses or domains win; among them the
    one that expires last (a bundle may carry the old and the renewed one).
    """
    leaves = [c for c in certs if not is_ca(c)]
    if not leaves:
        raise CertificateFormatError(
            f"{name}: holds only CA certificates ({len(certs)}); ask for the person's certificate"
        )
    if len(leaves) == 1:
        return leaves[0]
    matching = [c for c in leaves if _names_party(c, addresses, domains)]
    if not matching:
        listing = "; ".join(", ".join(email_addresses(c)) or "no address" for c in leaves)
        wanted = ", ".join([*addresses, *domains]) or "no address was given"
        raise CertificateFormatError(
            f"{name}: holds {len(leaves)} personal certificates ({listing}) and none is for "
            f"{wanted}; give the party's --address or --domain"
        )
    return max(matching, key=lambda c: c.not_valid_after_utc)


def _names_party(cert: x509.Certificate, addresses: Sequence[str], domains: Sequence[str]) -> bool:
    mine = email_addresses(cert)
    wanted = {a.lower() for a in addresses}
    at = {d.lower().lstrip("@") for d in domains}
    return any(a in wanted or a.rpartition("@")[2] in at for a in mine)


def _pem(data: bytes) -> list[x509.Certificate]:
    found: list[x509.Certificate] = []
    if b"-----BEGIN CERTIFICATE-----" in data:
        with contextlib.suppress(ValueError):
            found += x509.load_pem_x509_certificates(data)
    if b"-----BEGIN PKCS7-----" in data:
        with contextlib.suppress(ValueError):
            found += pkcs7.load_pem_pkcs7_certificates(data)
    return found


def _der(data: bytes) -> list[x509.Certificate]:
    try:
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        pass
    try:
        return pkcs7.load_der_pkcs7_certificates(data)
    except ValueError:
        return []


def _mail(data: bytes, name: str) -> list[x509.Certificate]:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    found: list[x509.Certificate] = []
    for part in message.walk():
        if part.get_content_type() not in PKCS7_TYPES:
            continue
        if part.get_param("smime-type", "").lower() in ("enveloped-data", "authenveloped-data"):
            raise CertificateFormatError(
                f"{name}: an encrypted S/MIME mail carries no certificate; ask for a signed one"
            )
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            found += _der(payload)
    return found
