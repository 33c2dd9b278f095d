"""`leakguard run --proxy-mode transparent` on a gateway between network namespaces.

Topology (tests/support/netns.py): an office client (inside), the gateway (gw:
nftables REDIRECT of office TCP 80/443 to the proxy, forward policy drop), web
servers on documentation addresses (outside) and a host in the restricted zone.
The clients are curl and Python sockets inside the namespaces; the origins are
tests/support/origin.py servers, created in the outside namespace, that record
everything they receive. The gateway trusts their test CA (--upstream-ca).

Two gateway processes run in gw on the same port: one on 0.0.0.0, one on [::]
(a `--proxy-listen` host is one address, and asyncio binds "::" IPv6-only).

Needs root (or skips, saying why); the namespaces take ~0.1 s, the gateways ~2 s.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote_plus

import pytest

import tests.support.origin as origin_module
from tests.support import netns
from tests.support.gateway import Gateway
from tests.support.netns import (
    GW_INSIDE,
    GW_INSIDE6,
    INSIDE,
    RESTRICTED,
    SERVER_A,
    SERVER_A6,
    SERVER_B,
    SERVER_B6,
    UNGUARDED,
    Topology,
)
from tests.support.origin import Origin, TestCA

POLICY = Path(__file__).resolve().parents[1] / "data" / "transparent" / "policy"
PORT = 8080  # the proxy port in gw (its own namespace: no clash with anything)
WEBMAIL, PARTY = "mail.qq.com", "portal.lawfirm.example"
ID = "11010519491231002X"  # valid resident ID (GB 11643 check character X)
ID_MASKED = "110105********002X"
PHONE, PHONE_MASKED = "13912345678", "139****5678"
DROP_WAIT = 0.4  # seconds a connection attempt that must be dropped is given (veth RTT: µs)


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def topo() -> Iterator[Topology]:
    reason = netns.unavailable()
    if reason:
        pytest.skip(reason)
    topology = Topology.build(proxy_port=PORT)
    try:
        yield topology
    finally:
        topology.teardown()


@dataclass
class Servers:
    ca: TestCA
    webmail_http: Origin  # SERVER_A:80
    webmail: Origin  # SERVER_A:443, certificate for mail.qq.com
    party_http: Origin  # SERVER_B:80
    party: Origin  # SERVER_B:443, certificate for portal.lawfirm.example
    webmail6: Origin
    party6: Origin
    restricted_ssh: Origin  # RESTRICTED:22 (plain HTTP is enough to count connections)
    restricted_app: Origin  # RESTRICTED:443
    quic: list[socket.socket]  # UDP/443 on SERVER_A and SERVER_A6

    @property
    def origins(self) -> list[Origin]:
        return [v for v in vars(self).values() if isinstance(v, Origin)]


def _origin(host: str, port: int, **kw) -> Origin:
    """tests.support.origin.Origin, also on an IPv6 address (its server class is IPv4)."""
    if ":" not in host:
        return Origin(host, port, **kw).start()

    class Server6(origin_module._Server):
        address_family = socket.AF_INET6

    saved = origin_module._Server
    origin_module._Server = Server6  # only while this one is built, in this thread
    try:
        return Origin(host, port, **kw).start()
    finally:
        origin_module._Server = saved


def _udp(host: str, port: int) -> socket.socket:
    sock = socket.socket(netns.address_family(host), socket.SOCK_DGRAM)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock


@pytest.fixture(scope="module")
def servers(topo: Topology, tmp_path_factory) -> Iterator[Servers]:
    ca = TestCA(tmp_path_factory.mktemp("origin-ca"))
    out, rs = topo.outside, topo.restricted
    mail_tls = [WEBMAIL, SERVER_A, SERVER_A6]
    party_tls = [PARTY, SERVER_B, SERVER_B6]
    made = Servers(
        ca=ca,
        webmail_http=topo.call(out, _origin, SERVER_A, 80, name="webmail-http"),
        webmail=topo.call(out, _origin, SERVER_A, 443, tls=ca.server_context(mail_tls)),
        party_http=topo.call(out, _origin, SERVER_B, 80, name="party-http"),
        party=topo.call(out, _origin, SERVER_B, 443, tls=ca.server_context(party_tls)),
        webmail6=topo.call(out, _origin, SERVER_A6, 443, tls=ca.server_context(mail_tls)),
        party6=topo.call(out, _origin, SERVER_B6, 443, tls=ca.server_context(party_tls)),
        restricted_ssh=topo.call(rs, _origin, RESTRICTED, 22),
        restricted_app=topo.call(rs, _origin, RESTRICTED, 443),
        quic=[topo.call(out, _udp, SERVER_A, 443), topo.call(out, _udp, SERVER_A6, 443)],
    )
    try:
        yield made
    finally:
        with ThreadPoolExecutor() as pool:  # each stop waits out a poll interval: overlap them
            list(pool.map(Origin.stop, made.origins))
        for sock in made.quic:
            sock.close()


@dataclass
class Gateways:
    v4: Gateway
    v6: Gateway

    def events(self) -> list[dict]:
        return self.v4.events() + self.v6.events()


@pytest.fixture(scope="module")
def gateways(topo: Topology, servers: Servers, tmp_path_factory) -> Iterator[Gateways]:
    args = (
        "--proxy-mode",
        "transparent",
        "--policy",
        str(POLICY),
        "--upstream-ca",
        str(servers.ca.pem_path),
        "--no-relay",
        "--resolve",
        f"{WEBMAIL}={SERVER_A}",
        "--resolve",
        f"{PARTY}={SERVER_B}",
    )
    prefix = netns.exec_prefix(topo.gw)
    v4 = Gateway(
        args, state_dir=tmp_path_factory.mktemp("gw4"), prefix=prefix, listen=f"0.0.0.0:{PORT}"
    )
    v6 = Gateway(
        args, state_dir=tmp_path_factory.mktemp("gw6"), prefix=prefix, listen=f"[::]:{PORT}"
    )
    started: list[BaseException] = []

    def start(gw: Gateway) -> None:
        try:
            gw.start(timeout=30)
        except BaseException as err:
            started.append(err)

    threads = [threading.Thread(target=start, args=(gw,)) for gw in (v4, v6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        if started:
            raise started[0]
        assert topo.listening(topo.gw, PORT)  # asked of ss: connecting would loop
        yield Gateways(v4, v6)
    finally:
        v4.stop()
        v6.stop()


@pytest.fixture(autouse=True)
def _fresh(request) -> None:
    """Each test starts with origins that have received nothing."""
    if "servers" in request.fixturenames:
        for origin in request.getfixturevalue("servers").origins:
            origin.clear()


# -- clients ------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: str
    error: str = ""


def curl(topo: Topology, ca: Path | None, url: str, *args: str, ns: str | None = None) -> Reply:
    """curl in the office namespace; status 0 when no HTTP response came."""
    cmd = ["curl", "-sS", "--max-time", "10", "-D", "-", "-o", "-"]
    if ca is not None:
        cmd += ["--cacert", str(ca)]
    done = topo.run(ns or topo.inside, *cmd, *args, url, check=False, timeout=20)
    head, _, body = done.stdout.partition("\n\n")  # text mode: CRLF reads as LF
    while head.startswith("HTTP/") and " 100 " in head.split("\n", 1)[0]:
        head, _, body = body.partition("\n\n")  # 100 Continue before the real answer
    lines = head.split("\n")
    status = int(lines[0].split()[1]) if lines[0].startswith("HTTP/") else 0
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return Reply(status, headers, body, done.stderr.strip())


def tcp_connect(host: str, port: int, source: str | None = None, timeout: float = DROP_WAIT):
    """'connected', 'refused' or 'timeout' — called inside a namespace (Topology.call)."""
    family = netns.address_family(host)
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        if source:
            sock.bind((source, 0))
        sock.connect((host, port))
        return "connected"
    except ConnectionRefusedError:
        return "refused"
    except TimeoutError:
        return "timeout"
    finally:
        sock.close()


def attempts(topo: Topology, ns: str, targets: list[tuple[str, int]]) -> list[str]:
    """tcp_connect to each target from `ns`, all at once (a dropped one costs DROP_WAIT)."""
    with ThreadPoolExecutor(len(targets)) as pool:
        return list(pool.map(lambda t: topo.call(ns, tcp_connect, *t), targets))


def exchange(host: str, port: int, data: bytes, source: str | None = None) -> bytes:
    """Connect, send `data`, read until the peer closes (or 3 s pass)."""
    with socket.create_connection((host, port), timeout=3, source_address=(source, 0)) as sock:
        sock.sendall(data)
        out = b""
        try:
            while chunk := sock.recv(65536):
                out += chunk
        except TimeoutError:
            pass
        return out


def udp_send(host: str, port: int, data: bytes) -> None:
    with socket.socket(netns.address_family(host), socket.SOCK_DGRAM) as sock:
        sock.sendto(data, (host, port))


def eventually(check, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def form(**fields: str) -> str:
    return "&".join(f"{k}={v}" for k, v in fields.items())


def new_events(gw: Gateway, before: int, match) -> list[dict]:
    gw.wait_for_event(match, after=before)
    return [e for e in gw.events()[before:] if match(e)]


# -- the cases of explicit-proxy mode, transparently --------------------------------------------

FAMILIES = {"ipv4": (SERVER_A, SERVER_B), "ipv6": (SERVER_A6, SERVER_B6)}


@pytest.mark.parametrize("family", FAMILIES)
def test_id_upload_to_personal_webmail_is_blocked_before_the_origin(
    topo: Topology, servers: Servers, gateways: Gateways, family: str
) -> None:
    gw = gateways.v4 if family == "ipv4" else gateways.v6
    origin = servers.webmail if family == "ipv4" else servers.webmail6
    address = FAMILIES[family][0]
    shown = f"[{address}]" if ":" in address else address
    before = len(gw.events())
    reply = curl(
        topo,
        gw.ca_path,
        f"https://{WEBMAIL}/cgi-bin/compose_send",
        "--resolve",
        f"{WEBMAIL}:443:{shown}",
        "--data",
        form(to="me@qq.com", id_no=ID),
    )
    assert reply.status == 403, reply
    assert reply.headers["x-leakguard-rule"] == "identifying-to-personal-channels"
    assert ID_MASKED in reply.body and ID not in reply.body
    (event,) = new_events(gw, before, lambda e: e["type"] == "http.request")
    assert (event["action"], event["destination"], event["destination_ip"]) == (
        "block",
        WEBMAIL,
        address,
    )
    assert event["source_ip"] == (INSIDE if family == "ipv4" else netns.INSIDE6)
    assert (event["source_zone"], event["destination_zone"]) == ("office", "external")
    assert event["incident"] == reply.headers["x-leakguard-incident"]
    assert origin.requests == [] and origin.connections == []  # never even connected
    assert ID not in gw.events_file_text()


@pytest.mark.parametrize("family", FAMILIES)
def test_id_to_the_approved_party_is_allowed_and_the_phone_masked(
    topo: Topology, servers: Servers, gateways: Gateways, family: str
) -> None:
    gw = gateways.v4 if family == "ipv4" else gateways.v6
    origin = servers.party if family == "ipv4" else servers.party6
    address = FAMILIES[family][1]
    shown = f"[{address}]" if ":" in address else address
    before = len(gw.events())
    reply = curl(
        topo,
        gw.ca_path,
        f"https://{PARTY}/upload",
        "--resolve",
        f"{PARTY}:443:{shown}",
        "--data",
        form(case="2026-117", id_no=ID, contact=PHONE),
    )
    assert reply.status == 200, reply
    (received,) = origin.requests
    sent = unquote_plus(received.text)
    assert ID in sent  # the party receives identity data
    assert PHONE_MASKED in sent and PHONE not in sent  # need to know: contact masked
    assert origin.connections[0].sni == PARTY  # the name mitmproxy verified upstream
    (event,) = new_events(gw, before, lambda e: e["type"] == "http.request")
    assert (event["action"], event["party"], event["destination_ip"]) == (
        "mask",
        "example-law-firm",
        address,
    )
    assert PHONE not in gw.events_file_text() and ID not in gw.events_file_text()


def test_plain_http_id_upload_to_personal_webmail_is_blocked(
    topo: Topology, servers: Servers, gateways: Gateways
) -> None:
    reply = curl(
        topo,
        None,
        f"http://{WEBMAIL}/compose",
        "--resolve",
        f"{WEBMAIL}:80:{SERVER_A}",
        "--data",
        form(id_no=ID),
    )
    assert reply.status == 403, reply
    assert reply.headers["x-leakguard-rule"] == "identifying-to-personal-channels"
    assert servers.webmail_http.requests == []


# -- names: the Host header is not the destination ----------------------------------------------


def test_plain_http_host_naming_the_party_on_another_address_is_refused(
    topo: Topology, servers: Servers, gateways: Gateways
) -> None:
    gw = gateways.v4
    before = len(gw.events())
    spoofed = curl(
        topo,
        None,
        f"http://{SERVER_A}/upload",
        "-H",
        f"Host: {PARTY}",
        "--data",
        form(id_no=ID),
    )
    assert spoofed.status == 403, spoofed
    assert spoofed.headers["x-leakguard-rule"] == "isolation:fronting"
    assert servers.webmail_http.requests == [] and servers.webmail_http.connections == []
    connect = gw.wait_for_event(lambda e: e["type"] == "proxy.connect", after=before)
    assert (connect["destination"], connect["party"]) == (SERVER_A, "")
    assert f"Host {PARTY} is not {SERVER_A}" in connect["detail"]
    front = gw.wait_for_event(lambda e: e["rule"] == "isolation:fronting", after=before)
    assert SERVER_B in front["reason"]  # where the gateway knows the party to be

    # the same upload to where the party really is gets the party's treatment
    real = curl(
        topo,
        None,
        f"http://{PARTY}/upload",
        "--resolve",
        f"{PARTY}:80:{SERVER_B}",
        "--data",
        form(id_no=ID),
    )
    assert real.status == 200, real
    (received,) = servers.party_http.requests
    assert ID in received.text and received.host == PARTY
    event = gw.wait_for_event(lambda e: e["type"] == "http.request", after=before)
    assert (event["rule"], event["party"]) == ("important-to-party-over-http", "example-law-firm")


def test_https_sni_naming_the_party_on_another_address_fails_verification(
    topo: Topology, servers: Servers, gateways: Gateways
) -> None:
    """Over TLS the SNI is believed because the origin must prove it with its certificate."""
    reply = curl(
        topo,
        gateways.v4.ca_path,
        f"https://{PARTY}/upload",
        "--resolve",
        f"{PARTY}:443:{SERVER_A}",  # the webmail server, whose certificate is not the party's
        "--data",
        form(id_no=ID),
    )
    assert reply.status != 200, reply
    assert servers.webmail.requests == []  # the handshake failed before any request
    assert ID.encode() not in servers.webmail.everything()


# -- isolation ----------------------------------------------------------------------------------


def test_restricted_host_cannot_reach_outside(
    topo: Topology, servers: Servers, gateways: Gateways
) -> None:
    dropped = topo.counter("restricted_out")
    targets = [(SERVER_A, 80), (SERVER_A, 443), (SERVER_B, 80), (SERVER_A, 22)]
    assert attempts(topo, topo.restricted, targets) == ["timeout"] * len(targets)
    assert servers.webmail_http.connections == [] and servers.webmail.connections == []
    assert servers.party_http.connections == []
    assert topo.counter("restricted_out") > dropped


def test_outside_cannot_reach_the_restricted_zone(
    topo: Topology, servers: Servers, gateways: Gateways
) -> None:
    dropped = topo.counter("outside_in")
    targets = [(RESTRICTED, 22), (RESTRICTED, 443)]
    assert attempts(topo, topo.outside, targets) == ["timeout", "timeout"]
    assert servers.restricted_ssh.connections == [] and servers.restricted_app.connections == []
    assert topo.counter("outside_in") > dropped


def test_office_reaches_the_restricted_zone_directly_uninspected(
    topo: Topology, servers: Servers, gateways: Gateways
) -> None:
    """The control for the two above: the path works where the policy allows it (22/443)."""
    assert topo.call(topo.inside, tcp_connect, RESTRICTED, 443) == "connected"
    assert topo.call(topo.inside, tcp_connect, RESTRICTED, 22) == "connected"
    app = servers.restricted_app
    assert eventually(lambda: len(app.connections) == 1)  # recorded by the handler thread
    peers = [c.peer[0] for c in app.connections]
    assert peers == [INSIDE]  # the office client itself, not the proxy: forwarded, not proxied
    assert topo.call(topo.inside, tcp_connect, RESTRICTED, 80) == "timeout"


def test_quic_is_dropped(topo: Topology, servers: Servers, gateways: Gateways) -> None:
    dropped = topo.counter("quic")
    for address in (SERVER_A, SERVER_A6):
        topo.call(topo.inside, udp_send, address, 443, b"\xc0QUIC initial")
    time.sleep(0.2)
    for sock in servers.quic:
        with pytest.raises(BlockingIOError):
            sock.recvfrom(2048)
    assert topo.counter("quic") >= dropped + 2


def test_direct_connection_to_the_proxy_port_is_refused(
    topo: Topology, servers: Servers, gateways: Gateways
) -> None:
    guarded = topo.counter("guard")
    for address in (GW_INSIDE, GW_INSIDE6):
        assert topo.call(topo.inside, tcp_connect, address, PORT) == "refused"
    assert topo.counter("guard") >= guarded + 2


def test_without_the_guard_the_proxy_refuses_to_loop(
    topo: Topology, servers: Servers, gateways: Gateways
) -> None:
    """A firewall missing the guard: the proxy must still not connect to itself."""
    gw = gateways.v4
    assert gw.proc is not None
    cpu = cpu_seconds(gw.proc.pid)
    before = len(gw.events())
    # not HTTP: mitmproxy would relay raw TCP to the original destination, itself
    raw = topo.call(topo.inside, exchange, GW_INSIDE, PORT, b"HELLO\r\n\r\n", UNGUARDED)
    assert raw == b""  # closed, nothing relayed
    (event,) = new_events(gw, before, lambda e: e["type"] == "proxy.connect")
    assert (event["rule"], event["action"]) == ("isolation:self", "block")
    # HTTP for the proxy's own address is answered by the proxy itself (CA, PAC), not looped
    page = topo.call(
        topo.inside,
        exchange,
        GW_INSIDE,
        PORT,
        f"GET / HTTP/1.1\r\nHost: {GW_INSIDE}:{PORT}\r\nConnection: close\r\n\r\n".encode(),
        UNGUARDED,
    )
    assert page.startswith(b"HTTP/1.1 200") and b"leakguard" in page
    time.sleep(0.3)
    loops = [e for e in gw.events()[before:] if e["rule"] == "isolation:self"]
    assert len(loops) == 1  # one refusal, not thousands of nested connections
    assert cpu_seconds(gw.proc.pid) - cpu < 1.0
    # and the gateway still serves the office
    reply = curl(topo, None, f"http://{SERVER_B}/ok")
    assert reply.status == 200 and len(servers.party_http.requests) == 1


def test_gateways_are_healthy_at_the_end(
    topo: Topology, servers: Servers, gateways: Gateways
) -> None:
    for gw in (gateways.v4, gateways.v6):
        assert gw.returncode is None, gw.stderr
        assert "Traceback" not in gw.stderr, gw.stderr
    assert topo.listening(topo.gw, PORT)
    rules = {e["rule"] for e in gateways.events()}
    assert "fail-closed" not in rules


def test_the_topology_is_what_the_tests_assume(topo: Topology) -> None:
    rules = topo.run(topo.gw, "nft", "list", "table", "inet", netns.TABLE).stdout
    assert f"redirect to :{PORT}" in rules
    # the guard: `ct status & dnat == 0`, which nft 1.0.6 lists as `ct status ! dnat`
    assert f"tcp dport {PORT} ct status ! dnat" in rules or "ct status & dnat == 0" in rules
    assert "policy drop" in rules
    forwarding = topo.run(topo.gw, "sysctl", "-n", "net.ipv4.ip_forward").stdout.strip()
    assert forwarding == "1"
    assert topo.build_seconds < 5
