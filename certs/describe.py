"""Facts about a certificate in the words operators and other modules use."""

from __future__ import annotations

from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID

_NIST_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 over the DER, as AB:CD:… (the form browsers and `openssl x509 -fingerprint` show)."""
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def subject(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string()


def key_type(cert: x509.Certificate) -> str:
    """'RSA', 'EC', 'Ed25519', … — the word used in messages about what can be encrypted to."""
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448"
    return type(key).__name__


def key_description(cert: x509.Certificate) -> str:
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {_NIST_CURVES.get(key.curve.name, key.curve.name)}"
    return key_type(cert)


def email_addresses(cert: x509.Certificate) -> list[str]:
    """rfc822Names from subjectAltName, lower-cased.

    Only when the SAN names no address do we fall back to the subject's
    emailAddress attribute: older certificates (still common with Chinese CAs)
    carry the address there only, and mail clients accept it the same way.
    """
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        found = [a.lower() for a in san.get_values_for_type(x509.RFC822Name)]
    except x509.ExtensionNotFound:
        found = []
    if not found:
        found = [
            str(a.value).lower() for a in cert.subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS)
        ]
    return list(dict.fromkeys(found))


def is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def day(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d")


def minute(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")
