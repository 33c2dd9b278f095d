"""The interception CA: what it is, where it lives, who may read its key."""

from __future__ import annotations

import os
import stat
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.verification import PolicyBuilder, Store

from certs import ca as cas
from certs.errors import CAError, CAExists, CAMissing
from tests.certs.makecerts import NOW


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(
    ("key_type", "key_class", "size"),
    [("ec", ec.EllipticCurvePrivateKey, 256), ("rsa", rsa.RSAPrivateKey, 3072)],
)
def test_ca_certificate_is_a_leaf_only_ca(tmp_path, key_type, key_class, size):
    ca = cas.create_ca(tmp_path, key_type=key_type, now=NOW)
    assert isinstance(ca.key, key_class) and ca.key.key_size == size
    cert = ca.cert
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
    assert not ku.value.digital_signature and not ku.value.key_encipherment
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(ca.key.public_key())
    assert cert.subject == cert.issuer
    cn = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    assert cn == cas.DEFAULT_COMMON_NAME
    assert (cert.not_valid_after_utc - NOW).days == cas.DEFAULT_CA_DAYS
    assert cert.not_valid_before_utc < NOW  # backdated for clients with a slow clock


def test_files_and_modes(tmp_path):
    ca = cas.create_ca(tmp_path, now=NOW)
    assert ca.key_path == tmp_path / "ca" / "current" / "ca-key.pem"
    assert ca.cert_path == tmp_path / "ca" / "current" / "ca-cert.pem"
    assert _mode(ca.key_path) == 0o600
    assert _mode(tmp_path / "ca") == 0o700
    assert _mode(ca.directory) == 0o700
    assert ca.key_path.stat().st_uid == os.getuid()
    assert [p.name for p in (tmp_path / "ca").iterdir()] == ["current"]  # no staging left over


def test_key_mode_holds_under_a_permissive_umask(tmp_path):
    old = os.umask(0)
    try:
        ca = cas.create_ca(tmp_path, now=NOW)
    finally:
        os.umask(old)
    assert _mode(ca.key_path) == 0o600 and _mode(tmp_path / "ca") == 0o700


def test_refuses_to_overwrite_without_force(tmp_path):
    first = cas.create_ca(tmp_path, now=NOW)
    with pytest.raises(CAExists, match="--force"):
        cas.create_ca(tmp_path, now=NOW)
    assert cas.load_ca(tmp_path).cert == first.cert
    second = cas.create_ca(tmp_path, force=True, now=NOW)
    assert second.cert != first.cert
    assert cas.load_ca(tmp_path).cert == second.cert
    assert _mode(second.key_path) == 0o600
    assert sorted(p.name for p in (tmp_path / "ca").iterdir()) == ["current"]


def test_racing_inits_leave_exactly_one_ca(tmp_path):
    results: list[object] = []

    def init() -> None:
        try:
            results.append(cas.create_ca(tmp_path, now=NOW))
        except CAExists as err:
            results.append(err)

    threads = [threading.Thread(target=init) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if isinstance(r, cas.CA)]
    assert len(winners) == 1
    assert cas.load_ca(tmp_path).cert == winners[0].cert


def test_load_refuses_a_key_others_can_read(tmp_path):
    ca = cas.create_ca(tmp_path, now=NOW)
    ca.key_path.chmod(0o644)
    with pytest.raises(CAError, match="readable by others"):
        cas.load_ca(tmp_path)


def test_load_refuses_a_key_of_another_certificate(tmp_path):
    ca = cas.create_ca(tmp_path / "a", now=NOW)
    other = cas.create_ca(tmp_path / "b", now=NOW)
    ca.key_path.write_bytes(other.key_path.read_bytes())
    with pytest.raises(CAError, match="does not belong"):
        cas.load_ca(tmp_path / "a")


def test_missing_ca_says_how_to_create_one(tmp_path):
    with pytest.raises(CAMissing, match="leakguard certs init"):
        cas.load_ca(tmp_path)
    assert cas.find_ca(tmp_path) is None


@pytest.mark.parametrize("key_type", ["ec", "rsa"])
def test_server_certificate_validates_for_its_names(tmp_path, key_type):
    ca = cas.create_ca(tmp_path, key_type=key_type)
    cert_pem, key_pem = cas.issue_server_certificate(ca, ["relay.firm.test", "10.1.2.3"])
    leaf = x509.load_pem_x509_certificate(cert_pem)
    assert b"PRIVATE KEY" in key_pem
    builder = PolicyBuilder().store(Store([ca.cert]))
    chain = builder.build_server_verifier(x509.DNSName("relay.firm.test")).verify(leaf, [])
    assert chain[-1] == ca.cert
    ip = x509.IPAddress(__import__("ipaddress").ip_address("10.1.2.3"))
    assert builder.build_server_verifier(ip).verify(leaf, [])
    with pytest.raises(x509.verification.VerificationError):
        builder.build_server_verifier(x509.DNSName("other.test")).verify(leaf, [])
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]


def test_server_certificate_never_outlives_the_ca(tmp_path):
    ca = cas.create_ca(tmp_path, days=30)
    cert_pem, _ = cas.issue_server_certificate(ca, ["relay.firm.test"], days=397)
    leaf = x509.load_pem_x509_certificate(cert_pem)
    assert leaf.not_valid_after_utc == ca.cert.not_valid_after_utc
