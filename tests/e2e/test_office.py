"""The whole office, end to end, in network namespaces (issue 7).

```
office (in)              gateway (gw)                       internet (out)
10.200.1.2 the clerk     lg-gi 10.200.1.1                   203.0.113.10  mail.qq.com :80 :443 :8443
10.200.1.3 another desk  lg-go 203.0.113.1, 198.51.100.1    198.51.100.20 portal.lawfirm.example
fd00:200:1::2            lg-gr 10.9.0.1                     198.51.100.25 the law firm's mail server
                         `leakguard firewall apply`         203.0.113.26  qq.com's mail server
restricted (rs)          `leakguard run`: transparent       203.0.113.25  the firm's mail provider
10.9.0.5 client-data     proxy *:8080, relay *:2525                       (the relay's smarthost)
app (:22, :443)                                             198.51.100.53 the firm's DNS resolver
                                                            203.0.113.53  another DNS server
```
The gateway's packet filter is exactly what `leakguard firewall apply` loads
from the policy (tests/data/e2e/office/policy: the shipped policy, parties
valid until 2099) and the config written below; nothing else is loaded in gw.
Clients are curl, smtplib and sockets inside the namespaces; servers record
what reaches them (tests.support.origin, aiosmtpd sinks, UDP sockets).

Needs root, `ip netns` and nft (CI has them); skips saying why otherwise.
Namespaces are `lgo<pid>-…`, apart from the other netns tests'.
"""

from __future__ import annotations

import io
import json
import os
import smtplib
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote_plus

import pytest
import pyzipper
from aiosmtpd.controller import Controller

import tests.support.origin as origin_module
from tests.mailrelay.test_judge_rig import (
    CSV_IDS,
    CSV_MOBILES,
    LAWFIRM,
    SENDER,
    WEBMAIL,
    XLSX_IDS,
    attachment,
    csv_attachment,
    mail,
    parse,
    xlsx_attachment,
)
from tests.support import netns
from tests.support.gateway import ROOT, Gateway
from tests.support.netns import (
    GW_INSIDE,
    GW_INSIDE6,
    INSIDE,
    RESTRICTED,
    SERVER_A,
    SERVER_A6,
    SERVER_B,
    UNGUARDED,
    Topology,
)
from tests.support.origin import Origin, TestCA
from tests.support.smtp import Received, _Recorder

POLICY = ROOT / "tests" / "data" / "e2e" / "office" / "policy"
PROXY_PORT, RELAY_PORT = 8080, 2525
WEBMAIL_HOST, PARTY_HOST = "mail.qq.com", "portal.lawfirm.example"
LAWFIRM_MX, QQ_MX, PROVIDER = "198.51.100.25", "203.0.113.26", "203.0.113.25"
RESOLVER, OTHER_DNS = "198.51.100.53", "203.0.113.53"
EXTRA_OUTSIDE = (LAWFIRM_MX, QQ_MX, PROVIDER, RESOLVER, OTHER_DNS)
ID = "11010519491231002X"  # valid resident ID (GB 11643), synthetic
ID_MASKED = "110105********002X"
PHONE, PHONE_MASKED = "13912345678", "139****5678"
CLERK, CLERK_PASSWORD = "clerk2", "correct horse battery staple"
DROP_WAIT = 0.5  # seconds a connection that must be dropped is given (veth RTT: µs)

CONFIG = """\
version: 1
policy: {policy}
contact: 信息安全部 security@firm.example
proxy:
  listen: "*:{proxy}"
  mode: transparent
  upstream_ca: {upstream_ca}
  hosts:
    {webmail}: {server_a}
    {party}: {server_b}
relay:
  listen: "*:{relay}"
  hostname: gateway.firm.example
  smarthost: {provider}:25
  smarthost_tls: none
  trusted_networks: [{inside}/32]
  users_file: {users}
firewall:
  interfaces:
    office: [{if_office}]
    restricted: [{if_restricted}]
    external: [{if_uplink}]
  resolvers: [{resolver}]
  relay_clients: [{mail_server}]
"""


# -- servers in the internet ---------------------------------------------------------------------


@dataclass
class SmtpServer:
    """An aiosmtpd server on one address, recording what it accepts (tests.support.smtp)."""

    host: str
    port: int = 25
    messages: list[Received] = field(default_factory=list)
    peers: list[str] = field(default_factory=list)

    def start(self) -> SmtpServer:
        self.cond = threading.Condition()
        self.refuse: dict[str, str] = {}
        self.reply = ""
        server = self

        class Recorder(_Recorder):
            async def handle_EHLO(self, srv, session, envelope, hostname, responses):
                server.peers.append(session.peer[0])
                session.host_name = hostname
                return responses

        self._controller = Controller(
            Recorder(self), hostname=self.host, port=self.port, server_hostname="sink.test"
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def wait_for(self, count: int, timeout: float = 15.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{self.host} got {len(self.messages)}, not {count}")
                self.cond.wait(left)
            return list(self.messages)


class UdpServer:
    """Records datagrams and echoes each back (a resolver as far as a firewall can tell)."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.socket(netns.address_family(host), socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.received: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                data, peer = self.sock.recvfrom(2048)
            except OSError:
                return
            self.received.append(data)
            self.sock.sendto(data, peer)

    def close(self) -> None:
        self.sock.close()


@dataclass
class Internet:
    ca: TestCA
    webmail_http: Origin
    webmail: Origin
    webmail6: Origin  # SERVER_A6:443, the same name over IPv6
    odd_port: Origin  # SERVER_A:8443, a web server on a port the policy does not open
    party: Origin
    restricted_ssh: Origin
    restricted_app: Origin
    provider: SmtpServer
    lawfirm_mx: SmtpServer
    qq_mx: SmtpServer
    resolver: UdpServer
    other_dns: UdpServer
    quic: UdpServer

    @property
    def origins(self) -> list[Origin]:
        return [v for v in vars(self).values() if isinstance(v, Origin)]

    @property
    def udp(self) -> list[UdpServer]:
        return [self.resolver, self.other_dns, self.quic]

    @property
    def smtp(self) -> list[SmtpServer]:
        return [self.provider, self.lawfirm_mx, self.qq_mx]


# -- the office ----------------------------------------------------------------------------------


@dataclass
class Office:
    topo: Topology
    net: Internet
    gateway: Gateway
    config: Path
    state: Path
    firewall_seconds: float

    def counter(self, name: str) -> int:
        out = self.topo.run(self.topo.gw, "nft", "-j", "list", "counter", "inet", "leakguard", name)
        for item in json.loads(out.stdout)["nftables"]:
            if "counter" in item:
                return int(item["counter"]["packets"])
        raise KeyError(name)

    def events(self) -> list[dict]:
        return self.gateway.events()


@pytest.fixture(scope="module")
def office(tmp_path_factory) -> Iterator[Office]:
    reason = netns.unavailable()
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("office")
    topo = Topology.build(proxy_port=PROXY_PORT, tag=f"lgo{os.getpid()}", ruleset=False)
    net: Internet | None = None
    gateway: Gateway | None = None
    try:
        for address in EXTRA_OUTSIDE:
            netns.ip("-n", topo.outside, "addr", "add", f"{address}/24", "dev", netns.IF_OUT)
        net = _internet(topo, tmp)
        users = tmp / "relay-users"
        subprocess.run(
            [sys.executable, "-m", "mailrelay.auth", "add", str(users), CLERK, "--password-stdin"],
            input=CLERK_PASSWORD + "\n",
            text=True,
            check=True,
            capture_output=True,
            cwd=ROOT,
        )
        config = tmp / "leakguard.yaml"
        config.write_text(
            CONFIG.format(
                policy=POLICY,
                proxy=PROXY_PORT,
                relay=RELAY_PORT,
                upstream_ca=net.ca.pem_path,
                webmail=WEBMAIL_HOST,
                party=PARTY_HOST,
                server_a=SERVER_A,
                server_b=SERVER_B,
                provider=PROVIDER,
                inside=INSIDE,
                users=users,
                if_office=netns.IF_GW_IN,
                if_restricted=netns.IF_GW_RS,
                if_uplink=netns.IF_GW_OUT,
                resolver=RESOLVER,
                mail_server=UNGUARDED,
            ),
            encoding="utf-8",
        )
        started = time.monotonic()
        applied = topo.run(
            topo.gw,
            sys.executable,
            "-m",
            "gateway.cli",
            "firewall",
            "apply",
            "--config",
            str(config),
            check=False,
            timeout=60,
        )
        assert applied.returncode == 0, applied.stderr
        firewall_seconds = time.monotonic() - started
        state = tmp / "state"
        gateway = Gateway(
            ("--config", str(config)),
            state_dir=state,
            prefix=netns.exec_prefix(topo.gw),
            listen=None,
        )
        gateway.start(timeout=60)
        yield Office(topo, net, gateway, config, state, firewall_seconds)
    finally:
        if gateway is not None:
            gateway.stop()
        if net is not None:
            _stop(net)
        topo.teardown()


def _internet(topo: Topology, tmp: Path) -> Internet:
    ca = TestCA(tmp / "origin-ca")
    out, rs = topo.outside, topo.restricted

    def origin(host: str, port: int, names: list[str] | None = None) -> Origin:
        tls = ca.server_context(names) if names else None
        return topo.call(out if host != RESTRICTED else rs, _origin, host, port, tls)

    def smtp(host: str) -> SmtpServer:
        return topo.call(out, lambda: SmtpServer(host).start())

    def udp(host: str, port: int) -> UdpServer:
        return topo.call(out, UdpServer, host, port)

    return Internet(
        ca=ca,
        webmail_http=origin(SERVER_A, 80),
        webmail=origin(SERVER_A, 443, [WEBMAIL_HOST, SERVER_A]),
        webmail6=origin(SERVER_A6, 443, [WEBMAIL_HOST, SERVER_A6]),
        odd_port=origin(SERVER_A, 8443),
        party=origin(SERVER_B, 443, [PARTY_HOST, SERVER_B]),
        restricted_ssh=origin(RESTRICTED, 22),
        restricted_app=origin(RESTRICTED, 443),
        provider=smtp(PROVIDER),
        lawfirm_mx=smtp(LAWFIRM_MX),
        qq_mx=smtp(QQ_MX),
        resolver=udp(RESOLVER, 53),
        other_dns=udp(OTHER_DNS, 53),
        quic=udp(SERVER_A, 443),
    )


def _origin(host: str, port: int, tls: ssl.SSLContext | None) -> Origin:
    """tests.support.origin.Origin, also on an IPv6 address (its server class is IPv4)."""
    if ":" not in host:
        return Origin(host, port, tls=tls).start()

    class Server6(origin_module._Server):
        address_family = socket.AF_INET6

    saved = origin_module._Server
    origin_module._Server = Server6  # only while this one is built (servers start one by one)
    try:
        return Origin(host, port, tls=tls).start()
    finally:
        origin_module._Server = saved


def _stop(net: Internet) -> None:
    with ThreadPoolExecutor() as pool:  # each stop waits out a poll interval: overlap them
        list(pool.map(Origin.stop, net.origins))
    for server in net.smtp:
        server.stop()
    for server in net.udp:
        server.close()


@pytest.fixture(autouse=True)
def _fresh(request) -> None:
    """Each test starts with servers that have received nothing."""
    if "office" in request.fixturenames:
        net = request.getfixturevalue("office").net
        for origin in net.origins:
            origin.clear()
        for server in net.smtp:
            server.messages.clear()
            server.peers.clear()
        for server in net.udp:
            server.received.clear()


# -- clients -------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: str
    error: str = ""


def curl(office: Office, url: str, *args: str) -> Reply:
    """curl in the office namespace, trusting the gateway's CA; status 0: no HTTP answer."""
    cmd = ["curl", "-sS", "--max-time", "10", "-D", "-", "-o", "-"]
    cmd += ["--cacert", str(office.gateway.ca_path)]
    done = office.topo.run(office.topo.inside, *cmd, *args, url, check=False, timeout=20)
    head, _, body = done.stdout.partition("\n\n")
    lines = head.split("\n")
    status = int(lines[0].split()[1]) if lines[0].startswith("HTTP/") else 0
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return Reply(status, headers, body, done.stderr.strip())


def tcp_connect(host: str, port: int, source: str | None = None) -> str:
    """'connected', 'refused' or 'timeout' — called inside a namespace."""
    with socket.socket(netns.address_family(host), socket.SOCK_STREAM) as sock:
        sock.settimeout(DROP_WAIT)
        try:
            if source:
                sock.bind((source, 0))
            sock.connect((host, port))
            return "connected"
        except ConnectionRefusedError:
            return "refused"
        except TimeoutError:
            return "timeout"


def attempts(office: Office, ns: str, targets: list[tuple[str, int]]) -> list[str]:
    """tcp_connect to each target from `ns`, all at once (a dropped one costs DROP_WAIT)."""
    with ThreadPoolExecutor(len(targets)) as pool:
        return list(pool.map(lambda t: office.topo.call(ns, tcp_connect, *t), targets))


def udp_ask(host: str, port: int, data: bytes) -> bytes | None:
    """Send one datagram, wait briefly for the echo — called inside a namespace."""
    with socket.socket(netns.address_family(host), socket.SOCK_DGRAM) as sock:
        sock.settimeout(DROP_WAIT)
        sock.sendto(data, (host, port))
        try:
            return sock.recv(2048)
        except TimeoutError:
            return None


def send_mail(host: str, sender: str, recipients: list[str], data: bytes, port: int = 25):
    """SMTP as the clerk's mail program sends it, to the recipient's server as addressed."""
    with smtplib.SMTP(host, port, timeout=30) as client:
        client.ehlo("desk7.firm.example")
        client.mail(sender)
        for r in recipients:
            code, text = client.rcpt(r)
            assert code == 250, (code, text)
        return client.data(data)


def form(**fields: str) -> str:
    return "&".join(f"{k}={v}" for k, v in fields.items())


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def gateway_pid(office: Office) -> int:
    """The `leakguard run` process (ip netns exec execs it, so it is the one started)."""
    assert office.gateway.proc is not None
    return office.gateway.proc.pid


# -- the firewall is the policy's ----------------------------------------------------------------


def test_the_loaded_firewall_is_the_policys(office: Office) -> None:
    check = office.topo.run(
        office.topo.gw,
        sys.executable,
        "-m",
        "gateway.cli",
        "firewall",
        "check",
        "--config",
        str(office.config),
        check=False,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    tables = office.topo.run(office.topo.gw, "nft", "list", "tables").stdout.split()
    assert "leakguard" in tables and netns.TABLE not in tables  # only leakguard's own
    assert office.firewall_seconds < 10


# -- web ------------------------------------------------------------------------------------------


def test_id_upload_to_webmail_gets_the_block_page_and_the_server_nothing(office: Office) -> None:
    before = len(office.events())
    reply = curl(
        office,
        f"https://{WEBMAIL_HOST}/cgi-bin/compose_send",
        "--resolve",
        f"{WEBMAIL_HOST}:443:{SERVER_A}",
        "--data",
        form(to="me@qq.com", id_no=ID),
    )
    assert reply.status == 403, reply
    assert reply.headers["x-leakguard-rule"] == "identifying-to-personal-channels"
    assert ID_MASKED in reply.body and ID not in reply.body
    assert office.net.webmail.requests == [] and office.net.webmail.connections == []
    event = office.gateway.wait_for_event(
        lambda e: e["type"] == "http.request" and e["action"] == "block", after=before
    )
    assert (event["source_ip"], event["destination_ip"]) == (INSIDE, SERVER_A)
    assert ID not in office.gateway.events_file_text()


def test_over_ipv6_too(office: Office) -> None:
    before = len(office.events())
    reply = curl(
        office,
        f"https://{WEBMAIL_HOST}/cgi-bin/compose_send",
        "--resolve",
        f"{WEBMAIL_HOST}:443:[{SERVER_A6}]",
        "--data",
        form(to="me@qq.com", id_no=ID),
    )
    assert reply.status == 403, reply
    assert office.net.webmail6.requests == [] and office.net.webmail6.connections == []
    event = office.gateway.wait_for_event(
        lambda e: e["type"] == "http.request" and e["action"] == "block", after=before
    )
    assert (event["source_ip"], event["destination_ip"]) == (netns.INSIDE6, SERVER_A6)
    # and a clean page over IPv6 goes through, from the gateway's own address
    reply = curl(
        office, f"https://{WEBMAIL_HOST}/inbox", "--resolve", f"{WEBMAIL_HOST}:443:[{SERVER_A6}]"
    )
    assert reply.status == 200, reply
    assert [c.peer[0] for c in office.net.webmail6.connections] == [netns.GW_OUTSIDE6]
    assert office.topo.call(office.topo.inside, tcp_connect, SERVER_A6, 8443) == "timeout"


def test_id_to_the_approved_party_is_allowed_and_the_phone_masked(office: Office) -> None:
    reply = curl(
        office,
        f"https://{PARTY_HOST}/upload",
        "--resolve",
        f"{PARTY_HOST}:443:{SERVER_B}",
        "--data",
        form(case="2026-117", id_no=ID, contact=PHONE),
    )
    assert reply.status == 200, reply
    (received,) = office.net.party.requests
    sent = unquote_plus(received.text)
    assert ID in sent  # the party may receive identity data
    assert PHONE_MASKED in sent and PHONE not in sent  # need to know: the contact masked
    # it came from the gateway's own address: proxied, not forwarded
    assert [c.peer[0] for c in office.net.party.connections] == [netns.GW_OUTSIDE_B]
    assert office.counter("redirect_proxy") > 0


# -- mail -----------------------------------------------------------------------------------------


def test_debtor_spreadsheet_to_the_law_firm_arrives_encrypted_and_decrypts(office: Office) -> None:
    raw = mail(to=LAWFIRM, attachments=(csv_attachment(),))
    code, text = office.topo.call(
        office.topo.inside, send_mail, LAWFIRM_MX, SENDER, [LAWFIRM], raw
    )  # addressed to the law firm's server; the firewall hands it to the relay
    assert code == 250, text
    got = office.net.provider.wait_for(2)  # the mail, and the password notice to the sender
    (delivered,) = [m for m in got if m.rcpt_tos == (LAWFIRM,)]
    (notice,) = [m for m in got if m.rcpt_tos == (SENDER,)]
    assert office.net.provider.peers[0] in (netns.GW_OUTSIDE, netns.GW_OUTSIDE_B)
    for value in CSV_IDS:
        assert value.encode() not in delivered.data  # not readable on the way
    text = parse(notice.data).get_body(("plain",)).get_content()
    password = text.split("Password:", 1)[1].split()[0]
    assert password.encode() not in delivered.data
    zipped = attachment(parse(delivered.data), "attachments.zip")
    with pyzipper.AESZipFile(io.BytesIO(zipped)) as archive:
        archive.setpassword(password.encode())
        table = archive.read("attachment-1.csv").decode("gbk")
    assert all(value in table for value in CSV_IDS)  # the law firm may receive identity data
    assert not any(value in table for value in CSV_MOBILES)  # need to know: contact masked
    assert office.net.lawfirm_mx.messages == [] and office.net.lawfirm_mx.peers == []
    assert office.counter("redirect_relay") > 0


def test_debtor_spreadsheet_to_a_personal_mailbox_is_refused(office: Office) -> None:
    raw = mail(to=WEBMAIL, attachments=(xlsx_attachment(),))
    code, text = office.topo.call(office.topo.inside, send_mail, QQ_MX, SENDER, [WEBMAIL], raw)
    assert code == 550, text  # refused at DATA: the clerk's mail program tells them at once
    assert b"identifying-to-personal-channels" in text
    for value in XLSX_IDS:
        assert value.encode() not in text
    time.sleep(0.3)
    assert office.net.qq_mx.messages == [] and office.net.qq_mx.peers == []
    assert [m for m in office.net.provider.messages if WEBMAIL in m.rcpt_tos] == []


# -- isolation ------------------------------------------------------------------------------------


def test_the_restricted_server_cannot_reach_the_internet(office: Office) -> None:
    dropped = office.counter("drop_restricted_to_external")
    targets = [(SERVER_A, 80), (SERVER_A, 443), (SERVER_B, 443), (PROVIDER, 25)]
    assert attempts(office, office.topo.restricted, targets) == ["timeout"] * len(targets)
    assert all(o.connections == [] for o in office.net.origins)
    assert office.net.provider.peers == []
    assert office.counter("drop_restricted_to_external") >= dropped + len(targets)


def test_the_internet_cannot_reach_the_restricted_zone_or_the_office(office: Office) -> None:
    dropped = office.counter("drop_external_to_internal")
    targets = [(RESTRICTED, 22), (RESTRICTED, 443), (INSIDE, 22)]
    assert attempts(office, office.topo.outside, targets) == ["timeout"] * len(targets)
    net = office.net
    assert net.restricted_ssh.connections == [] and net.restricted_app.connections == []
    assert office.counter("drop_external_to_internal") >= dropped + len(targets)


def test_office_reaches_the_restricted_app_as_the_policy_allows(office: Office) -> None:
    """The control for the two above: reach office->restricted 22/443, inspect: false."""
    assert office.topo.call(office.topo.inside, tcp_connect, RESTRICTED, 443) == "connected"
    deadline = time.monotonic() + 3
    while not office.net.restricted_app.connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [c.peer[0] for c in office.net.restricted_app.connections] == [INSIDE]  # forwarded
    assert office.topo.call(office.topo.inside, tcp_connect, RESTRICTED, 80) == "timeout"


def test_office_to_the_internet_on_a_non_web_port_gets_no_connection(office: Office) -> None:
    dropped = office.counter("drop_not_in_policy")
    assert attempts(office, office.topo.inside, [(SERVER_A, 8443), (SERVER_A, 22)]) == [
        "timeout",
        "timeout",
    ]
    assert office.net.odd_port.connections == []
    assert office.counter("drop_not_in_policy") >= dropped + 2


def test_office_to_the_proxy_port_directly_is_refused_without_a_loop(office: Office) -> None:
    pid = gateway_pid(office)
    cpu = cpu_seconds(pid)
    refused = office.counter("drop_direct")
    before = len(office.events())
    targets = [(GW_INSIDE, PROXY_PORT), (GW_INSIDE6, PROXY_PORT), (GW_INSIDE, RELAY_PORT)]
    assert attempts(office, office.topo.inside, targets) == ["refused"] * 3
    assert office.counter("drop_direct") >= refused + 3
    time.sleep(0.3)
    assert cpu_seconds(pid) - cpu < 1.0  # no connection to itself, thousands deep
    assert [e for e in office.events()[before:] if e["type"] == "proxy.connect"] == []
    # and the office is still served
    reply = curl(office, f"http://{WEBMAIL_HOST}/ok", "--resolve", f"{WEBMAIL_HOST}:80:{SERVER_A}")
    assert reply.status == 200, reply


def test_the_firms_mail_server_may_use_the_relay_directly(office: Office) -> None:
    """firewall.relay_clients: 10.200.1.3 plays the firm's mail server (relay as smarthost)."""
    assert office.topo.call(office.topo.inside, tcp_connect, GW_INSIDE, RELAY_PORT, UNGUARDED) == (
        "connected"
    )
    assert office.topo.call(office.topo.inside, tcp_connect, GW_INSIDE, RELAY_PORT) == "refused"
    assert office.topo.call(office.topo.inside, tcp_connect, GW_INSIDE, PROXY_PORT, UNGUARDED) == (
        "refused"
    )  # the proxy port stays closed to it: only the relay is its business


def test_quic_is_dropped(office: Office) -> None:
    dropped = office.counter("drop_quic")
    assert office.topo.call(office.topo.inside, udp_ask, SERVER_A, 443, b"\xc0QUIC") is None
    assert office.net.quic.received == []
    assert office.counter("drop_quic") >= dropped + 1


def test_dns_goes_only_to_the_resolver(office: Office) -> None:
    dropped = office.counter("drop_dns")
    inside = office.topo.inside
    assert office.topo.call(inside, udp_ask, RESOLVER, 53, b"query-1") == b"query-1"
    assert office.topo.call(inside, udp_ask, OTHER_DNS, 53, b"query-2") is None
    assert office.topo.call(inside, tcp_connect, OTHER_DNS, 53) == "timeout"
    assert office.net.resolver.received == [b"query-1"]
    assert office.net.other_dns.received == []
    assert office.counter("drop_dns") >= dropped + 2


# -- logins ---------------------------------------------------------------------------------------


def _log_in(host: str, source: str, cafile: str, password: str) -> int:
    """One AUTH on a fresh STARTTLS session to `host`:587 (redirected to the relay)."""
    context = ssl.create_default_context(cafile=cafile)
    context.check_hostname = False  # the relay's name is gateway.firm.example; we dial an IP
    with smtplib.SMTP(host, 587, timeout=30, source_address=(source, 0)) as client:
        client.starttls(context=context)
        client.ehlo("desk8.firm.example")
        try:
            return client.login(CLERK, password)[0]
        except smtplib.SMTPAuthenticationError as err:
            return err.smtp_code


def test_ten_wrong_passwords_freeze_the_account_and_raise_an_alert(office: Office) -> None:
    ca = str(office.gateway.ca_path)

    def attempt(password: str) -> int:  # from a desk the relay does not trust: AUTH needed
        return office.topo.call(office.topo.inside, _log_in, LAWFIRM_MX, UNGUARDED, ca, password)

    assert attempt(CLERK_PASSWORD) == 235  # the control: the account and its password work
    with ThreadPoolExecutor(10) as pool:  # the relay waits 1 s after each failure: overlap
        codes = list(pool.map(attempt, [f"guess-{n}" for n in range(10)]))
    assert codes == [535] * 10
    assert attempt(CLERK_PASSWORD) == 535  # the right password, too late: the account is frozen
    alerts = office.state / "alerts.jsonl"
    assert alerts.exists(), "no alert written"
    lines = [json.loads(x) for x in alerts.read_text(encoding="utf-8").splitlines() if x]
    assert any(CLERK in json.dumps(a, ensure_ascii=False) for a in lines), lines
    assert CLERK_PASSWORD not in alerts.read_text(encoding="utf-8")
    assert "guess-" not in office.gateway.events_file_text()


def test_the_gateway_is_healthy_at_the_end(office: Office) -> None:
    assert office.gateway.returncode is None, office.gateway.stderr
    assert "Traceback" not in office.gateway.stderr, office.gateway.stderr
    assert "fail-closed" not in {e.get("rule") for e in office.events()}
