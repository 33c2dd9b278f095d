"""mitmproxy loads our CA from the confdir we write, and never makes one of its own."""

from __future__ import annotations

import stat

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store
from mitmproxy.certs import CertStore

from certs import ca as cas


@pytest.mark.parametrize("key_type", ["ec", "rsa"])
def test_mitmproxy_issues_leaves_from_our_ca(tmp_path, key_type):
    ca = cas.create_ca(tmp_path / "state", key_type=key_type)
    confdir = tmp_path / "mitmproxy"
    ca_file = cas.write_mitmproxy_confdir(tmp_path / "state", confdir)
    assert ca_file == confdir / "mitmproxy-ca.pem"
    assert stat.S_IMODE(ca_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(confdir.stat().st_mode) == 0o700
    written = {p.name: p.read_bytes() for p in confdir.iterdir()}

    store = CertStore.from_store(confdir, "mitmproxy", 2048)

    assert {p.name: p.read_bytes() for p in confdir.iterdir()} == written  # nothing generated
    assert store.default_ca._cert == ca.cert
    entry = store.get_cert("bank.example.cn", [x509.DNSName("bank.example.cn")])
    leaf = entry.cert._cert
    assert leaf.issuer == ca.cert.subject
    verifier = PolicyBuilder().store(Store([ca.cert]))
    chain = verifier.build_server_verifier(x509.DNSName("bank.example.cn")).verify(leaf, [])
    assert chain[-1] == ca.cert


def test_confdir_follows_rotation(tmp_path):
    from certs import rotation

    state = tmp_path / "state"
    cas.create_ca(state)
    rotation.stage_next(state)
    staged = rotation.activate_next(state, force=True)
    confdir = tmp_path / "mitmproxy"
    cas.write_mitmproxy_confdir(state, confdir)
    store = CertStore.from_store(confdir, "mitmproxy", 2048)
    assert store.default_ca._cert == staged.cert
    # only the signing CA: a second certificate there would be sent as the chain
    assert store.default_chain_file is None
    assert x509.load_pem_x509_certificates((confdir / "mitmproxy-ca-cert.pem").read_bytes()) == [
        staged.cert
    ]
