"""proxy.isolation in transparent mode: which names are believed for the original destination.

The address is the kernel's; a Host name is believed over plain HTTP only if it
resolves (on the gateway) to that address, and over TLS only as the name the
upstream certificate is verified against. See the module docstring of
proxy.isolation. The end-to-end twin of these tests is test_transparent.py.
"""

from __future__ import annotations

import asyncio
import inspect
import ipaddress
import socket
import ssl
from pathlib import Path

import pytest
from mitmproxy import connection, http, options, tls
from mitmproxy.proxy import context, server_hooks
from mitmproxy.proxy.layers.tls import parse_client_hello
from mitmproxy.proxy.mode_specs import ProxyMode
from mitmproxy.test import taddons, tflow

from audit.events import MemoryLog
from proxy.inspect import Inspect
from proxy.isolation import METADATA, Isolation
from proxy.services import Services
from rules.policy.holder import PolicyHolder

POLICY = Path(__file__).resolve().parents[1] / "data" / "transparent" / "policy"
OFFICE, RESTRICTED = "10.1.2.3", "10.9.0.5"
PARTY_IP = "198.51.100.20"  # where portal.lawfirm.example really is
OTHER_IP = "203.0.113.66"  # anywhere else
PARTY = "portal.lawfirm.example"
ID = "11010519491231002X"  # a valid resident ID (GB 11643 checksum), identity: important

DNS = {
    PARTY: [PARTY_IP],
    "docs.lawfirm.example": [PARTY_IP],  # another name on the same server (virtual hosting)
    "cdn.example": ["192.0.2.1", OTHER_IP],  # round-robin: any of its addresses will do
    "elsewhere.example": ["192.0.2.99"],
    "mail.qq.com": ["192.0.2.10"],
}


class Env:
    def __init__(self) -> None:
        self.log = MemoryLog()
        self.services = Services(
            policy=PolicyHolder(POLICY), hash_key=b"k" * 32, record=self.log.record
        )
        self.addon = Isolation(self.services)
        self.inspect = Inspect(self.services)
        self.lookups: list[str] = []

        async def addresses(host: str, port: int) -> list:
            self.lookups.append(host)
            if host not in DNS:
                raise OSError(f"[Errno -2] Name or service not known: {host}")
            return [ipaddress.ip_address(a) for a in DNS[host]]

        self.addon._addresses = addresses  # type: ignore[method-assign]

    @property
    def events(self) -> list[dict]:
        return self.log.events

    async def send(self, flow: http.HTTPFlow) -> http.HTTPFlow:
        """What mitmproxy does with a request: both addons' request hooks, in order."""
        await self.addon.requestheaders(flow)
        await hook(self.inspect.requestheaders, flow)
        await hook(self.inspect.request, flow)
        return flow


async def hook(fn, flow: http.HTTPFlow) -> None:
    """Call a hook whether it is a plain or an async function (as mitmproxy does)."""
    if flow.response is None and flow.error is None:
        result = fn(flow)
        if inspect.isawaitable(result):
            await result


@pytest.fixture
def env() -> Env:
    return Env()


def client(ip: str = OFFICE) -> connection.Client:
    c = tflow.tclient_conn()
    c.peername = (ip, 50123)
    c.proxy_mode = ProxyMode.parse("transparent")
    return c


def request(
    c: connection.Client,
    dest: str,
    host_header: str | None,
    *,
    port: int = 80,
    scheme: str = "http",
    body: bytes = b"",
) -> http.HTTPFlow:
    """A request as mitmproxy's transparent mode sees it: host = the original destination."""
    method = "POST" if body else "GET"
    req = http.Request.make(method, f"{scheme}://placeholder:{port}/upload", body)
    req.data.host, req.data.port = dest, port
    if host_header is not None:
        req.headers["host"] = host_header
    else:
        req.headers.pop("host", None)
    if body:
        req.headers["content-type"] = "application/x-www-form-urlencoded"
    f = tflow.tflow(client_conn=c, req=req)
    f.server_conn.address = (dest, port)
    return f


def hello(c: connection.Client, sni: str | None) -> tls.ClientHelloData:
    sslctx = ssl.create_default_context()
    if sni is None:
        sslctx.check_hostname = False
    obj = sslctx.wrap_bio(ssl.MemoryBIO(), out := ssl.MemoryBIO(), server_hostname=sni)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    parsed = parse_client_hello(out.read())
    assert parsed is not None
    return tls.ClientHelloData(context.Context(c, options.Options()), parsed)


def assert_fronting(f: http.HTTPFlow, env: Env) -> dict:
    assert f.response is not None and f.response.status_code == 403
    assert f.response.headers["X-Leakguard-Rule"] == "isolation:fronting"
    event = env.events[-1]
    assert (event["rule"], event["action"]) == ("isolation:fronting", "block")
    assert event["incident"]
    return event


# -- the fix: a spoofed party name over plain HTTP -------------------------------------------


async def test_party_host_on_another_address_does_not_get_the_party_treatment(env: Env) -> None:
    f = request(client(), OTHER_IP, PARTY, body=f"id_no={ID}".encode())
    with taddons.context(env.addon, env.inspect):
        await env.send(f)
    event = assert_fronting(f, env)
    assert f"Host {PARTY} is not {OTHER_IP}" in event["reason"]
    assert PARTY_IP in event["reason"]  # where the gateway says the name is
    connect = env.events[0]
    assert (connect["type"], connect["action"]) == ("proxy.connect", "allow")
    assert (connect["destination"], connect["party"]) == (OTHER_IP, "")  # the address alone
    assert "decided on the address alone" in connect["detail"]
    assert f.metadata[METADATA]["host"] == ""
    assert not any(e["type"] == "http.request" for e in env.events)  # never reached inspection


async def test_party_host_on_the_party_address_gets_the_party_treatment(env: Env) -> None:
    f = request(client(), PARTY_IP, PARTY, body=f"id_no={ID}".encode())
    with taddons.context(env.addon, env.inspect):
        await env.send(f)
    assert f.response is None
    connect, inspected = env.events
    assert (connect["destination"], connect["party"], connect["detail"]) == (
        PARTY,
        "example-law-firm",
        "",
    )
    assert (inspected["rule"], inspected["action"]) == ("important-to-party-over-http", "allow")
    assert f.metadata[METADATA]["host"] == PARTY


async def test_without_isolation_inspection_would_believe_the_host(env: Env) -> None:
    """Why isolation must refuse: inspection reads the Host header (request.pretty_host)."""
    f = request(client(), OTHER_IP, PARTY, body=f"id_no={ID}".encode())
    with taddons.context(env.inspect):
        await hook(env.inspect.request, f)
    assert f.response is None
    assert env.events[-1]["party"] == "example-law-firm"


async def test_irrelevant_name_not_believed_is_decided_on_the_address(env: Env) -> None:
    f = request(client(), OTHER_IP, "elsewhere.example")
    with taddons.context(env.addon):
        await env.addon.requestheaders(f)
    assert f.response is None  # the name means nothing to the policy: the address decides
    (event,) = env.events
    assert (event["destination"], event["action"], event["rule"]) == (OTHER_IP, "allow", "default")
    assert "Host elsewhere.example is not 203.0.113.66" in event["detail"]
    assert "192.0.2.99" in event["detail"]


async def test_category_name_not_believed_is_fronting(env: Env) -> None:
    """A category changes what the policy sees; the name is refused, not dropped."""
    f = request(client(), OTHER_IP, "mail.qq.com")
    with taddons.context(env.addon):
        await env.addon.requestheaders(f)
    assert_fronting(f, env)


async def test_unresolvable_party_name_is_fronting(env: Env) -> None:
    f = request(client(), OTHER_IP, "intake.portal.lawfirm.example")  # a party host, no DNS
    with taddons.context(env.addon):
        await env.addon.requestheaders(f)
    event = assert_fronting(f, env)
    assert "cannot resolve" in event["reason"]


async def test_round_robin_any_address_of_the_name_is_believed(env: Env) -> None:
    f = request(client(), OTHER_IP, "cdn.example")
    with taddons.context(env.addon):
        await env.addon.requestheaders(f)
    assert f.response is None
    assert (env.events[0]["destination"], env.events[0]["detail"]) == ("cdn.example", "")


@pytest.mark.parametrize(
    "header,believed",
    [(OTHER_IP, True), (f"{OTHER_IP}:80", True), ("192.0.2.7", False), ("0xcb.0.113.66", True)],
)
async def test_ip_literal_host_is_compared_as_an_address(env: Env, header, believed) -> None:
    f = request(client(), OTHER_IP, header)
    with taddons.context(env.addon):
        await env.addon.requestheaders(f)
    assert f.response is None  # an address names no party or category either way
    assert env.lookups == []
    assert bool(env.events[0]["detail"]) is not believed


async def test_no_host_header_is_the_address_alone(env: Env) -> None:
    f = request(client(), OTHER_IP, None)
    with taddons.context(env.addon):
        await env.addon.requestheaders(f)
    assert f.response is None
    assert (env.events[0]["destination"], env.lookups) == (OTHER_IP, [])


# -- per request, not per connection -------------------------------------------------------


async def test_keep_alive_cannot_switch_to_a_spoofed_name(env: Env) -> None:
    c = client()
    with taddons.context(env.addon, env.inspect):
        first = await env.send(request(c, OTHER_IP, "cdn.example"))
        second = await env.send(request(c, OTHER_IP, PARTY, body=f"id_no={ID}".encode()))
        third = await env.send(request(c, OTHER_IP, "cdn.example"))
    assert first.response is None
    assert_fronting(second, env)
    assert third.response is not None  # the connection is refused from then on


async def test_keep_alive_virtual_hosts_on_one_address(env: Env) -> None:
    c = client()
    with taddons.context(env.addon):
        for name in (PARTY, "docs.lawfirm.example", PARTY):
            f = request(c, PARTY_IP, name)
            await env.addon.requestheaders(f)
            assert f.response is None
    assert len(env.events) == 1  # one connection decision
    assert env.lookups == [PARTY, "docs.lawfirm.example"]  # each name checked once


async def test_a_block_needs_no_lookup(env: Env) -> None:
    f = request(client(RESTRICTED), OTHER_IP, PARTY)
    with taddons.context(env.addon):
        await env.addon.requestheaders(f)
    assert f.response is not None and f.response.status_code == 403
    assert env.events[0]["rule"] == "reach:restricted->external"
    assert env.lookups == []  # a name can only make a decision stricter


# -- TLS: the name is what the upstream certificate is verified against -----------------------


async def test_tls_with_sni_needs_no_lookup(env: Env) -> None:
    c = client()
    with taddons.context(env.addon):
        env.addon.tls_clienthello(hello(c, PARTY))
        f = request(c, OTHER_IP, PARTY, port=443, scheme="https")
        await env.addon.requestheaders(f)
    assert f.response is None
    assert env.events[0]["party"] == "example-law-firm"
    assert env.lookups == []


async def test_tls_without_sni_is_bound_to_its_first_host(env: Env) -> None:
    c = client()
    with taddons.context(env.addon):
        env.addon.tls_clienthello(hello(c, None))
        first = request(c, OTHER_IP, "elsewhere.example", port=443, scheme="https")
        await env.addon.requestheaders(first)
        server = connection.Server(address=(OTHER_IP, 443))
        await env.addon.server_connect(server_hooks.ServerConnectionHookData(server, c))
        second = request(c, OTHER_IP, PARTY, port=443, scheme="https")
        await env.addon.requestheaders(second)
    assert first.response is None
    assert server.sni == "elsewhere.example"  # what mitmproxy verifies the certificate for
    event = assert_fronting(second, env)
    assert "without SNI" in event["reason"]


# -- the lookup itself ---------------------------------------------------------------------


async def test_addresses_are_all_answers_deduplicated_and_plain(monkeypatch) -> None:
    isolation = Isolation(
        Services(policy=PolicyHolder(POLICY), hash_key=b"k" * 32, record=MemoryLog().record)
    )

    async def getaddrinfo(host, port, **kw):
        stream = (socket.AF_INET, socket.SOCK_STREAM, 6, "")
        v6 = (socket.AF_INET6, socket.SOCK_STREAM, 6, "")
        return [
            (*stream, ("192.0.2.1", port)),
            (*v6, ("::ffff:192.0.2.2", port, 0, 0)),
            (*stream, ("192.0.2.1", port)),
            (*v6, ("fe80::1%eth0", port, 0, 2)),
        ]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    found = await isolation._addresses("rr.example", 80)
    assert [str(a) for a in found] == ["192.0.2.1", "192.0.2.2", "fe80::1"]
    assert str(await isolation._resolve("rr.example", 80)) == "192.0.2.1"
    isolation.services.hosts = {"rr.example": ipaddress.ip_address("198.51.100.9")}
    assert [str(a) for a in await isolation._addresses("rr.example", 80)] == ["198.51.100.9"]
