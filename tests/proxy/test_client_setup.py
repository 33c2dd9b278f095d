"""proxy.client_setup: the CA and PAC served on the proxy's own address (taddons, tflow).

mitmproxy's proxyserver is replaced by a stand-in that says where the proxy
listens; everything else is real (a CA made with certs.ca, the shipped policy).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from mitmproxy import http
from mitmproxy.test import taddons, tflow, tutils

import proxy.server as server
from audit.events import MemoryLog
from certs.ca import create_ca
from certs.rotation import stage_next
from proxy.client_setup import PAC_TYPE, ClientSetup
from proxy.services import Services
from rules.policy.holder import PolicyHolder

ROOT = Path(__file__).resolve().parents[2]
LISTEN = ("127.0.0.1", 8080)


class FakeProxyserver:
    """What ClientSetup asks mitmproxy's proxyserver: where do we listen?"""

    name = "proxyserver"

    def __init__(self, addrs: list[tuple[str, int]]) -> None:
        self.addrs = addrs

    def listen_addrs(self) -> list[tuple[str, int]]:
        return self.addrs


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    create_ca(tmp_path)
    return tmp_path


@pytest.fixture
def addon(state_dir: Path) -> ClientSetup:
    return ClientSetup(services(), state_dir)


def services() -> Services:
    policy = PolicyHolder(ROOT / "rules" / "default")
    return Services(policy=policy, hash_key=b"k" * 32, record=MemoryLog().record)


def flow(
    host: str, port: int, path: str = "/", method: str = "GET", client: str = "10.1.2.3"
) -> http.HTTPFlow:
    req = tutils.treq(host=host, port=port, path=path.encode(), method=method.encode())
    req.headers["host"] = f"{host}:{port}"
    f = tflow.tflow(req=req)
    f.client_conn.peername = (client, 50000)
    return f


def serve(addon: ClientSetup, f: http.HTTPFlow, listen=(LISTEN,)) -> http.HTTPFlow:
    with taddons.context(addon, FakeProxyserver(list(listen))):
        addon.requestheaders(f)
    return f


# -- what is served ----------------------------------------------------------------------------


def test_ca_pem_is_the_current_ca(addon: ClientSetup, state_dir: Path) -> None:
    f = serve(addon, flow("127.0.0.1", 8080, "/leakguard/ca.pem"))
    assert f.response is not None and f.response.status_code == 200
    assert f.response.headers["content-type"] == "application/x-pem-file"
    assert f.response.headers["cache-control"] == "no-store"
    on_disk = (state_dir / "ca" / "current" / "ca-cert.pem").read_bytes()
    assert f.response.content == on_disk
    assert b"PRIVATE KEY" not in f.response.content
    assert f.metadata["leakguard.client_setup"] == "/leakguard/ca.pem"


def test_ca_pem_carries_the_next_ca_during_a_rotation(addon: ClientSetup, state_dir: Path) -> None:
    staged = stage_next(state_dir)
    f = serve(addon, flow("127.0.0.1", 8080, "/leakguard/ca.pem"))
    assert f.response is not None
    certs = x509.load_pem_x509_certificates(f.response.content)
    assert len(certs) == 2 and certs[1] == staged.cert


@pytest.mark.parametrize("path", ["/leakguard/ca.der", "/leakguard/ca.crt"])
def test_ca_der_is_the_current_ca_alone(addon: ClientSetup, state_dir: Path, path: str) -> None:
    stage_next(state_dir)  # the next CA is not in the DER file
    f = serve(addon, flow("127.0.0.1", 8080, path))
    assert f.response is not None and f.response.status_code == 200
    current = x509.load_pem_x509_certificate(
        (state_dir / "ca" / "current" / "ca-cert.pem").read_bytes()
    )
    assert f.response.content == current.public_bytes(serialization.Encoding.DER)
    assert "attachment" in f.response.headers["content-disposition"]


@pytest.mark.parametrize("path", ["/proxy.pac", "/wpad.dat", "/proxy.pac?x=1"])
def test_pac_names_the_address_it_was_fetched_from(addon: ClientSetup, path: str) -> None:
    f = serve(addon, flow("127.0.0.1", 8080, path))
    assert f.response is not None and f.response.status_code == 200
    assert f.response.headers["content-type"] == PAC_TYPE
    assert '"PROXY 127.0.0.1:8080"' in f.response.text
    assert "function FindProxyForURL" in f.response.text


def test_pac_for_a_gateway_on_all_addresses(addon: ClientSetup) -> None:
    """Listening on 0.0.0.0: a client that fetched the PAC from 10.0.0.1 is told 10.0.0.1
    (any address of this host counts; loopback stands in for one here)."""
    f = serve(addon, flow("127.0.0.7", 3128, "/proxy.pac"), listen=[("0.0.0.0", 3128)])
    assert f.response is not None
    assert '"PROXY 127.0.0.7:3128"' in f.response.text


def test_pac_is_built_from_the_policy(addon: ClientSetup) -> None:
    pac = serve(addon, flow("127.0.0.1", 8080, "/proxy.pac")).response
    assert pac is not None and '["10.9.0.0", "255.255.255.0", "restricted"]' in pac.text


def test_index_page_links_the_files(addon: ClientSetup) -> None:
    f = serve(addon, flow("localhost", 8080, "/"))
    assert f.response is not None and f.response.status_code == 200
    page = f.response.text
    assert "http://localhost:8080/leakguard/ca.pem" in page
    assert "http://localhost:8080/proxy.pac" in page
    assert "根证书" in page and "CA certificate" in page


def test_unknown_path_is_404_and_never_goes_upstream(addon: ClientSetup) -> None:
    f = serve(addon, flow("127.0.0.1", 8080, "/admin"))
    assert f.response is not None and f.response.status_code == 404


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_only_get_and_head(addon: ClientSetup, method: str) -> None:
    f = serve(addon, flow("127.0.0.1", 8080, "/proxy.pac", method=method))
    assert f.response is not None and f.response.status_code == 405


def test_head_is_served(addon: ClientSetup) -> None:
    f = serve(addon, flow("127.0.0.1", 8080, "/proxy.pac", method="HEAD"))
    assert f.response is not None and f.response.status_code == 200


def test_missing_ca_is_a_clear_500(tmp_path: Path) -> None:
    empty = ClientSetup(services(), tmp_path / "nothing-here")
    f = serve(empty, flow("127.0.0.1", 8080, "/leakguard/ca.der"))
    assert f.response is not None and f.response.status_code == 500
    assert b"cannot serve /leakguard/ca.der" in f.response.content


# -- what is not for us ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "port"),
    [
        ("127.0.0.1", 8081),  # another port on this host
        ("203.0.113.5", 8080),  # the proxy's port on another host
        ("www.example.com", 8080),  # a name: only `localhost` is known without resolving
        ("10.255.255.254", 8080),  # not an address of this host
    ],
)
def test_other_destinations_are_left_alone(addon: ClientSetup, host: str, port: int) -> None:
    f = serve(addon, flow(host, port, "/proxy.pac"))
    assert f.response is None
    assert "leakguard.client_setup" not in f.metadata


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST.", "127.0.0.1", "::ffff:7f00:1"])
def test_the_listening_address_and_localhost_are_ours(addon: ClientSetup, host: str) -> None:
    f = serve(addon, flow(host, 8080, "/proxy.pac"))
    assert f.response is not None and f.response.status_code == 200


@pytest.mark.parametrize("host", ["127.0.0.53", "::1"])
def test_other_loopback_addresses_are_not(addon: ClientSetup, host: str) -> None:
    """Listening on 127.0.0.1 only: 127.0.0.53:8080 is someone else (a PAC naming it would
    point clients at nothing). Isolation refuses it if it would loop."""
    assert serve(addon, flow(host, 8080, "/proxy.pac")).response is None


@pytest.mark.parametrize("wildcard", ["0.0.0.0", "::"])
@pytest.mark.parametrize("host", ["127.0.0.53", "::1", "localhost"])
def test_listening_on_every_address_every_local_address_is_ours(
    addon: ClientSetup, wildcard: str, host: str
) -> None:
    f = serve(addon, flow(host, 8080, "/proxy.pac"), listen=[(wildcard, 8080)])
    assert f.response is not None and f.response.status_code == 200


def test_odd_notation_of_our_address_is_ours(addon: ClientSetup) -> None:
    f = serve(addon, flow("2130706433", 8080, "/leakguard/ca.pem"))
    assert f.response is not None and f.response.status_code == 200


def test_connect_is_left_to_isolation(addon: ClientSetup) -> None:
    f = flow("127.0.0.1", 8080, "", method="CONNECT")
    f.request.path = ""
    assert serve(addon, f).response is None


def test_a_flow_already_answered_is_left_alone(addon: ClientSetup) -> None:
    f = flow("127.0.0.1", 8080, "/proxy.pac")
    f.response = http.Response.make(403, b"isolation said no")
    serve(addon, f)
    assert f.response.content == b"isolation said no"


def test_without_a_proxyserver_nothing_is_ours(addon: ClientSetup) -> None:
    f = flow("127.0.0.1", 8080, "/proxy.pac")
    with taddons.context(addon):
        addon.requestheaders(f)
    assert f.response is None


# -- where build_master puts it ----------------------------------------------------------------


async def test_build_master_orders_the_addons_and_configures_them(
    addon: ClientSetup, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ClientSetup before Isolation before Inspect; and every addon's `configure` sees the
    options build_master sets (set before `add`, they would never be reported)."""
    seen: set[str] = set()

    class Spy(server.Ready):
        def configure(self, updated: set[str]) -> None:
            seen.update(updated)

    monkeypatch.setattr(server, "Ready", Spy)
    settings = server.ProxySettings(port=0, stream_above=5 * 2**20)
    master = server.build_master(settings, addon.services, state_dir, state_dir / "mitmproxy")
    names = [type(a).__name__ for a in master.addons.chain]
    ours = [n for n in names if n in ("ClientSetup", "Isolation", "Inspect", "Spy")]
    assert ours == ["ClientSetup", "Isolation", "Inspect", "Spy"]
    assert names.index("ClientSetup") > names.index("Proxyserver")
    # no mitmproxy feature that rewrites, replays, saves or scripts traffic (nor the
    # onboarding app): an option set by mistake must not find an addon to act on it
    absent = {"ScriptLoader", "MapRemote", "MapLocal", "ModifyBody", "ModifyHeaders", "Save"}
    absent |= {"SaveHar", "ServerPlayback", "ClientPlayback", "Onboarding"}
    assert absent.isdisjoint(names)
    assert {"Core", "Block", "DisableH2C", "NextLayer", "TlsConfig", "ErrorCheck"} <= set(names)
    assert master.options.stream_large_bodies == str(5 * 2**20)
    assert master.options.connection_strategy == "lazy"
    assert {"stream_large_bodies", "connection_strategy"} <= seen
