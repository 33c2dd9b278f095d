"""Can mail to a party be encrypted with this certificate? One sentence per reason it cannot."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from certs.errors import CertificateRejected, InvalidPartyId
from certs.parties import (
    CertState,
    PartyCertificates,
    check_recipient_certificate,
    expiring,
    import_certificate,
)
from tests.certs.makecerts import ENCRYPT, NOW, SIGN_ONLY, mail_cert, signed_mail

LAWYER = "lawyer@example-law.cn"


def test_a_good_certificate_has_no_problems():
    cert = mail_cert(LAWYER).cert
    assert check_recipient_certificate(cert, addresses=[LAWYER], now=NOW) == []
    assert check_recipient_certificate(cert, addresses=["Lawyer@Example-Law.CN"], now=NOW) == []
    assert check_recipient_certificate(cert, domains=["example-law.cn"], now=NOW) == []


def test_without_key_usage_or_eku_any_use_is_allowed():
    cert = mail_cert(LAWYER, usage=None, eku=None).cert
    assert check_recipient_certificate(cert, addresses=[LAWYER], now=NOW) == []


@pytest.mark.parametrize(
    ("make", "kwargs", "expected"),
    [
        (
            lambda: mail_cert(LAWYER),
            {"addresses": ["partner@other.cn"]},
            f"certificate for {LAWYER} is not valid for mail to partner@other.cn: "
            f"its addresses are {LAWYER}",
        ),
        (
            lambda: mail_cert(LAWYER),
            {"domains": ["other.cn"]},
            f"certificate for {LAWYER} is not valid for mail to domain other.cn: "
            f"its addresses are {LAWYER}",
        ),
        (
            lambda: mail_cert(LAWYER, usage=(SIGN_ONLY, "nonRepudiation")),
            {},
            f"certificate for {LAWYER} may not be used for encryption: its key usage is "
            "digitalSignature, nonRepudiation (an RSA key needs keyEncipherment)",
        ),
        (
            lambda: mail_cert(
                LAWYER,
                eku=(ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH),
            ),
            {},
            f"certificate for {LAWYER} is not for e-mail: its extended key usage is "
            "serverAuth, clientAuth (needs emailProtection)",
        ),
        (
            lambda: mail_cert(LAWYER, not_after=NOW - timedelta(days=1)),
            {},
            f"certificate for {LAWYER} expired on 2026-05-31",
        ),
        (
            lambda: mail_cert(LAWYER, not_before=NOW + timedelta(days=7)),
            {},
            f"certificate for {LAWYER} is not valid before 2026-06-08",
        ),
        (
            lambda: mail_cert(
                LAWYER,
                key=ec.generate_private_key(ec.SECP256R1()),
                usage=(SIGN_ONLY, "keyAgreement"),
            ),
            {},
            f"certificate for {LAWYER}: key type EC is not supported for S/MIME encryption "
            "(RSA only)",
        ),
        (
            lambda: mail_cert(),
            {"addresses": [LAWYER]},
            "certificate for CN=Example Law Partner is not valid for mail to "
            f"{LAWYER}: it names no e-mail address",
        ),
    ],
    ids=[
        "wrong-address",
        "wrong-domain",
        "key-usage",
        "eku",
        "expired",
        "not-yet-valid",
        "ec-key",
        "no-address",
    ],
)
def test_each_problem_is_one_clear_sentence(make, kwargs, expected):
    assert check_recipient_certificate(make().cert, now=NOW, **kwargs) == [expected]


def test_problems_add_up():
    cert = mail_cert(LAWYER, usage=(SIGN_ONLY,), not_after=NOW - timedelta(days=1)).cert
    problems = check_recipient_certificate(cert, addresses=["a@other.cn", "b@other.cn"], now=NOW)
    assert len(problems) == 4
    assert "expired" in problems[0] and "keyEncipherment" in problems[1]


def test_legacy_subject_email_counts_only_without_san_addresses():
    legacy = mail_cert(subject_email=LAWYER).cert
    assert check_recipient_certificate(legacy, addresses=[LAWYER], now=NOW) == []
    both = mail_cert("other@example-law.cn", subject_email=LAWYER).cert
    assert check_recipient_certificate(both, addresses=[LAWYER], now=NOW) != []


def test_naive_now_is_refused():
    with pytest.raises(ValueError, match="time zone"):
        check_recipient_certificate(mail_cert(LAWYER).cert, now=NOW.replace(tzinfo=None))


def test_import_stores_certificate_and_metadata(tmp_path):
    store = PartyCertificates(tmp_path)
    party = mail_cert(LAWYER)
    cert = import_certificate(
        store,
        "example-law",
        signed_mail(party),
        name="cert.eml",
        addresses=[LAWYER],
        domains=["example-law.cn"],
        now=NOW,
    )
    assert cert == party.cert
    assert store.get("example-law") == party.cert
    assert store.list() == ["example-law"]
    assert (tmp_path / "certs" / "parties" / "example-law.pem").is_file()
    meta = store.metadata("example-law")
    assert meta["addresses"] == [LAWYER] and meta["source"] == "cert.eml"
    assert meta == json.loads((tmp_path / "certs/parties/example-law.json").read_text())


def test_import_refuses_with_every_problem_and_stores_nothing(tmp_path):
    store = PartyCertificates(tmp_path)
    bad = mail_cert(LAWYER, usage=(SIGN_ONLY,))
    with pytest.raises(CertificateRejected) as err:
        import_certificate(
            store, "example-law", bad.pem, name="x.pem", addresses=["p@other.cn"], now=NOW
        )
    assert len(err.value.problems) == 2
    assert store.get("example-law") is None and store.list() == []


@pytest.mark.parametrize("party", ["", "Upper", "-lead", "a/b", "../x", "a b", "x" * 65])
def test_party_ids_are_validated(tmp_path, party):
    with pytest.raises(InvalidPartyId):
        PartyCertificates(tmp_path).path(party)


def test_status_through_a_certificate_life(tmp_path):
    store = PartyCertificates(tmp_path)
    assert store.status("lawfirm", NOW).state is CertState.MISSING
    assert "leakguard certs import lawfirm FILE" in store.status("lawfirm", NOW).message
    party = mail_cert(LAWYER, not_after=NOW + timedelta(days=60))
    store.add("lawfirm", party.cert, addresses=[], domains=[], source="t", now=NOW)

    def at(days: int):
        return store.status("lawfirm", NOW + timedelta(days=days))

    assert at(-31).state is CertState.NOT_YET_VALID
    assert at(0).state is CertState.OK and at(0).usable
    assert at(29).state is CertState.OK  # 31 days left
    assert at(30).state is CertState.EXPIRING and at(30).usable  # 30 days left
    assert at(61).state is CertState.EXPIRED and not at(61).usable
    assert at(61).message == "certificate of party 'lawfirm' expired on 2026-07-31"
    assert at(61).not_after == party.cert.not_valid_after_utc


def test_expiring_lists_expiring_and_expired_only(tmp_path):
    store = PartyCertificates(tmp_path)
    for party, days in (("soon", 10), ("later", 200), ("gone", -5)):
        cert = mail_cert(LAWYER, not_after=NOW + timedelta(days=days)).cert
        store.add(party, cert, addresses=[], domains=[], source="t", now=NOW)
    flagged = {s.party: s.state for s in expiring(store, NOW)}
    assert flagged == {"soon": CertState.EXPIRING, "gone": CertState.EXPIRED}
    assert {s.party for s in expiring(store, NOW, within=timedelta(days=365))} == {
        "soon",
        "later",
        "gone",
    }


def test_encrypt_usage_for_ec_is_key_agreement():
    cert = mail_cert(LAWYER, key=ec.generate_private_key(ec.SECP256R1()), usage=(ENCRYPT,)).cert
    problems = check_recipient_certificate(cert, now=NOW)
    assert any("an EC key needs keyAgreement" in p for p in problems)
