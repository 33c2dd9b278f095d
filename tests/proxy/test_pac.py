"""proxy.pac: the generated PAC file, run for real in a JavaScript engine (node).

The harness gives the PAC the Netscape helper functions (isPlainHostName,
dnsDomainIs, isInNet, shExpMatch, myIpAddress, and the rest of the usual set)
in a fresh `vm` context, the way a browser's PAC sandbox does. Name resolution
(dnsResolve, isResolvable, and isInNet on a name) throws: the PAC promises
never to resolve, so a request never waits for DNS.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from proxy.pac import render_pac
from rules.policy.holder import PolicyHolder

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "rules" / "default"
NODE = shutil.which("node")
PROXY = "PROXY 10.0.0.1:8080"

pytestmark = pytest.mark.skipif(NODE is None, reason="node is needed to run the PAC")

HARNESS = r"""
const vm = require("vm");
const input = JSON.parse(require("fs").readFileSync(0, "utf8"));

function ipv4(text) {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (!m) return null;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return null;
  return ((parts[0] << 24) | (parts[1] << 16) | (parts[2] << 8) | parts[3]) >>> 0;
}
function noDns(host) {
  throw new Error("PAC resolved a name: " + host);
}
const resolved = [];
const helpers = {
  isPlainHostName: (host) => host.indexOf(".") < 0,
  dnsDomainIs: (host, domain) =>
    host.length >= domain.length && host.substring(host.length - domain.length) === domain,
  localHostOrDomainIs: (host, hostdom) =>
    host === hostdom || (host.indexOf(".") < 0 && hostdom.indexOf(host + ".") === 0),
  isResolvable: (host) => noDns(host),
  dnsResolve: (host) => noDns(host),
  dnsDomainLevels: (host) => host.split(".").length - 1,
  myIpAddress: () => input.myip,
  isInNet: (host, pattern, mask) => {
    const ip = ipv4(host);
    if (ip === null) noDns(host);  // the spec resolves a name here; ours must not get one
    const p = ipv4(pattern), m = ipv4(mask);
    return ((ip & m) >>> 0) === ((p & m) >>> 0);
  },
  shExpMatch: (str, exp) => {
    const re = exp.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
    return new RegExp("^" + re + "$").test(str);
  },
  weekdayRange: () => true,
  dateRange: () => true,
  timeRange: () => true,
  alert: () => {},
};
const sandbox = vm.createContext(helpers);
vm.runInContext(input.pac, sandbox, { filename: "proxy.pac" });
const out = {};
for (const [url, host] of input.cases) {
  try {
    out[url] = sandbox.FindProxyForURL(url, host);
  } catch (e) {
    out[url] = "ERROR " + e.message;
  }
}
process.stdout.write(JSON.stringify(out));
"""


def find_proxy(pac: str, myip: str, urls: list[str]) -> dict[str, str]:
    """FindProxyForURL for each URL, as a browser on `myip` would call it."""
    cases = [[url, _host(url)] for url in urls]
    done = subprocess.run(
        [NODE or "node", "-e", HARNESS],
        input=json.dumps({"pac": pac, "myip": myip, "cases": cases}),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _host(url: str) -> str:
    """The host a browser passes: no scheme, port, path or brackets' contents changed."""
    rest = url.split("://", 1)[1]
    authority = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    if authority.startswith("["):
        return authority[: authority.index("]") + 1]
    return authority.split(":", 1)[0]


@pytest.fixture(scope="module")
def shipped_pac() -> str:
    return render_pac(PolicyHolder(SHIPPED).policy, "10.0.0.1:8080")


def write_policy(tmp_path: Path, zones: str) -> Path:
    target = tmp_path / "policy"
    shutil.copytree(SHIPPED, target)
    (target / "zones.yaml").write_text(zones, encoding="utf-8")
    return target


# -- the shipped policy: office 10/8 etc., restricted 10.9.0.0/24 carved out of it ---------


OFFICE_CLIENT = "10.1.2.3"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://www.example.com/", PROXY),  # external
        ("http://mail.qq.com/compose", PROXY),
        ("http://8.8.8.8/", PROXY),
        ("http://10.1.0.7:8443/", "DIRECT"),  # office → office
        ("http://192.168.3.4/", "DIRECT"),  # another office network
        ("http://172.20.0.1/", "DIRECT"),
        ("https://10.9.0.5/", PROXY),  # restricted, carved out of 10/8: through the gateway
        ("http://10.9.1.5/", "DIRECT"),  # just outside the restricted /24: office again
        ("http://intranet/", "DIRECT"),  # plain host name
        ("http://localhost:3000/", "DIRECT"),
        ("http://127.0.0.1:8080/", "DIRECT"),
        ("http://[::1]:8080/", "DIRECT"),
        ("http://WWW.Example.COM/", PROXY),
        ("http://0x0a.9.0.5/", PROXY),  # odd notations are never taken for an office address
        # dotless numbers and IPv6 literals are addresses, not plain names: never DIRECT
        ("http://167772161/", PROXY),
        ("http://3405803777/", PROXY),  # 203.0.113.1
        ("http://0xcb007101/", PROXY),
        ("http://[fc00::1]/", PROXY),
        ("http://[2001:db8::1]:8443/", PROXY),
        ("http://127.attacker.example/", PROXY),  # only a 127.x.y.z literal is loopback
        ("http://127.0.0.1.nip.io/", PROXY),
        ("http://10.1.0.7.nip.io/", PROXY),  # a name that merely starts like an office IP
    ],
)
def test_office_client(shipped_pac: str, url: str, expected: str) -> None:
    assert find_proxy(shipped_pac, OFFICE_CLIENT, [url])[url] == expected


def test_restricted_client_reaches_its_own_zone_directly(shipped_pac: str) -> None:
    got = find_proxy(
        shipped_pac,
        "10.9.0.7",
        ["http://10.9.0.5/", "http://10.1.0.7/", "https://www.example.com/", "http://db/"],
    )
    assert got == {
        "http://10.9.0.5/": "DIRECT",
        "http://10.1.0.7/": PROXY,  # restricted → office is not the same zone
        "https://www.example.com/": PROXY,
        "http://db/": "DIRECT",
    }


def test_external_client_goes_through_the_proxy_for_everything(shipped_pac: str) -> None:
    urls = [
        "https://www.example.com/",
        "http://10.1.0.7/",
        "http://10.9.0.5/",
        "http://192.168.1.1/",
        "http://203.0.113.20/",  # the client's own network: external is no zone
    ]
    got = find_proxy(shipped_pac, "203.0.113.5", urls)
    assert got == dict.fromkeys(urls, PROXY)


def test_no_direct_fallback(shipped_pac: str) -> None:
    """A stopped proxy fails closed: the answer is never 'PROXY …; DIRECT'."""
    got = find_proxy(shipped_pac, OFFICE_CLIENT, ["https://www.example.com/"])
    assert got["https://www.example.com/"] == PROXY
    assert "DIRECT" not in PROXY


# -- zones by name, and a zone that may not reach itself --------------------------------------


ZONES_WITH_DOMAINS = """\
version: 1
zones:
  office:
    cidrs: [10.0.0.0/8]
    domains: [firm.example]
  restricted:
    cidrs: [10.9.0.0/24]
    domains: [vault.firm.example]
reach:
  - from: office
    to: external
    ports: [80, 443]
  - from: office
    to: office
  - from: restricted
    to: restricted
"""


def test_names_in_the_clients_zone_go_direct_and_longest_name_wins(tmp_path: Path) -> None:
    policy = PolicyHolder(write_policy(tmp_path, ZONES_WITH_DOMAINS)).policy
    pac = render_pac(policy, "10.0.0.1:8080")
    got = find_proxy(
        pac,
        OFFICE_CLIENT,
        [
            "http://firm.example/",
            "http://wiki.firm.example/",
            "http://vault.firm.example/",  # the restricted zone's name, inside office's
            "http://db.vault.firm.example/",
            "http://notfirm.example/",  # not a subdomain
            "http://firm.example.evil.com/",
        ],
    )
    assert got == {
        "http://firm.example/": "DIRECT",
        "http://wiki.firm.example/": "DIRECT",
        "http://vault.firm.example/": PROXY,
        "http://db.vault.firm.example/": PROXY,
        "http://notfirm.example/": PROXY,
        "http://firm.example.evil.com/": PROXY,
    }


def test_a_zone_that_may_not_reach_itself_sends_everything_through_the_proxy(
    tmp_path: Path,
) -> None:
    zones = ZONES_WITH_DOMAINS.replace("  - from: office\n    to: office\n", "")
    policy = PolicyHolder(write_policy(tmp_path, zones)).policy
    pac = render_pac(policy, "10.0.0.1:8080")
    urls = ["http://10.1.0.7/", "http://wiki.firm.example/"]
    assert find_proxy(pac, OFFICE_CLIENT, urls) == dict.fromkeys(urls, PROXY)
    # plain names still go direct: they never cross the gateway
    assert find_proxy(pac, OFFICE_CLIENT, ["http://intranet/"])["http://intranet/"] == "DIRECT"


def test_the_pac_is_plain_javascript_with_the_proxy_address(shipped_pac: str) -> None:
    assert '"PROXY 10.0.0.1:8080"' in shipped_pac
    assert str(SHIPPED) in shipped_pac.splitlines()[0]
    ipv6 = render_pac(PolicyHolder(SHIPPED).policy, "[2001:db8::1]:8080")
    got = find_proxy(ipv6, OFFICE_CLIENT, ["https://www.example.com/"])
    assert got["https://www.example.com/"] == "PROXY [2001:db8::1]:8080"
