"""Certificates for the tests, made with cryptography: a little CA and parties' mail certs."""

from __future__ import annotations

import base64
import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ENCRYPT = "keyEncipherment"
SIGN_ONLY = "digitalSignature"


@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)


@functools.cache
def rsa_key(n: int = 0) -> rsa.RSAPrivateKey:
    """A few RSA keys reused across tests (generating them is the slow part)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def key_usage(*names: str) -> x509.KeyUsage:
    flags = {
        "digitalSignature": "digital_signature",
        "nonRepudiation": "content_commitment",
        "keyEncipherment": "key_encipherment",
        "keyAgreement": "key_agreement",
        "keyCertSign": "key_cert_sign",
        "cRLSign": "crl_sign",
    }
    chosen = {flags[n] for n in names}
    return x509.KeyUsage(
        digital_signature="digital_signature" in chosen,
        content_commitment="content_commitment" in chosen,
        key_encipherment="key_encipherment" in chosen,
        data_encipherment=False,
        key_agreement="key_agreement" in chosen,
        key_cert_sign="key_cert_sign" in chosen,
        crl_sign="crl_sign" in chosen,
        encipher_only=False,
        decipher_only=False,
    )


@functools.cache
def mail_ca() -> Issued:
    """A stand-in for a public CA that issues the law firms' certificates."""
    key = rsa_key(99)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Example Mail CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=3650))
        .not_valid_after(NOW + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(key_usage("keyCertSign", "cRLSign"), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert, key)


def mail_cert(
    *addresses: str,
    usage: tuple[str, ...] | None = (SIGN_ONLY, ENCRYPT),
    eku: tuple[x509.ObjectIdentifier, ...] | None = (ExtendedKeyUsageOID.EMAIL_PROTECTION,),
    not_before: datetime = NOW - timedelta(days=30),
    not_after: datetime = NOW + timedelta(days=365),
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | None = None,
    subject_email: str | None = None,
) -> Issued:
    """A party's certificate signed by mail_ca(); None for usage/eku leaves the extension out."""
    key = key or rsa_key(1)
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, "Example Law Partner")]
    if subject_email:
        attrs.append(x509.NameAttribute(NameOID.EMAIL_ADDRESS, subject_email))
    issuer = mail_ca()
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attrs))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if addresses:
        names = [x509.RFC822Name(a) for a in addresses]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if usage is not None:
        builder = builder.add_extension(key_usage(*usage), critical=True)
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    return Issued(builder.sign(issuer.key, hashes.SHA256()), key)


def p7b(*certs: x509.Certificate, encoding: serialization.Encoding) -> bytes:
    return pkcs7.serialize_certificates(list(certs), encoding)


def signed_mail(signer: Issued, *, opaque: bool = False, extra: tuple[Issued, ...] = ()) -> bytes:
    """An S/MIME signed mail as a law firm's client sends it, with headers in front.

    multipart/signed with a detached signature, or (opaque) one
    application/pkcs7-mime; smime-type=signed-data part holding content and signature.
    """
    builder = pkcs7.PKCS7SignatureBuilder().set_data(
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nPlease find our certificate.\r\n"
    )
    builder = builder.add_signer(signer.cert, signer.key, hashes.SHA256())
    for other in extra:
        builder = builder.add_certificate(other.cert)
    if opaque:
        der = builder.sign(serialization.Encoding.DER, [])
        body = (
            b"MIME-Version: 1.0\r\n"
            b'Content-Type: application/pkcs7-mime; smime-type=signed-data; name="smime.p7m"\r\n'
            b"Content-Transfer-Encoding: base64\r\n\r\n"
            + base64.encodebytes(der).replace(b"\n", b"\r\n")
        )
    else:
        body = builder.sign(serialization.Encoding.SMIME, [pkcs7.PKCS7Options.DetachedSignature])
    head = (
        b"From: Partner <lawyer@example-law.cn>\r\n"
        b"To: it@leakguard.test\r\n"
        b"Subject: our certificate\r\n"
        b"Date: Mon, 01 Jun 2026 12:00:00 +0800\r\n"
    )
    return head + body
