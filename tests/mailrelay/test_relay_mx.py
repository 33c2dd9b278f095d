"""Direct delivery to MX, for real: a DNS server on loopback (dnspython's own message
classes answering UDP) whose MX records point at recording sinks on loopback addresses.

The relay's resolver asks only that server (RelaySettings.dns_servers) and reaches the
MX hosts on the sinks' port (mx_port; MX records carry no port).
"""

from __future__ import annotations

import smtplib
import socket
import threading
import time

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest

from mailrelay.server import RelayError, RelaySettings
from tests.support.smtp import RecordingSink, RelayThread, deliver_all, free_port

SENDER = "alice@firm.test"


class TinyDNS:
    """Authoritative answers from a dict {(name, type): [rdata text]} over UDP on loopback.

    A name that appears under no type is NXDOMAIN; a known name asked for another type
    is an empty NOERROR answer; `servfail` set answers every query SERVFAIL.
    """

    def __init__(self, records: dict[tuple[str, str], list[str]]) -> None:
        self.records = {(n.lower().rstrip("."), t): v for (n, t), v in records.items()}
        self.servfail = False
        self.asked: list[tuple[str, str]] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.address = self.sock.getsockname()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                wire, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            query = dns.message.from_wire(wire)
            response = dns.message.make_response(query)
            response.flags |= dns.flags.AA
            question = query.question[0]
            name = question.name.to_text(omit_final_dot=True).lower()
            rdtype = dns.rdatatype.to_text(question.rdtype)
            self.asked.append((name, rdtype))
            if self.servfail:
                response.set_rcode(dns.rcode.SERVFAIL)
            elif not any(n == name for n, _ in self.records):
                response.set_rcode(dns.rcode.NXDOMAIN)
            elif (name, rdtype) in self.records:
                rrset = dns.rrset.from_text_list(
                    question.name, 60, "IN", rdtype, self.records[(name, rdtype)]
                )
                response.answer.append(rrset)
            self.sock.sendto(response.to_wire(), peer)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def port():
    return free_port()


@pytest.fixture
def best(port):
    with RecordingSink(port=port, host="127.0.0.1") as sink:
        yield sink


@pytest.fixture
def backup(port):
    with RecordingSink(port=port, host="127.0.0.2") as sink:
        yield sink


@pytest.fixture
def zone():
    server = TinyDNS(
        {
            ("partner.test", "MX"): ["20 mx2.partner.test.", "10 mx1.partner.test."],
            ("mx1.partner.test", "A"): ["127.0.0.1"],
            ("mx2.partner.test", "A"): ["127.0.0.2"],
            ("firm.test", "MX"): ["10 mx.firm.test."],
            ("mx.firm.test", "A"): ["127.0.0.1"],
            ("plain.test", "A"): ["127.0.0.1"],  # no MX: the domain itself receives
            ("nullmx.test", "MX"): ["0 ."],  # RFC 7505: accepts no mail
            ("nullmx.test", "A"): ["127.0.0.1"],  # …even though it has an address
            ("tls.test", "MX"): ["10 mx.tls.test."],
            ("mx.tls.test", "A"): ["127.0.0.3"],
        }
    )
    yield server
    server.close()


@pytest.fixture
def relay(tmp_path, zone, port):
    settings = RelaySettings(
        listen=("127.0.0.1", 0),
        hostname="relay.test",
        direct_to_mx=True,
        dns_servers=(zone.address,),
        mx_port=port,
        tls=False,
        retry_initial=0.2,
        retry_max=0.5,
        workers=2,
    )
    with RelayThread(settings, deliver_all, tmp_path / "state") as running:
        yield running


def send(relay: RelayThread, rcpts: list[str], tag: str) -> None:
    data = f"From: <{SENDER}>\r\nSubject: {tag}\r\nX-Test-Id: {tag}\r\n\r\nhello\r\n"
    with smtplib.SMTP(*relay.address, timeout=10) as client:
        client.sendmail(SENDER, rcpts, data.encode())


def wait_until(check, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_the_preferred_mx_gets_the_mail_and_the_next_one_when_it_is_down(relay, best, backup):
    send(relay, ["bob@partner.test"], "first")
    (got,) = best.wait_for(1)
    assert got.rcpt_tos == ("bob@partner.test",)
    assert got.header("X-Test-Id") == "first"
    assert backup.messages == []

    best.stop()  # mx1 refuses connections now: the same attempt goes on to mx2
    send(relay, ["carol@partner.test"], "second")
    (got,) = backup.wait_for(1)
    assert got.rcpt_tos == ("carol@partner.test",)
    assert got.header("X-Test-Id") == "second"
    delivered = wait_until(lambda: relay.events_of("smtp.delivery")[1:])
    assert relay.events_of("smtp.delivery.deferred") == []  # no retry was needed
    assert len(delivered) == 1


def test_recipients_grouped_by_domain_and_a_domain_without_mx_uses_its_address(relay, best, zone):
    send(relay, ["a@partner.test", "c@plain.test", "b@PARTNER.test"], "grouped")
    got = best.wait_for(2)
    assert sorted(m.rcpt_tos for m in got) == [
        ("a@partner.test", "b@PARTNER.test"),
        ("c@plain.test",),
    ]
    assert ("plain.test", "MX") in zone.asked and ("plain.test", "A") in zone.asked


def test_null_mx_is_a_permanent_failure_reported_to_the_sender(relay, best, backup):
    send(relay, ["nobody@nullmx.test", "bob@partner.test"], "nullmx")
    got = best.wait_for(2)
    delivered = [m for m in got if m.mail_from == SENDER]
    dsns = [m for m in got if m.mail_from == ""]
    assert [m.rcpt_tos for m in delivered] == [("bob@partner.test",)]
    (dsn,) = dsns
    assert dsn.rcpt_tos == (SENDER,)  # through firm.test's MX
    text = dsn.data.decode("utf-8", "replace")
    assert "5.1.10" in text and "null MX" in text
    assert "nobody@nullmx.test" in text
    failed = wait_until(lambda: relay.events_of("smtp.delivery.failed"))
    assert "556" in failed[0]["detail"]
    time.sleep(0.3)
    assert len(best.messages) == 2  # nothing was tried at nullmx.test's address


def test_dns_trouble_defers_and_the_retry_delivers(relay, best, zone):
    zone.servfail = True
    send(relay, ["bob@partner.test"], "later")
    deferred = wait_until(lambda: relay.events_of("smtp.delivery.deferred"))
    assert "DNS" in deferred[0]["detail"]
    assert best.messages == []
    zone.servfail = False
    (got,) = best.wait_for(1)
    assert got.header("X-Test-Id") == "later"


def test_a_domain_that_does_not_exist_bounces(relay, best):
    send(relay, ["x@nowhere.test"], "nx")
    (dsn,) = best.wait_for(1)
    assert dsn.mail_from == "" and dsn.rcpt_tos == (SENDER,)
    assert "5.1.2" in dsn.data.decode("utf-8", "replace")


def test_starttls_is_used_when_the_mx_offers_it_whatever_its_certificate(relay, port, tmp_path):
    import ssl

    from certs.ca import create_ca, issue_server_certificate

    ca = create_ca(tmp_path / "mx-ca")  # a CA the relay does not know
    cert, key = issue_server_certificate(ca, ["mx.tls.test"])
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    with RecordingSink(port=port, host="127.0.0.3", tls_context=context) as mx:
        send(relay, ["bob@tls.test"], "tls")
        (got,) = mx.wait_for(1)
    assert got.tls and got.rcpt_tos == ("bob@tls.test",)


def test_mx_and_a_smarthost_exclude_each_other(tmp_path, zone, port):
    settings = RelaySettings(
        listen=("127.0.0.1", 0), direct_to_mx=True, smarthost=("127.0.0.1", port), tls=False
    )
    with pytest.raises(RelayError, match="exclude each other"):
        RelayThread(settings, deliver_all, tmp_path / "state").start()


# -- the configuration: relay.delivery, relay.dns_servers, relay.mx_port --------------------


def _config(tmp_path, relay: str):
    from gateway.config import load_config

    path = tmp_path / "leakguard.yaml"
    path.write_text("version: 1\nrelay:\n" + relay, encoding="utf-8")
    return path, load_config


def test_config_direct_to_mx(tmp_path):
    from gateway.config import Endpoint

    path, load = _config(
        tmp_path,
        "  delivery: mx\n  dns_servers: [10.1.0.53, '127.0.0.1:5353', '[::1]:5300']\n"
        "  mx_port: 2525\n",
    )
    relay = load(path).relay
    assert relay.delivery == "mx" and relay.smarthost is None and relay.mx_port == 2525
    assert relay.dns_servers == (
        Endpoint("10.1.0.53", 53),
        Endpoint("127.0.0.1", 5353),
        Endpoint("::1", 5300),
    )


@pytest.mark.parametrize(
    ("relay", "line", "message"),
    [
        ("  delivery: dns\n", 3, "expected one of: `mx`, `sink`, `smarthost`"),
        ("  smarthost: mail.firm.example:25\n  delivery: mx\n", 4, "does not use the smarthost"),
        ("  delivery: smarthost\n", 3, "no smarthost given"),
        ("  delivery: mx\n  dns_servers: [ns1.firm.example]\n", 4, "is not IP or IP:PORT"),
        ("  delivery: mx\n  mx_port: 70000\n", 4, "mx_port"),
        ("  dns_servers: [10.1.0.53]\n", 3, "only used with delivery: mx"),
    ],
    ids=["unknown", "mx-and-smarthost", "smarthost-missing", "dns-name", "port", "without-mx"],
)
def test_config_errors_name_the_line(tmp_path, relay, line, message):
    from gateway.config import ConfigError

    path, load = _config(tmp_path, relay)
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert any(i.line == line and message in str(i) for i in caught.value.issues), [
        str(i) for i in caught.value.issues
    ]
