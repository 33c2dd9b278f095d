"""S/MIME encryption of outgoing mail (AES-256), and the decision whether a party can get it.

The envelope keeps the routing and display headers (From, To, Subject, Date,
Message-ID, …) outside and encrypts the body with its Content-* headers as the
inner entity, byte for byte (a signed body stays verifiable). cryptography's
envelope builder encrypts to RSA recipients only; EC certificates are refused.
"""

from __future__ import annotations

import base64
import email
import email.policy
import re
from collections.abc import Sequence
from datetime import datetime
from email.message import Message

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.serialization import pkcs7

from certs.describe import key_type
from certs.errors import CannotEncrypt
from certs.parties import PartyCertificates, certificate_status, check_recipient_certificate

_FIELD_START = re.compile(rb"(?m)^(?=[^ \t])")


def encryption_certificate(
    store: PartyCertificates,
    party: str,
    now: datetime,
    *,
    addresses: Sequence[str] = (),
) -> x509.Certificate:
    """The party's certificate if mail to `addresses` may be encrypted with it now.

    Otherwise CannotEncrypt, whose reason says why (missing, "certificate of
    party 'lawfirm' expired on 2026-10-01", wrong key, wrong address), so the
    relay blocks the mail instead of sending it in clear.
    """
    cert = store.get(party)
    status = certificate_status(party, cert, now)
    if cert is None or not status.usable:
        raise CannotEncrypt(party, status.message)
    problems = check_recipient_certificate(cert, addresses=addresses, now=now)
    if problems:
        raise CannotEncrypt(party, f"party '{party}': " + "; ".join(problems))
    return cert


def encrypt_message(message: Message | bytes, recipients: list[x509.Certificate]) -> bytes:
    """The message as application/pkcs7-mime enveloped-data (AES-256-CBC), CRLF line ends."""
    if not recipients:
        raise CannotEncrypt(None, "no recipient certificate to encrypt to")
    for cert in recipients:
        if not isinstance(cert.public_key(), rsa.RSAPublicKey):
            raise CannotEncrypt(
                None,
                f"certificate key type {key_type(cert)} is not supported for S/MIME encryption",
            )
    outer, inner = _split(_as_crlf_bytes(message))
    builder = pkcs7.PKCS7EnvelopeBuilder().set_data(inner)
    builder = builder.set_content_encryption_algorithm(algorithms.AES256)
    for cert in recipients:
        builder = builder.add_recipient(cert)
    # Binary: the inner entity is already canonical (CRLF); OpenSSL must not touch it.
    der = builder.encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
    headers = [
        *outer,
        b"MIME-Version: 1.0\r\n",
        b'Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"\r\n',
        b'Content-Disposition: attachment; filename="smime.p7m"\r\n',
        b"Content-Transfer-Encoding: base64\r\n",
    ]
    encoded = base64.encodebytes(der).replace(b"\n", b"\r\n")
    return b"".join(headers) + b"\r\n" + encoded


def decrypt_message(data: bytes, cert: x509.Certificate, key: rsa.RSAPrivateKey) -> bytes:
    """The inner MIME entity of an enveloped message (for tests and tools)."""
    message = email.message_from_bytes(data, policy=email.policy.default)
    if message.get_content_type() not in ("application/pkcs7-mime", "application/x-pkcs7-mime"):
        raise ValueError(f"not an S/MIME enveloped message ({message.get_content_type()})")
    der = message.get_payload(decode=True)
    if not isinstance(der, bytes):
        raise ValueError("the S/MIME part has no body")
    return pkcs7.pkcs7_decrypt_der(der, cert, key, [])


def _as_crlf_bytes(message: Message | bytes) -> bytes:
    if isinstance(message, Message):
        message = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
    return re.sub(rb"\r?\n", b"\r\n", message)


def _split(raw: bytes) -> tuple[list[bytes], bytes]:
    """Header fields that stay outside, and the inner entity (Content-* fields + body)."""
    head, _, body = raw.partition(b"\r\n\r\n")
    if not head.endswith(b"\r\n"):
        head += b"\r\n"
    outer: list[bytes] = []
    content: list[bytes] = []
    for field in (f for f in _FIELD_START.split(head) if f):
        name = field.split(b":", 1)[0].strip().lower()
        if name.startswith(b"content-"):
            content.append(field)
        elif name != b"mime-version":
            outer.append(field)
    if not content:  # RFC 2045's default, stated so the inner entity does not start blank
        content.append(b"Content-Type: text/plain; charset=us-ascii\r\n")
    return outer, b"".join(content) + b"\r\n" + body
