"""Every format law firms send: the party's certificate comes out of each."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from certs.errors import CertificateFormatError
from certs.load import end_entity, read_certificates
from tests.certs.makecerts import mail_ca, mail_cert, p7b, rsa_key, signed_mail

PEM, DER = serialization.Encoding.PEM, serialization.Encoding.DER


@pytest.fixture(scope="module")
def party():
    return mail_cert("lawyer@example-law.cn")


def _formats(party) -> dict[str, bytes]:
    ca = mail_ca()
    return {
        "pem": party.pem,
        "pem-with-ca": ca.pem + party.pem,
        "der": party.der,
        "cer-base64": base64.encodebytes(party.der),  # Windows' "Base-64 encoded X.509 (.CER)"
        "p7b-pem": p7b(ca.cert, party.cert, encoding=PEM),
        "p7b-der": p7b(ca.cert, party.cert, encoding=DER),
        "eml-multipart-signed": signed_mail(party, extra=(ca,)),
        "eml-signed-data": signed_mail(party, opaque=True),
    }


@pytest.mark.parametrize(
    "kind",
    [
        "pem",
        "pem-with-ca",
        "der",
        "cer-base64",
        "p7b-pem",
        "p7b-der",
        "eml-multipart-signed",
        "eml-signed-data",
    ],
)
def test_every_format_yields_the_party_certificate(party, kind):
    found = read_certificates(_formats(party)[kind], name=f"x.{kind}")
    assert party.cert in found
    assert end_entity(found, addresses=["lawyer@example-law.cn"]) == party.cert


def test_the_ca_in_a_bundle_is_never_picked(party):
    found = read_certificates(p7b(mail_ca().cert, party.cert, encoding=DER))
    assert found[0] == mail_ca().cert  # the CA comes first, as Windows exports it
    assert end_entity(found) == party.cert


def test_of_several_personal_certificates_the_one_for_the_party_is_picked(party):
    other = mail_cert("clerk@other-firm.cn", key=rsa_key(2))
    bundle = p7b(other.cert, party.cert, encoding=PEM)
    found = read_certificates(bundle)
    assert end_entity(found, addresses=["lawyer@example-law.cn"]) == party.cert
    assert end_entity(found, domains=["other-firm.cn"]) == other.cert


def test_several_personal_certificates_and_none_for_the_party_is_an_error(party):
    other = mail_cert("clerk@other-firm.cn", key=rsa_key(2))
    found = read_certificates(p7b(other.cert, party.cert, encoding=PEM))
    with pytest.raises(CertificateFormatError) as err:
        end_entity(found, addresses=["someone@third.cn"], name="bundle.p7b")
    message = str(err.value)
    assert "bundle.p7b" in message
    assert "clerk@other-firm.cn" in message and "lawyer@example-law.cn" in message
    assert "someone@third.cn" in message


def test_a_bundle_of_only_cas_is_refused():
    with pytest.raises(CertificateFormatError, match="only CA certificates"):
        end_entity(read_certificates(mail_ca().pem))


def test_an_encrypted_mail_says_to_ask_for_a_signed_one(party):
    from certs.smime import encrypt_message

    mail = encrypt_message(b"From: a@b.cn\r\nSubject: x\r\n\r\nhello\r\n", [party.cert])
    with pytest.raises(CertificateFormatError, match="ask for a signed one"):
        read_certificates(mail, name="reply.eml")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello, this is not a certificate",
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        b"From: a@b.cn\r\nSubject: no signature\r\n\r\nplain\r\n",
        rsa_key(1)
        .private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .replace(b"PRIVATE KEY", b"CERTIFICATE"),
    ],
    ids=["empty", "text", "bad-pem", "unsigned-mail", "key-as-cert"],
)
def test_no_certificate_is_a_clear_error(data):
    with pytest.raises(CertificateFormatError, match=r"^cert\.bin: no certificate found"):
        read_certificates(data, name="cert.bin")


def test_signed_mail_keeps_the_signer_key(party):
    found = read_certificates(signed_mail(party))
    assert isinstance(found[0].public_key(), rsa.RSAPublicKey)
    assert found == [party.cert]
