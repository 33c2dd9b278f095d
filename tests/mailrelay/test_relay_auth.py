"""Who may relay and how much: AUTH only after STARTTLS, trusted networks, no open relay, limits."""

from __future__ import annotations

import base64
import dataclasses
import io
import os
import smtplib
import ssl
import stat
import time
from pathlib import Path

import pytest

from mailrelay import auth
from mailrelay.server import RelaySettings
from mailrelay.spool import QUEUE
from tests.support.smtp import RecordingSink, RelayThread, deliver_all

PASSWORD = "correct horse battery staple"
COURT = "clerk@court.example"
SENDER = "alice@firm.example"
MESSAGE = b"From: alice@firm.example\r\nSubject: hi\r\n\r\nbody\r\n"


@pytest.fixture
def sink():
    with RecordingSink() as s:
        yield s


@pytest.fixture
def users_file(tmp_path: Path) -> Path:
    path = tmp_path / "users"
    auth.set_user(path, "alice", PASSWORD)
    return path


@pytest.fixture
def start(tmp_path: Path, sink: RecordingSink, users_file: Path):
    running: list[RelayThread] = []

    def start_relay(**overrides) -> RelayThread:
        base = RelaySettings(
            listen=("127.0.0.1", 0),
            hostname="relay.test",
            smarthost=sink.address,
            smarthost_verify=False,
            users_file=users_file,
            trusted_networks=("10.0.0.0/8",),  # loopback is NOT trusted here
            workers=2,
        )
        settings = dataclasses.replace(base, **overrides)
        relay = RelayThread(settings, deliver_all, tmp_path / "state").start()
        running.append(relay)
        return relay

    yield start_relay
    for relay in running:
        relay.stop()


def tls_context(relay: RelayThread) -> ssl.SSLContext:
    ca = relay.relay.state_dir / "ca" / "current" / "ca-cert.pem"
    return ssl.create_default_context(cafile=str(ca))


def connect(relay: RelayThread, *, tls: bool) -> smtplib.SMTP:
    client = smtplib.SMTP(*relay.address, timeout=30)
    client.ehlo("client.example")
    if tls:
        client.starttls(context=tls_context(relay))  # verifies the certificate from our CA
        client.ehlo("client.example")
    return client


# -- never an open relay ---------------------------------------------------------------------


def test_unauthenticated_client_from_an_untrusted_network_is_refused(start, sink):
    relay = start()
    with connect(relay, tls=False) as client:
        code, text = client.mail(SENDER)
        assert (code, text[:5]) == (530, b"5.7.0")
        assert client.rcpt(COURT)[0] == 503  # no MAIL, no RCPT
    with connect(relay, tls=True) as client:  # TLS alone is not enough
        assert client.mail(SENDER)[0] == 530
    time.sleep(0.2)
    assert sink.messages == []
    assert relay.events_of("smtp.refused")


def test_a_trusted_network_relays_without_auth(start, sink):
    relay = start(trusted_networks=("127.0.0.0/8",))
    with connect(relay, tls=False) as client:
        client.sendmail(SENDER, [COURT], MESSAGE)
    sink.wait_for(1)


# -- AUTH --------------------------------------------------------------------------------------


def test_auth_is_neither_offered_nor_accepted_before_starttls(start):
    relay = start()
    with connect(relay, tls=False) as client:
        assert client.has_extn("starttls") and not client.has_extn("auth")
        blob = base64.b64encode(f"\0alice\0{PASSWORD}".encode()).decode()
        code, text = client.docmd("AUTH", f"PLAIN {blob}")
        assert code == 538 and text.startswith(b"5.7.11")


def test_auth_plain_after_starttls_then_relay(start, sink):
    relay = start()
    with connect(relay, tls=True) as client:
        assert client.has_extn("auth")
        assert sorted(client.esmtp_features["auth"].split()) == ["LOGIN", "PLAIN"]
        code, _ = client.login("alice", PASSWORD)
        assert code == 235
        client.sendmail(SENDER, [COURT], MESSAGE)
    (got,) = sink.wait_for(1)
    assert b"with ESMTPSA id" in got.data
    (accepted,) = relay.events_of("smtp.accepted")
    assert accepted["user"] == "alice"


def test_auth_login_mechanism(start, sink):
    relay = start()
    with connect(relay, tls=True) as client:
        client.user, client.password = "alice", PASSWORD
        code, _ = client.auth("LOGIN", client.auth_login, initial_response_ok=False)
        assert code == 235
        client.sendmail(SENDER, [COURT], MESSAGE)
    sink.wait_for(1)


def test_wrong_password_is_535_and_the_third_failure_closes(start, sink):
    relay = start()

    def plain(client: smtplib.SMTP, user: str, password: str):
        client.user, client.password = user, password
        return client.auth("PLAIN", client.auth_plain)

    with connect(relay, tls=True) as client:
        for _ in range(2):
            with pytest.raises(smtplib.SMTPAuthenticationError) as err:
                plain(client, "alice", "wrong password!")
            assert err.value.smtp_code == 535 and err.value.smtp_error.startswith(b"5.7.8")
        with pytest.raises(smtplib.SMTPAuthenticationError) as err:
            plain(client, "nobody", PASSWORD)
        assert err.value.smtp_code == 421
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.mail(SENDER)
    failures = relay.events_of("smtp.auth.failure")
    assert [e["user"] for e in failures] == ["alice", "alice", "nobody"]
    assert PASSWORD not in repr(relay.events) and "wrong password!" not in repr(relay.events)


def test_without_a_users_file_nobody_authenticates(start):
    relay = start(users_file=None)
    with connect(relay, tls=True) as client:
        assert not client.has_extn("auth")
        blob = base64.b64encode(f"\0alice\0{PASSWORD}".encode()).decode()
        assert client.docmd("AUTH", f"PLAIN {blob}")[0] == 535
        assert client.mail(SENDER)[0] == 530


# -- limits ------------------------------------------------------------------------------------


def test_size_is_advertised_and_enforced(start, sink):
    relay = start(trusted_networks=("127.0.0.0/8",), max_message_size=100_000)
    with connect(relay, tls=False) as client:
        assert client.esmtp_features["size"] == "100000"
        code, text = client.mail(SENDER, ["SIZE=200000"])
        assert (code, text[:5]) == (552, b"5.3.4")
        client.rset()
        client.mail(SENDER)
        client.rcpt(COURT)
        code, text = client.data(MESSAGE + (b"x" * 998 + b"\r\n") * 150)
        assert (code, text[:5]) == (552, b"5.3.4")
        assert b"maximum message size" in text
    assert sink.messages == [] and relay.relay.spool.names(QUEUE) == []


def test_too_many_recipients_is_452(start, sink):
    relay = start(trusted_networks=("127.0.0.0/8",), max_recipients=3)
    with connect(relay, tls=False) as client:
        client.mail(SENDER)
        for i in range(3):
            assert client.rcpt(f"r{i}@court.example")[0] == 250
        code, text = client.rcpt("r3@court.example")
        assert (code, text[:5]) == (452, b"4.5.3")
        assert client.data(MESSAGE)[0] == 250  # the first three go
    (got,) = sink.wait_for(1)
    assert len(got.rcpt_tos) == 3


@pytest.mark.parametrize(
    "header,expected",
    [
        pytest.param(
            "".join(f"X-H{i}: v\r\n" for i in range(30)), b"Too many header fields", id="count"
        ),
        pytest.param(
            "X-Long: " + "\r\n ".join(["y" * 900] * 10) + "\r\n", b"X-Long too long", id="field"
        ),
        pytest.param(
            "".join(f"X-Big{i}: {'z' * 900}\r\n" for i in range(20)),
            b"header too large",
            id="block",
        ),
    ],
)
def test_header_limits(start, sink, header, expected):
    relay = start(
        trusted_networks=("127.0.0.0/8",),
        max_header_fields=25,
        max_header_field_bytes=4096,
        max_header_bytes=16384,
    )
    with connect(relay, tls=False) as client:
        client.mail(SENDER)
        client.rcpt(COURT)
        code, text = client.data(header.encode() + b"Subject: x\r\n\r\nbody\r\n")
    assert code == 552 and text.startswith(b"5.3.4") and expected in text
    assert relay.relay.spool.names(QUEUE) == []


# -- the users file ----------------------------------------------------------------------------


def test_hashes_are_salted_scrypt(users_file: Path):
    text = users_file.read_text()
    (line,) = [ln for ln in text.splitlines() if ln.startswith("alice:")]
    stored = line.split(":", 1)[1]
    assert stored.startswith("$scrypt$ln=14,r=8,p=1$")
    assert PASSWORD not in text
    assert auth.check_password(stored, PASSWORD)
    assert not auth.check_password(stored, PASSWORD + "!")
    assert auth.hash_password(PASSWORD) != auth.hash_password(PASSWORD)  # a salt each time
    assert stat.S_IMODE(os.stat(users_file).st_mode) == 0o600


@pytest.mark.parametrize(
    "stored", ["", "plain", "$md5$x$y$z", "$scrypt$ln=40,r=8,p=1$AA$AA", "$scrypt$ln=x$$"]
)
def test_malformed_hashes_never_match(stored):
    assert not auth.check_password(stored, "")


def test_users_file_is_reread_when_it_changes(users_file: Path):
    users = auth.Users(users_file)
    assert users.verify("alice", PASSWORD) and not users.verify("bob", "bobs password!")
    auth.set_user(users_file, "bob", "bobs password!")
    assert users.verify(b"bob", b"bobs password!")
    auth.set_user(users_file, "alice", None)
    assert not users.verify("alice", PASSWORD)
    with pytest.raises(KeyError):
        auth.set_user(users_file, "alice", None)
    with pytest.raises(ValueError):
        auth.set_user(users_file, "a:b", "x")


def test_the_add_helper(tmp_path: Path, monkeypatch):
    path = tmp_path / "users"
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert auth.main(["add", str(path), "carol", "--password-stdin"]) == 0
    assert auth.Users(path).verify("carol", "a long enough password")
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert auth.main(["add", str(path), "dave", "--password-stdin"]) == 2


@pytest.mark.parametrize(
    "address,trusted",
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("::ffff:127.0.0.5", True),
        ("10.1.2.3", False),
        ("fe80::1%eth0", False),
        ("not an address", False),
    ],
)
def test_trusted_networks(address, trusted):
    networks = auth.parse_networks(auth.DEFAULT_TRUSTED_NETWORKS)
    assert auth.in_networks(address, networks) is trusted


def test_bad_network_is_named():
    with pytest.raises(ValueError, match=r"10\.0\.0\.300"):
        auth.parse_networks(["10.0.0.300/8"])
