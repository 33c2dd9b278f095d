"""S/MIME: mail encrypted to an imported certificate opens with the party's key, AES-256."""

from __future__ import annotations

import base64
import email
import email.policy
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from certs.errors import CannotEncrypt
from certs.parties import PartyCertificates, import_certificate
from certs.smime import decrypt_message, encrypt_message, encryption_certificate
from tests.certs.makecerts import NOW, mail_cert, rsa_key, signed_mail

LAWYER = "lawyer@example-law.cn"
AES256_CBC = bytes.fromhex("060960864801650304012a")  # OID 2.16.840.1.101.3.4.1.42 in DER
AES128_CBC = bytes.fromhex("0609608648016503040102")  # 2.16.840.1.101.3.4.1.2


def _mail() -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "collector@firm.test"
    msg["To"] = LAWYER
    msg["Subject"] = "委托书 case 2026-118"
    msg["Date"] = "Mon, 01 Jun 2026 12:00:00 +0800"
    msg["Message-ID"] = "<case-2026-118@firm.test>"
    msg.set_content("身份证号 11010519491231002X，请查收附件。")
    msg.add_attachment(b"%PDF-1.7 fake", maintype="application", subtype="pdf", filename="a.pdf")
    return msg


def _envelope_der(encrypted: bytes) -> bytes:
    outer = email.message_from_bytes(encrypted, policy=email.policy.default)
    return base64.b64decode(outer.get_payload())


def test_round_trip_through_an_imported_certificate(tmp_path):
    party = mail_cert(LAWYER)
    store = PartyCertificates(tmp_path)
    import_certificate(store, "lawfirm", signed_mail(party), name="c.eml", now=NOW)
    cert = encryption_certificate(store, "lawfirm", NOW, addresses=[LAWYER])
    original = _mail()

    encrypted = encrypt_message(original, [cert])

    outer = email.message_from_bytes(encrypted, policy=email.policy.default)
    for header in ("From", "To", "Subject", "Date", "Message-ID"):
        assert outer[header] == original[header]
    assert outer.get_content_type() == "application/pkcs7-mime"
    assert outer.get_param("smime-type") == "enveloped-data"
    assert "身份证".encode() not in encrypted and b"11010519491231002X" not in encrypted
    assert b"a.pdf" not in encrypted  # attachment names are inside the envelope too
    der = _envelope_der(encrypted)
    assert AES256_CBC in der and AES128_CBC not in der

    inner = email.message_from_bytes(
        decrypt_message(encrypted, party.cert, party.key), policy=email.policy.default
    )
    assert inner.get_content_type() == "multipart/mixed"
    assert inner["Subject"] is None  # headers outside are not repeated inside
    text, attachment = list(inner.iter_parts())
    assert text.get_content().strip() == "身份证号 11010519491231002X，请查收附件。"
    assert attachment.get_filename() == "a.pdf"
    assert attachment.get_content() == b"%PDF-1.7 fake"


def test_the_body_is_enveloped_byte_for_byte():
    party = mail_cert(LAWYER)
    raw = (
        b"From: a@firm.test\r\nTo: lawyer@example-law.cn\r\nSubject: x\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n"
        + "第一行\r\n  indented line\r\n\r\nlast".encode()
    )
    inner = decrypt_message(encrypt_message(raw, [party.cert]), party.cert, party.key)
    assert inner == (
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        + "第一行\r\n  indented line\r\n\r\nlast".encode()
    )


def test_every_recipient_can_open_it():
    first = mail_cert(LAWYER)
    second = mail_cert("partner@example-law.cn", key=rsa_key(3))
    encrypted = encrypt_message(b"Subject: x\r\n\r\nbody\r\n", [first.cert, second.cert])
    for who in (first, second):
        assert decrypt_message(encrypted, who.cert, who.key).endswith(b"\r\n\r\nbody\r\n")
    stranger = mail_cert("x@other.cn", key=rsa_key(4))
    with pytest.raises(ValueError):
        decrypt_message(encrypted, stranger.cert, stranger.key)


def test_ec_recipients_cannot_be_encrypted_to():
    ec_party = mail_cert(LAWYER, key=ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(CannotEncrypt) as err:
        encrypt_message(b"Subject: x\r\n\r\nbody\r\n", [ec_party.cert])
    assert err.value.reason == "certificate key type EC is not supported for S/MIME encryption"
    with pytest.raises(CannotEncrypt, match="no recipient"):
        encrypt_message(b"Subject: x\r\n\r\nbody\r\n", [])


@pytest.fixture
def store(tmp_path) -> PartyCertificates:
    return PartyCertificates(tmp_path)


def test_expired_party_cannot_be_encrypted_to_and_says_since_when(store):
    expiry = datetime(2026, 10, 1, 12, tzinfo=UTC)
    store.add("lawfirm", mail_cert(LAWYER, not_after=expiry).cert, **_meta())
    assert encryption_certificate(store, "lawfirm", expiry - timedelta(days=1))
    with pytest.raises(CannotEncrypt) as err:
        encryption_certificate(store, "lawfirm", expiry + timedelta(days=1))
    assert err.value.party == "lawfirm"
    assert err.value.reason == "certificate of party 'lawfirm' expired on 2026-10-01"


def test_missing_wrong_address_and_ec_are_each_refused(store):
    with pytest.raises(CannotEncrypt, match="party 'nobody' has no certificate"):
        encryption_certificate(store, "nobody", NOW)
    store.add("lawfirm", mail_cert(LAWYER).cert, **_meta())
    with pytest.raises(CannotEncrypt, match=r"not valid for mail to partner@other\.cn"):
        encryption_certificate(store, "lawfirm", NOW, addresses=["partner@other.cn"])
    ec_cert = mail_cert(LAWYER, key=ec.generate_private_key(ec.SECP256R1())).cert
    store.add("ecfirm", ec_cert, **_meta())
    with pytest.raises(CannotEncrypt, match="key type EC is not supported"):
        encryption_certificate(store, "ecfirm", NOW)


def _meta() -> dict:
    return {"addresses": [], "domains": [], "source": "test", "now": NOW}
