"""proxy.isolation: zone reach on the address connected to, pinning, anti-spoofing."""

from __future__ import annotations

import asyncio
import ipaddress
import shutil
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from mitmproxy import connection, http, options, tls
from mitmproxy.proxy import context, server_hooks
from mitmproxy.proxy.layers.tls import parse_client_hello
from mitmproxy.proxy.mode_specs import ProxyMode
from mitmproxy.test import taddons, tflow
from mitmproxy.tools.dump import DumpMaster

import proxy.isolation as isolation
from audit.events import MemoryLog
from proxy.isolation import METADATA, Isolation
from proxy.services import Services
from rules.policy.holder import PolicyHolder

DEFAULT = Path(__file__).resolve().parents[2] / "rules" / "default"
OFFICE, RESTRICTED, OUTSIDE = "10.1.2.3", "10.9.0.5", "203.0.113.9"
WEB = "198.51.100.7"  # an external web server (documentation range)

# names the fake resolver knows; everything else fails like NXDOMAIN
DNS = {
    "www.example.com": WEB,
    "a.example": WEB,
    "b.example": WEB,
    "app.pinned.example": WEB,
    "intranet.example": "10.1.0.7",  # office → office: every port
}


class Env:
    def __init__(self, policy_dir: Path = DEFAULT) -> None:
        self.log = MemoryLog()
        self.services = Services(
            policy=PolicyHolder(policy_dir), hash_key=b"k" * 32, record=self.log.record
        )
        self.addon = Isolation(self.services)
        self.lookups: list[str] = []

    def use_dns(self, answers: Callable[[str], str] | dict[str, str] = DNS) -> None:
        """Replace the proxy's lookup (offline tests); the rebinding test swaps answers."""

        async def resolve(host: str, port: int):
            self.lookups.append(host)
            ip = answers(host) if callable(answers) else answers.get(host)
            if ip is None:
                raise OSError(f"[Errno -2] Name or service not known: {host}")
            return ipaddress.ip_address(ip)

        self.addon._resolve = resolve  # type: ignore[method-assign]

    @property
    def events(self) -> list[dict]:
        return self.log.events


@pytest.fixture
def env() -> Env:
    e = Env()
    e.use_dns()
    return e


def client(ip: str, mode: str = "regular") -> connection.Client:
    c = tflow.tclient_conn()
    c.peername = (ip, 50123)
    c.proxy_mode = ProxyMode.parse(mode)
    return c


def request(
    c: connection.Client, url_host: str, port: int = 80, host_header: str | None = None, **kw
) -> http.HTTPFlow:
    req = http.Request.make("GET", f"http://placeholder:{port}/")
    req.data.host, req.data.port = url_host, port
    if host_header is None:  # what a client writes: the port unless it is the default
        shown = f"[{url_host}]" if ":" in url_host else url_host
        host_header = shown if port == 80 else f"{shown}:{port}"
    req.headers["host"] = host_header
    for k, v in kw.items():
        setattr(req, k, v)
    return tflow.tflow(client_conn=c, req=req)


def connect(c: connection.Client, host: str, port: int = 443) -> http.HTTPFlow:
    req = http.Request.make("CONNECT", f"http://placeholder:{port}/")
    req.data.host, req.data.port, req.data.path = host, port, b""
    return tflow.tflow(client_conn=c, req=req)


def hello(c: connection.Client, sni: str | None) -> tls.ClientHelloData:
    """A real ClientHello as a client library writes it."""
    sslctx = ssl.create_default_context()
    obj = sslctx.wrap_bio(ssl.MemoryBIO(), out := ssl.MemoryBIO(), server_hostname=sni)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    parsed = parse_client_hello(out.read())
    assert parsed is not None
    return tls.ClientHelloData(context.Context(c, options.Options()), parsed)


def server_data(c: connection.Client, host: str, port: int):
    server = connection.Server(address=(host, port))
    return server_hooks.ServerConnectionHookData(server=server, client=c)


# -- reach -----------------------------------------------------------------------------------


async def test_office_to_external_is_allowed_and_recorded_once(env: Env) -> None:
    c = client(OFFICE)
    with taddons.context(env.addon):
        for _ in range(3):  # keep-alive: three requests, one decision
            f = request(c, "www.example.com")
            await env.addon.requestheaders(f)
            assert f.response is None
            assert f.metadata[METADATA]["ip"] == WEB
    assert len(env.events) == 1
    event = env.events[0]
    assert (event["type"], event["action"], event["rule"]) == ("proxy.connect", "allow", "default")
    assert (event["source_zone"], event["destination_zone"]) == ("office", "external")
    assert event["destination"] == "www.example.com"
    assert event["destination_ip"] == WEB
    assert event["incident"] == ""
    assert env.lookups == ["www.example.com"]


async def test_restricted_to_external_gets_the_block_page(env: Env) -> None:
    f = request(client(RESTRICTED), "www.example.com")
    with taddons.context(env.addon):
        await env.addon.requestheaders(f)
    assert f.response is not None and f.response.status_code == 403
    (event,) = env.events
    assert event["rule"] == "reach:restricted->external"
    assert event["action"] == "block"
    assert event["incident"].startswith("LG-")
    assert f.response.headers["X-Leakguard-Rule"] == "reach:restricted->external"
    body = f.response.get_text()
    assert "reach:restricted-&gt;external" in body
    assert event["incident"] in body


async def test_external_client_cannot_reach_internal(env: Env) -> None:
    f = request(client(OUTSIDE), "10.1.0.5")
    with taddons.context(env.addon):
        await env.addon.requestheaders(f)
    assert f.response is not None and f.response.status_code == 403
    assert env.events[0]["rule"] == "reach:external->office"
    assert env.lookups == []  # an IP literal is never looked up


ODD = {
    # name: (host, address it means, destination zone)
    "hex part": ("0x0a.9.0.5", "10.9.0.5", "restricted"),
    "decimal": ("2130706433", "127.0.0.1", "office"),
    "mapped": ("::ffff:10.9.0.5", "10.9.0.5", "restricted"),
    "mapped hex": ("::ffff:a09:5", "10.9.0.5", "restricted"),
    "short": ("10.9.5", "10.9.0.5", "restricted"),
    "octal": ("012.011.0.05", "10.9.0.5", "restricted"),
}


@pytest.mark.parametrize("host,ip,zone", ODD.values(), ids=ODD.keys())
async def test_odd_notations_are_read_as_the_address(env: Env, host, ip, zone) -> None:
    f = request(client(OFFICE), host, port=8080)
    with taddons.context(env.addon):
        await env.addon.requestheaders(f)
    (event,) = env.events
    assert (event["destination_ip"], event["destination_zone"]) == (ip, zone)
    if zone == "restricted":  # office reaches restricted on 22 and 443 only
        assert event["rule"] == "reach:office->restricted"
        assert f.response is not None and f.response.status_code == 403
    else:
        assert f.response is None
    assert env.lookups == []


async def test_invalid_numeric_host_is_refused(env: Env) -> None:
    f = request(client(OFFICE), "1.2.3.999999999")
    with taddons.context(env.addon):
        await env.addon.requestheaders(f)
    assert f.response is not None and f.response.status_code == 403
    assert env.events[0]["rule"] == "isolation:unresolved"


async def test_unresolvable_host_is_refused(env: Env) -> None:
    f = request(client(OFFICE), "nowhere.invalid")
    with taddons.context(env.addon):
        await env.addon.requestheaders(f)
    assert f.response is not None and f.response.status_code == 403
    assert env.events[0]["rule"] == "isolation:unresolved"
    assert "nowhere.invalid" in env.events[0]["reason"]


async def test_connect_is_answered_with_the_block_page(env: Env) -> None:
    f = connect(client(RESTRICTED), "a.example")
    with taddons.context(env.addon):
        await env.addon.http_connect(f)
    assert f.response is not None and f.response.status_code == 403
    (event,) = env.events
    assert (event["channel"], event["rule"]) == ("https", "reach:restricted->external")


async def test_connect_allowed(env: Env) -> None:
    f = connect(client(OFFICE), "a.example")
    with taddons.context(env.addon):
        await env.addon.http_connect(f)
    assert f.response is None
    assert env.events[0]["action"] == "allow"


# -- pinning and rebinding -------------------------------------------------------------------


async def test_server_connect_pins_the_decided_address() -> None:
    """The real system resolver: `localhost` is answered locally, offline."""
    e = Env()
    c = client(OFFICE)
    data = server_data(c, "localhost", 8080)
    with taddons.context(e.addon):
        await e.addon.server_connect(data)
        assert data.server.error is None
        pinned = ipaddress.ip_address(data.server.address[0])
        assert pinned.is_loopback and data.server.address[1] == 8080
        assert data.server.sni == "localhost"  # upstream TLS still names the host
        (event,) = e.events
        assert event["destination_ip"] == str(pinned)
        assert event["destination_zone"] == "office"

        # once connected, the name is back (requests keep it, connections are reused);
        # the IP actually used is the peername
        data.server.peername = (str(pinned), 8080)
        e.addon.server_connected(data)
        assert data.server.address == ("localhost", 8080)

        # a second connection from the same client to the same host: no second lookup
        again = server_data(c, "localhost", 8080)
        e.use_dns({"localhost": "198.51.100.66"})
        await e.addon.server_connect(again)
        assert again.server.address == (str(pinned), 8080)
        assert e.lookups == []
        assert len(e.events) == 1


async def test_rebinding_cannot_move_the_connection(env: Env) -> None:
    """First answer external (allowed), every later answer restricted: the pin holds."""
    answers = iter([WEB])
    env.use_dns(lambda host: next(answers, RESTRICTED))
    c = client(OFFICE)
    with taddons.context(env.addon):
        f = request(c, "rebind.example")
        await env.addon.requestheaders(f)
        assert f.response is None
        data = server_data(c, "rebind.example", 80)
        await env.addon.server_connect(data)
    assert data.server.address == (WEB, 80)
    assert env.lookups == ["rebind.example"]


async def test_server_connect_kills_a_held_connection(env: Env) -> None:
    c = client(RESTRICTED, mode="transparent")
    data = server_data(c, WEB, 443)
    with taddons.context(env.addon):
        await env.addon.server_connect(data)
    assert data.server.error and "reach:restricted->external" in data.server.error
    assert data.server.address == (WEB, 443)
    assert env.events[0]["channel"] == "https"


async def test_transparent_request_uses_the_original_destination(env: Env) -> None:
    c = client(RESTRICTED, mode="transparent")
    f = request(c, WEB, host_header="www.example.com")
    f.server_conn.address = (WEB, 80)
    with taddons.context(env.addon):
        await env.addon.requestheaders(f)
    assert f.response is not None and f.response.status_code == 403
    event = env.events[0]
    assert (event["destination_ip"], event["destination"]) == (WEB, "www.example.com")
    assert env.lookups == []  # the destination is the kernel's, not a name's


# -- fronting ----------------------------------------------------------------------------------


async def test_connect_and_sni_must_agree(env: Env) -> None:
    c = client(OFFICE)
    with taddons.context(env.addon):
        await env.addon.http_connect(connect(c, "a.example"))
        data = hello(c, "b.example")
        env.addon.tls_clienthello(data)
        start = tls.TlsData(c, data.context, ssl_conn=object())  # type: ignore[arg-type]
        env.addon.tls_start_client(start)
        assert start.ssl_conn is None  # mitmproxy closes a connection with no TLS context
        assert not data.establish_server_tls_first
        server = server_data(c, "a.example", 443)
        await env.addon.server_connect(server)
        assert server.server.error and "isolation:fronting" in server.server.error
    allow, front = env.events
    assert allow["action"] == "allow"
    assert front["rule"] == "isolation:fronting"
    assert "a.example:443" in front["reason"] and "b.example" in front["reason"]
    assert front["incident"]


async def test_matching_sni_is_intercepted(env: Env) -> None:
    c = client(OFFICE)
    with taddons.context(env.addon):
        await env.addon.http_connect(connect(c, "a.example"))
        data = hello(c, "A.Example.")
        env.addon.tls_clienthello(data)
        marker = object()
        start = tls.TlsData(c, data.context, ssl_conn=marker)  # type: ignore[arg-type]
        env.addon.tls_start_client(start)
        assert start.ssl_conn is marker
        assert not data.ignore_connection
        f = request(c, "a.example", 443, host_header="a.example", scheme="https")
        await env.addon.requestheaders(f)
        assert f.response is None
    assert [e["rule"] for e in env.events] == ["default"]


HOSTS = {
    # name: (CONNECT port, Host header, blocked)
    "other host": (443, "b.example", True),
    "no port": (443, "intranet.example", False),
    "default port": (443, "intranet.example:443", False),
    "case and dot": (443, "INTRANET.Example.", False),
    "port differs": (443, "intranet.example:8443", True),
    "non-default port omitted": (8443, "intranet.example", True),
    "non-default port given": (8443, "intranet.example:8443", False),
}


@pytest.mark.parametrize("port,host_header,blocked", HOSTS.values(), ids=HOSTS.keys())
async def test_connect_and_host_must_agree(env: Env, port, host_header, blocked) -> None:
    c = client(OFFICE)
    target = "intranet.example"
    with taddons.context(env.addon):
        await env.addon.http_connect(connect(c, target, port))
        env.addon.tls_clienthello(hello(c, target))
        f = request(c, target, port, host_header=host_header, scheme="https")
        await env.addon.requestheaders(f)
    if blocked:
        assert f.response is not None and f.response.status_code == 403
        assert f.response.headers["X-Leakguard-Rule"] == "isolation:fronting"
        assert env.events[-1]["rule"] == "isolation:fronting"
    else:
        assert f.response is None
        assert len(env.events) == 1


async def test_sni_and_host_must_agree_in_transparent_mode(env: Env) -> None:
    c = client(OFFICE, mode="transparent")
    with taddons.context(env.addon):
        env.addon.tls_clienthello(hello(c, "a.example"))
        f = request(c, WEB, 443, host_header="b.example", scheme="https")
        f.server_conn.address = (WEB, 443)
        await env.addon.requestheaders(f)
    assert f.response is not None and f.response.status_code == 403
    assert env.events[-1]["rule"] == "isolation:fronting"
    assert "SNI a.example" in env.events[-1]["reason"]


async def test_absolute_url_and_host_must_agree(env: Env) -> None:
    f = request(client(OFFICE), "a.example", host_header="b.example")
    with taddons.context(env.addon):
        await env.addon.requestheaders(f)
    assert f.response is not None and f.response.headers["X-Leakguard-Rule"] == "isolation:fronting"


# -- pinned clients and passthrough --------------------------------------------------------


@pytest.fixture
def passthrough_env(tmp_path: Path) -> Env:
    policy = tmp_path / "policy"
    shutil.copytree(DEFAULT, policy)
    dest = policy / "destinations.yaml"
    text = dest.read_text()
    assert "tls_passthrough: []" in text
    dest.write_text(text.replace("tls_passthrough: []", "tls_passthrough: [pinned.example]"))
    e = Env(policy)
    e.use_dns()
    return e


@pytest.mark.parametrize("host,ignored", [("app.pinned.example", True), ("a.example", False)])
async def test_passthrough_only_for_listed_hosts(passthrough_env: Env, host, ignored) -> None:
    e = passthrough_env
    c = client(OFFICE)
    with taddons.context(e.addon):
        await e.addon.http_connect(connect(c, host))
        data = hello(c, host)
        e.addon.tls_clienthello(data)
    assert data.ignore_connection is ignored
    kinds = [ev["type"] for ev in e.events]
    assert kinds == (["proxy.connect", "proxy.passthrough"] if ignored else ["proxy.connect"])
    if ignored:
        assert e.events[-1]["rule"] == "tls_passthrough"
        assert e.events[-1]["action"] == "allow"


async def test_a_refused_certificate_is_recorded(env: Env) -> None:
    c = client(OFFICE)
    with taddons.context(env.addon):
        await env.addon.http_connect(connect(c, "a.example"))
        data = hello(c, "a.example")
        env.addon.tls_clienthello(data)
        c.error = "The client does not trust the proxy's certificate for a.example"
        env.addon.tls_failed_client(tls.TlsData(c, data.context))
    event = env.events[-1]
    assert (event["type"], event["rule"]) == ("proxy.tls_failed", "isolation:uninspectable")
    assert "tls_passthrough" in event["reason"] and "a.example" in event["reason"]


# -- failing closed --------------------------------------------------------------------------


async def test_an_error_in_evaluation_blocks(env: Env, monkeypatch) -> None:
    def broken(*_args, **_kw):
        raise RuntimeError("boom")

    monkeypatch.setattr(isolation, "evaluate", broken)
    f = request(client(OFFICE), "www.example.com")
    data = server_data(client(OFFICE), "www.example.com", 80)
    with taddons.context(env.addon):
        await env.addon.requestheaders(f)
        await env.addon.server_connect(data)
    assert f.response is not None and f.response.status_code == 403
    assert f.response.headers["X-Leakguard-Rule"] == "fail-closed"
    assert data.server.error and "failed closed" in data.server.error
    assert env.events[0]["rule"] == "fail-closed"
    assert "RuntimeError" in env.events[0]["reason"]


async def test_client_state_is_dropped_on_disconnect(env: Env) -> None:
    c = client(OFFICE)
    with taddons.context(env.addon):
        await env.addon.requestheaders(request(c, "www.example.com"))
        env.addon.client_disconnected(c)
    assert env.addon._clients == {}


# -- end to end: a real mitmproxy, a real client, a real origin ------------------------------


class _Origin(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"origin says hello"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args) -> None:
        pass


async def test_end_to_end_through_mitmproxy(tmp_path: Path) -> None:
    origin = ThreadingHTTPServer(("127.0.0.1", 0), _Origin)
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    port = origin.server_address[1]
    e = Env()
    opts = options.Options(listen_host="127.0.0.1", listen_port=0, confdir=str(tmp_path))
    master = DumpMaster(opts, with_termlog=False, with_dumper=False)
    master.addons.add(Isolation(e.services))
    running = asyncio.create_task(master.run())
    try:
        proxyserver = master.addons.get("proxyserver")
        for _ in range(200):
            if proxyserver.listen_addrs():
                break
            await asyncio.sleep(0.01)
        proxy_port = proxyserver.listen_addrs()[0][1]
        async with httpx.AsyncClient(proxy=f"http://127.0.0.1:{proxy_port}", timeout=5) as cl:
            ok = await cl.get(f"http://127.0.0.1:{port}/")
            refused = await cl.get(f"http://0x0a.9.0.5:{port}/")
            loop = await cl.get(f"http://2130706433:{proxy_port}/")
            with pytest.raises(httpx.ProxyError, match="403"):  # CONNECT answered 403
                await cl.get(f"https://0x0a.9.0.5:{port}/")
    finally:
        master.shutdown()
        await running
        origin.shutdown()
        origin.server_close()
    assert (ok.status_code, ok.text) == (200, "origin says hello")
    assert refused.status_code == 403
    assert refused.headers["X-Leakguard-Rule"] == "reach:office->restricted"
    assert loop.status_code == 403  # mitmproxy's own check knows only literal localhost
    assert loop.headers["X-Leakguard-Rule"] == "isolation:self"
    rules = [ev["rule"] for ev in e.events]
    assert rules == [
        "default",
        "reach:office->restricted",
        "isolation:self",
        "reach:office->restricted",
    ]
    assert (e.events[-1]["channel"], e.events[-1]["destination_ip"]) == ("https", "10.9.0.5")
