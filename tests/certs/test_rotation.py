"""Rotation: clients get the new CA before the proxy signs with it, so nobody sees an error."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from certs import ca as cas
from certs import rotation
from certs.errors import CAError, CAExists, CAMissing
from tests.certs.makecerts import NOW

HOST = "intranet.firm.test"


def _leaf(ca: cas.CA) -> x509.Certificate:
    return x509.load_pem_x509_certificate(cas.issue_server_certificate(ca, [HOST], now=NOW)[0])


def _validates(leaf: x509.Certificate, trusted: list[cas.CA]) -> bool:
    store = Store([ca.cert for ca in trusted])
    verifier = PolicyBuilder().store(store).time(NOW + timedelta(days=1))
    try:
        verifier.build_server_verifier(x509.DNSName(HOST)).verify(leaf, [])
    except VerificationError:
        return False
    return True


def test_leaves_of_old_and_new_ca_both_validate_through_the_overlap(tmp_path):
    old = cas.create_ca(tmp_path, now=NOW)
    new = rotation.stage_next(tmp_path, overlap_days=30, now=NOW)
    assert new.cert != old.cert and new.cert.subject != old.cert.subject
    assert cas.load_ca(tmp_path).cert == old.cert  # the proxy still signs with the old one
    old_leaf, new_leaf = _leaf(old), _leaf(new)
    trusted = rotation.trusted_cas(tmp_path)
    assert [ca.slot for ca in trusted] == ["current", "next"]
    assert _validates(old_leaf, trusted) and _validates(new_leaf, trusted)
    # and the test can fail: neither validates against the other CA alone
    assert not _validates(new_leaf, [old]) and not _validates(old_leaf, [new])

    with pytest.raises(CAError, match="overlap lasts until 2026-07-01"):
        rotation.activate_next(tmp_path, now=NOW + timedelta(days=29))
    current = rotation.activate_next(tmp_path, now=NOW + timedelta(days=31))
    assert current.cert == new.cert and not current.rotation
    trusted = rotation.trusted_cas(tmp_path)
    assert [ca.slot for ca in trusted] == ["current", "previous"]
    assert trusted[1].cert == old.cert and trusted[1].moment("retired") is not None
    assert _validates(old_leaf, trusted) and _validates(new_leaf, trusted)

    assert rotation.retire_previous(tmp_path)
    trusted = rotation.trusted_cas(tmp_path)
    assert [ca.cert for ca in trusted] == [new.cert]
    assert not _validates(old_leaf, trusted)
    assert not rotation.retire_previous(tmp_path)


def test_next_inherits_the_current_key_type_and_names(tmp_path):
    cas.create_ca(tmp_path, key_type="rsa", common_name="Firm CA", organization="Firm", now=NOW)
    staged = rotation.stage_next(tmp_path, now=NOW)
    assert staged.cert.public_key().key_size == cas.RSA_BITS
    subject = staged.cert.subject
    assert subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "Firm CA"
    assert subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)[0].value == "Firm"
    assert staged.moment("activate_after") == NOW + timedelta(days=30)


def test_a_staged_ca_is_not_replaced_without_force(tmp_path):
    cas.create_ca(tmp_path, now=NOW)
    first = rotation.stage_next(tmp_path, now=NOW)
    with pytest.raises(CAExists, match="already staged"):
        rotation.stage_next(tmp_path, now=NOW)
    assert cas.load_ca(tmp_path, cas.Slot.NEXT).cert == first.cert
    assert rotation.stage_next(tmp_path, now=NOW, force=True).cert != first.cert


def test_rotation_needs_a_current_ca_and_activation_a_staged_one(tmp_path):
    with pytest.raises(CAMissing):
        rotation.stage_next(tmp_path, now=NOW)
    cas.create_ca(tmp_path, now=NOW)
    with pytest.raises(CAMissing, match="leakguard certs rotate"):
        rotation.activate_next(tmp_path, now=NOW)


def test_forced_activation_and_a_second_rotation_drop_the_oldest(tmp_path):
    first = cas.create_ca(tmp_path, now=NOW)
    rotation.stage_next(tmp_path, now=NOW)
    second = rotation.activate_next(tmp_path, now=NOW, force=True)
    rotation.stage_next(tmp_path, overlap_days=0, now=NOW)
    third = rotation.activate_next(tmp_path, now=NOW)
    certs = [ca.cert for ca in rotation.trusted_cas(tmp_path)]
    assert certs == [third.cert, second.cert] and first.cert not in certs
    assert sorted(p.name for p in (tmp_path / "ca").iterdir()) == ["current", "previous"]


def test_interrupted_activation_finishes_when_run_again(tmp_path):
    old = cas.create_ca(tmp_path, now=NOW)
    new = rotation.stage_next(tmp_path, now=NOW)
    # as if the process died between the two renames
    (tmp_path / "ca" / "current").rename(tmp_path / "ca" / "previous")
    assert rotation.activate_next(tmp_path, now=NOW, force=True).cert == new.cert
    assert cas.load_ca(tmp_path, cas.Slot.PREVIOUS).cert == old.cert
