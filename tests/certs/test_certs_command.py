"""`leakguard certs …` driven through gateway.cli.main, as an operator types it."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from certs import ca as cas
from certs.describe import fingerprint
from gateway.cli import main
from tests.certs.makecerts import mail_ca, mail_cert, p7b, signed_mail

LAWYER = "lawyer@example-law.cn"


@pytest.fixture
def certs(tmp_path, capsys):
    """Run `leakguard certs ARGS --state-dir tmp`; returns (exit status, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        status = main(["certs", *args, "--state-dir", str(tmp_path / "state")])
        out, err = capsys.readouterr()
        return status, out, err

    return run


def _state(tmp_path):
    return tmp_path / "state"


def test_init_show_and_refusal_to_overwrite(certs, tmp_path):
    status, out, _ = certs("init")
    assert status == 0
    ca = cas.load_ca(_state(tmp_path))
    assert isinstance(ca.key, ec.EllipticCurvePrivateKey)
    assert stat.S_IMODE(ca.key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE((_state(tmp_path) / "ca").stat().st_mode) == 0o700
    assert fingerprint(ca.cert) in out

    status, out, err = certs("init")
    assert status == 2 and out == ""
    assert err.startswith("leakguard certs init: ") and "use --force to replace it" in err
    assert cas.load_ca(_state(tmp_path)).cert == ca.cert

    status, out, _ = certs("show")
    assert status == 0
    assert "current CA" in out and "CN=leakguard interception CA" in out
    assert fingerprint(ca.cert) in out and str(ca.cert_path) in out and str(ca.key_path) in out
    assert "EC P-256" in out

    assert certs("init", "--force")[0] == 0
    assert cas.load_ca(_state(tmp_path)).cert != ca.cert


def test_init_options(certs, tmp_path):
    status, _, _ = certs(
        "init",
        "--key-type",
        "rsa",
        "--name",
        "Firm Inspection CA",
        "--org",
        "Firm",
        "--days",
        "365",
    )
    assert status == 0
    cert = cas.load_ca(_state(tmp_path)).cert
    assert isinstance(cert.public_key(), rsa.RSAPublicKey) and cert.public_key().key_size == 3072
    assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == (
        "Firm Inspection CA"
    )
    assert cert.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)[0].value == "Firm"
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == 365  # +1 h backdating


def test_without_a_ca_every_ca_command_says_how_to_make_one(certs):
    for command in ("show", "export", "rotate"):
        status, _, err = certs(command)
        assert status == 2 and "leakguard certs init" in err, command


def test_rotation_from_the_command_line(certs, tmp_path):
    certs("init")
    old = cas.load_ca(_state(tmp_path)).cert
    status, out, _ = certs("rotate", "--overlap-days", "14")
    assert status == 0 and "leakguard certs activate" in out
    new = cas.load_ca(_state(tmp_path), cas.Slot.NEXT).cert

    status, out, _ = certs("export")
    assert status == 0
    assert x509.load_pem_x509_certificates(out.encode()) == [old, new]

    status, out, _ = certs("show")
    assert "next CA" in out and fingerprint(new) in out and fingerprint(old) in out

    status, _, err = certs("activate")
    assert status == 2 and "the overlap lasts until" in err
    assert certs("activate", "--force")[0] == 0
    assert cas.load_ca(_state(tmp_path)).cert == new

    status, out, _ = certs("show")
    assert "previous CA" in out and fingerprint(old) in out
    status, out, _ = certs("export")
    assert x509.load_pem_x509_certificates(out.encode()) == [new, old]

    assert certs("retire-previous")[0] == 0
    status, out, _ = certs("export")
    assert x509.load_pem_x509_certificates(out.encode()) == [new]
    assert certs("retire-previous")[1] == "there was no previous CA\n"


def test_der_export_holds_one_ca_and_says_so(certs, tmp_path):
    certs("init")
    certs("rotate")
    state = _state(tmp_path)
    out_file = tmp_path / "ca.der"
    status, out, err = certs("export", "--format", "der", "--out", str(out_file))
    assert status == 0 and str(out_file) in out
    assert "DER holds one certificate: exported the current CA" in err
    assert x509.load_der_x509_certificate(out_file.read_bytes()) == cas.load_ca(state).cert

    status, _, err = certs("export", "--format", "der", "--which", "next", "--out", str(out_file))
    assert status == 0 and err == ""
    staged = cas.load_ca(state, cas.Slot.NEXT).cert
    assert x509.load_der_x509_certificate(out_file.read_bytes()) == staged

    status, _, err = certs("export", "--format", "der", "--which", "trusted")
    assert status == 2 and "DER holds one certificate" in err
    status, _, err = certs("export", "--which", "previous")
    assert status == 2 and "there is no previous CA" in err


def _write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def _now() -> datetime:
    return datetime.now(UTC)


@pytest.mark.parametrize("kind", ["pem", "der", "cer", "p7b-pem", "p7b-der", "eml"])
def test_import_accepts_every_format(certs, tmp_path, kind):
    party = mail_cert(LAWYER, not_before=_now() - timedelta(days=1))
    data = {
        "pem": party.pem,
        "der": party.der,
        "cer": party.der,
        "p7b-pem": p7b(mail_ca().cert, party.cert, encoding=serialization.Encoding.PEM),
        "p7b-der": p7b(mail_ca().cert, party.cert, encoding=serialization.Encoding.DER),
        "eml": signed_mail(party, extra=(mail_ca(),)),
    }[kind]
    path = _write(tmp_path, f"lawyer.{kind.split('-')[0]}", data)
    status, out, err = certs("import", "example-law", path, "--address", LAWYER)
    assert status == 0, err
    assert "imported: certificate of party 'example-law' for lawyer@example-law.cn" in out
    assert fingerprint(party.cert) in out
    stored = _state(tmp_path) / "certs" / "parties" / "example-law.pem"
    assert x509.load_pem_x509_certificate(stored.read_bytes()) == party.cert


def test_import_refuses_with_one_line_per_problem(certs, tmp_path):
    bad = mail_cert(LAWYER, usage=("digitalSignature",), not_before=_now() - timedelta(days=1))
    path = _write(tmp_path, "bad.pem", bad.pem)
    status, out, err = certs(
        "import", "example-law", path, "--address", "partner@other.cn", "--domain", "other.cn"
    )
    assert status == 2 and out == ""
    assert err.splitlines() == [
        f"leakguard certs import: certificate for {LAWYER} may not be used for encryption: "
        "its key usage is digitalSignature (an RSA key needs keyEncipherment)",
        f"leakguard certs import: certificate for {LAWYER} is not valid for mail to "
        f"partner@other.cn: its addresses are {LAWYER}",
        f"leakguard certs import: certificate for {LAWYER} is not valid for mail to domain "
        f"other.cn: its addresses are {LAWYER}",
    ]
    assert not (_state(tmp_path) / "certs" / "parties" / "example-law.pem").exists()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda now: mail_cert(LAWYER, not_before=now - timedelta(days=400), not_after=now),
            "expired on",
        ),
        (lambda now: mail_cert(LAWYER, not_before=now + timedelta(days=3)), "is not valid before"),
        (
            lambda now: mail_cert(
                LAWYER, key=ec.generate_private_key(ec.SECP256R1()), not_before=now
            ),
            "key type EC is not supported for S/MIME encryption",
        ),
    ],
    ids=["expired", "not-yet-valid", "ec"],
)
def test_import_refuses_unusable_certificates(certs, tmp_path, make, message):
    path = _write(tmp_path, "c.pem", make(_now() - timedelta(minutes=1)).pem)
    status, _, err = certs("import", "example-law", path, "--domain", "example-law.cn")
    assert status == 2 and message in err


def test_import_errors_for_bad_party_and_bad_file(certs, tmp_path):
    good = _write(tmp_path, "c.pem", mail_cert(LAWYER).pem)
    status, _, err = certs("import", "Example Law", good)
    assert status == 2 and "invalid party id 'Example Law'" in err
    status, _, err = certs(
        "import", "example-law", _write(tmp_path, "x.txt", b"not a cert"), "--address", LAWYER
    )
    assert status == 2 and "no certificate found" in err
    status, _, err = certs(
        "import", "example-law", str(tmp_path / "missing.pem"), "--address", LAWYER
    )
    assert status == 2 and "missing.pem" in err


def test_list_flags_what_expires_within_30_days(certs, tmp_path):
    assert certs("list") == (0, "no party certificates\n", "")
    now = _now()
    fine = mail_cert(
        LAWYER, not_before=now - timedelta(days=1), not_after=now + timedelta(days=200)
    )
    assert (
        certs("import", "fine-law", _write(tmp_path, "a.pem", fine.pem), "--address", LAWYER)[0]
        == 0
    )
    assert certs("list")[0] == 0

    soon = mail_cert(
        "clerk@soon-law.cn", not_before=now - timedelta(days=1), not_after=now + timedelta(days=10)
    )
    status, _, err = certs(
        "import", "soon-law", _write(tmp_path, "b.pem", soon.pem), "--domain", "soon-law.cn"
    )
    assert status == 0 and "warning: certificate of party 'soon-law' expires on" in err

    status, out, _ = certs("list")
    assert status == 1
    lines = out.splitlines()
    assert lines[0].split() == ["PARTY", "STATUS", "EXPIRES", "ADDRESSES"]
    assert lines[1].split()[:2] == ["fine-law", "ok"]
    assert lines[2].split()[:2] == ["soon-law", "expiring!"]
    assert "within 30 days" in lines[-1]

    status, out, _ = certs("list", "--json")
    rows = {r["party"]: r for r in map(json.loads, out.splitlines())}
    assert status == 1
    assert rows["soon-law"]["state"] == "expiring" and rows["soon-law"]["flagged"] is True
    assert rows["soon-law"]["days_left"] in (9, 10)
    assert rows["fine-law"]["flagged"] is False
    assert rows["fine-law"]["addresses"] == [LAWYER]
    assert rows["fine-law"]["not_after"] == fine.cert.not_valid_after_utc.isoformat()


def test_import_takes_the_party_addresses_from_the_policy(certs, tmp_path):
    """Without --address/--domain the policy's parties.yaml says what the certificate must cover."""
    good = mail_cert("case@lawfirm.example", not_before=_now() - timedelta(days=1))
    status, out, err = certs("import", "example-law-firm", _write(tmp_path, "good.pem", good.pem))
    assert status == 0, err
    assert "for case@lawfirm.example" in out

    wrong = mail_cert(LAWYER, not_before=_now() - timedelta(days=1))
    status, _, err = certs("import", "example-law-firm", _write(tmp_path, "wrong.pem", wrong.pem))
    assert status == 2
    assert "lawfirm.example" in err and LAWYER in err

    status, _, err = certs("import", "no-such-party", _write(tmp_path, "x.pem", good.pem))
    assert status == 2
    assert "party 'no-such-party' is not in" in err and "parties.yaml" in err
