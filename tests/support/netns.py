"""A gateway topology in network namespaces, for transparent-mode and isolation tests.

    reason = unavailable()              # '' if this machine can run it, else why not
    topo = Topology.build(proxy_port=8080)
    topo.run(topo.inside, "curl", ...)  # a command in a namespace (ip netns exec)
    topo.call(topo.outside, fn, *args)  # a Python callable in a thread inside a namespace
    topo.counter("quic")                # packets an nft rule in gw counted
    topo.teardown()

```
inside (office)            gw (gateway, proxy, nftables)               outside (servers)
10.200.1.2, .3   ─ veth ─  10.200.1.1 | 203.0.113.1, 198.51.100.1 ─ veth ─ 203.0.113.10, .20
fd00:200:1::2              fd00:200:1::1 | 2001:db8:113::1                  198.51.100.20
                                         |                                  2001:db8:113::10, ::20
                           10.9.0.1 ─ veth ─ restricted (10.9.0.5, the restricted zone)
```
"External" servers use documentation ranges (203.0.113.0/24, 198.51.100.0/24,
2001:db8::/32) so that no private-range office zone claims them; the inside
client is office (10.0.0.0/8, fc00::/7) and the restricted host is in
10.9.0.0/24. Names are `lg<pid>-in/gw/out/rs`, so parallel runs don't clash;
`sweep()` removes namespaces left by runs whose process is gone.

nftables in gw (table inet `leakguard_test`), what a gateway host would do:
- prerouting: office TCP 80/443 → REDIRECT to the proxy port, except to the
  restricted zone (office → restricted 22/443 is forwarded uninspected);
- input: the proxy port only for redirected connections
  (`ct status & dnat == 0` → reject): a direct connection would make the proxy
  connect to itself. `UNGUARDED` (10.200.1.3) is exempt, to test that the proxy
  refuses such a loop by itself;
- forward: policy drop; established allowed; office → restricted 22/443;
  restricted → outside, outside → restricted and office UDP/443 (QUIC) dropped
  by rules with named counters, so a test can see which rule dropped what.

Each namespace gets /etc/netns/NAME/resolv.conf pointing at 127.0.0.1 (where
nothing listens): a name no test pinned fails at once instead of waiting for
a resolver the machine may not reach (`ip netns exec` bind-mounts it).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

NETNS_RUN = Path("/run/netns")
NETNS_ETC = Path("/etc/netns")
NAME = re.compile(r"^lg[a-z]*(\d+)-(in|gw|out|rs)$")  # lg<pid>-…, lgo<pid>-… (e2e)
TABLE = "leakguard_test"

# addresses
INSIDE, INSIDE6 = "10.200.1.2", "fd00:200:1::2"
UNGUARDED = "10.200.1.3"  # an inside address the proxy-port guard lets through
GW_INSIDE, GW_INSIDE6 = "10.200.1.1", "fd00:200:1::1"
GW_OUTSIDE, GW_OUTSIDE_B, GW_OUTSIDE6 = "203.0.113.1", "198.51.100.1", "2001:db8:113::1"
SERVER_A, SERVER_B = "203.0.113.10", "198.51.100.20"  # two external web servers
SERVER_C = "203.0.113.20"
SERVER_A6, SERVER_B6 = "2001:db8:113::10", "2001:db8:113::20"
GW_RESTRICTED, RESTRICTED = "10.9.0.1", "10.9.0.5"
RESTRICTED_NET = "10.9.0.0/24"

# interfaces (names are per namespace, so they can be fixed)
IF_IN, IF_GW_IN = "lg-in", "lg-gi"
IF_OUT, IF_GW_OUT = "lg-out", "lg-go"
IF_RS, IF_GW_RS = "lg-rs", "lg-gr"

COUNTERS = ("redirected", "guard", "restricted_out", "outside_in", "quic", "dropped")


class Unavailable(Exception):
    """Namespaces cannot be built here; the message says why (a skip reason)."""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=20)


def exec_prefix(ns: str) -> list[str]:
    """A command prefix that runs a program inside `ns` (it execs: the PID is the program's)."""
    return ["ip", "netns", "exec", ns]


def unavailable() -> str:
    """'' if this machine can build the topology; else a skip reason."""
    if os.name != "posix" or not hasattr(os, "setns"):
        return "network namespaces need Linux and Python >= 3.12 (os.setns)"
    if os.geteuid() != 0:
        return "network namespace tests need root (CI runs them as root)"
    for tool, package in (("ip", "iproute2"), ("nft", "nftables")):
        if shutil.which(tool) is None:
            return f"`{tool}` not found: install the Debian package {package} (.ci/run does)"
    probe = f"lg{os.getpid()}-probe"
    try:
        made = ip("netns", "add", probe, check=False)
        if made.returncode != 0:
            return f"`ip netns add` failed: {made.stderr.strip() or made.returncode}"
        nft = subprocess.run(
            [*exec_prefix(probe), "nft", "list", "ruleset"], capture_output=True, text=True
        )
        if nft.returncode != 0:
            return f"nftables does not work in a namespace: {nft.stderr.strip()}"
    finally:
        ip("netns", "del", probe, check=False)
    return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_namespace_processes(ns: str, grace: float = 2.0) -> None:
    """SIGTERM what runs in `ns`, SIGKILL what is left after `grace`."""

    def pids() -> list[int]:
        out = ip("netns", "pids", ns, check=False).stdout.split()
        return [int(p) for p in out if p.isdigit()]

    found = pids()
    for pid in found:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while found and time.monotonic() < deadline:
        time.sleep(0.05)
        found = pids()
    for pid in found:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def delete_namespace(ns: str) -> None:
    _kill_namespace_processes(ns)
    ip("netns", "del", ns, check=False)
    shutil.rmtree(NETNS_ETC / ns, ignore_errors=True)


def sweep() -> list[str]:
    """Delete `lg<pid>-*` namespaces whose creating process is gone; returns their names."""
    listed = ip("netns", "list", check=False).stdout.splitlines()
    names = {line.split()[0] for line in listed if line.strip()}
    if NETNS_RUN.is_dir():
        names |= {p.name for p in NETNS_RUN.iterdir()}
    swept = []
    for name in sorted(names):
        m = NAME.match(name)
        if m and int(m[1]) != os.getpid() and not _alive(int(m[1])):
            delete_namespace(name)
            swept.append(name)
    return swept


def in_netns[T](ns: str, fn: Callable[..., T], *args, **kwargs) -> T:
    """Run `fn` in a new thread that first enters `ns` (os.setns); return what it returns.

    Sockets keep the namespace they were created in, so a server made this way
    keeps serving there from any thread."""
    box: dict[str, object] = {}

    def run() -> None:
        try:
            fd = os.open(NETNS_RUN / ns, os.O_RDONLY)
            try:
                os.setns(fd, os.CLONE_NEWNET)
            finally:
                os.close(fd)
            box["value"] = fn(*args, **kwargs)
        except BaseException as err:  # handed to the caller
            box["error"] = err

    t = threading.Thread(target=run, name=f"netns:{ns}", daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


@dataclass
class Topology:
    inside: str
    gw: str
    outside: str
    restricted: str
    proxy_port: int
    build_seconds: float = 0.0
    _procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def namespaces(self) -> tuple[str, ...]:
        return (self.inside, self.gw, self.outside, self.restricted)

    # -- building ----------------------------------------------------------------------

    @classmethod
    def build(
        cls, proxy_port: int = 8080, tag: str | None = None, ruleset: bool = True
    ) -> Topology:
        reason = unavailable()
        if reason:
            raise Unavailable(reason)
        sweep()
        tag = tag or f"lg{os.getpid()}"
        topo = cls(f"{tag}-in", f"{tag}-gw", f"{tag}-out", f"{tag}-rs", proxy_port)
        started = time.monotonic()
        try:
            topo._build(ruleset)
        except Exception:
            topo.teardown()
            raise
        topo.build_seconds = time.monotonic() - started
        return topo

    def _build(self, ruleset: bool = True) -> None:
        for ns in self.namespaces:
            if (NETNS_RUN / ns).exists():
                delete_namespace(ns)
            ip("netns", "add", ns)
            ip("-n", ns, "link", "set", "lo", "up")
            etc = NETNS_ETC / ns
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        pairs = (
            (IF_IN, self.inside, IF_GW_IN),
            (IF_OUT, self.outside, IF_GW_OUT),
            (IF_RS, self.restricted, IF_GW_RS),
        )
        for name, ns, peer in pairs:
            veth = ("type", "veth", "peer", "name", peer, "netns", self.gw)
            ip("link", "add", name, "netns", ns, *veth)
        addrs = {
            (self.inside, IF_IN): [f"{INSIDE}/24", f"{UNGUARDED}/24", f"{INSIDE6}/64"],
            (self.gw, IF_GW_IN): [f"{GW_INSIDE}/24", f"{GW_INSIDE6}/64"],
            (self.gw, IF_GW_OUT): [f"{GW_OUTSIDE}/24", f"{GW_OUTSIDE_B}/24", f"{GW_OUTSIDE6}/64"],
            (self.outside, IF_OUT): [
                f"{SERVER_A}/24",
                f"{SERVER_C}/24",
                f"{SERVER_B}/24",
                f"{SERVER_A6}/64",
                f"{SERVER_B6}/64",
            ],
            (self.gw, IF_GW_RS): [f"{GW_RESTRICTED}/24"],
            (self.restricted, IF_RS): [f"{RESTRICTED}/24"],
        }
        for (ns, dev), cidrs in addrs.items():
            for cidr in cidrs:
                extra = ["nodad"] if ":" in cidr else []  # usable at once, no DAD wait
                ip("-n", ns, "addr", "add", cidr, "dev", dev, *extra)
            ip("-n", ns, "link", "set", dev, "up")
        routes = (
            (self.inside, GW_INSIDE, GW_INSIDE6),
            (self.outside, GW_OUTSIDE, GW_OUTSIDE6),
            (self.restricted, GW_RESTRICTED, None),
        )
        for ns, via4, via6 in routes:
            ip("-n", ns, "route", "add", "default", "via", via4)
            if via6:
                ip("-n", ns, "-6", "route", "add", "default", "via", via6)
        self.run(
            self.gw,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
            "net.ipv6.conf.all.forwarding=1",
        )
        if ruleset:  # else the test loads its own (tests/e2e: `leakguard firewall apply`)
            self.run(self.gw, "nft", "-f", "-", input=self.ruleset())

    def ruleset(self) -> str:
        port = self.proxy_port
        return f"""
table inet {TABLE} {{
    counter redirected {{ }}
    counter guard {{ }}
    counter restricted_out {{ }}
    counter outside_in {{ }}
    counter quic {{ }}
    counter dropped {{ }}

    chain prerouting {{
        type nat hook prerouting priority dstnat; policy accept;
        iifname "{IF_GW_IN}" ip daddr {RESTRICTED_NET} return
        iifname "{IF_GW_IN}" tcp dport {{ 80, 443 }} counter name "redirected" redirect to :{port}
    }}

    chain input {{
        type filter hook input priority filter; policy accept;
        ip saddr {UNGUARDED} tcp dport {port} accept
        tcp dport {port} ct status & dnat == 0 counter name "guard" reject with tcp reset
    }}

    chain forward {{
        type filter hook forward priority filter; policy drop;
        ct state established,related accept
        iifname "{IF_GW_IN}" oifname "{IF_GW_RS}" tcp dport {{ 22, 443 }} accept
        iifname "{IF_GW_RS}" oifname "{IF_GW_OUT}" counter name "restricted_out" drop
        iifname "{IF_GW_OUT}" oifname "{IF_GW_RS}" counter name "outside_in" drop
        iifname "{IF_GW_IN}" udp dport 443 counter name "quic" drop
        counter name "dropped"
    }}
}}
"""

    # -- using -------------------------------------------------------------------------

    def run(
        self, ns: str, *cmd: str, input: str | None = None, timeout: float = 20, check=True
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*exec_prefix(ns), *cmd],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )

    def popen(self, ns: str, *cmd: str, **kwargs) -> subprocess.Popen:
        """A long-running program in `ns`, stopped by teardown() at the latest."""
        proc = subprocess.Popen([*exec_prefix(ns), *cmd], **kwargs)
        self._procs.append(proc)
        return proc

    def call[T](self, ns: str, fn: Callable[..., T], *args, **kwargs) -> T:
        return in_netns(ns, fn, *args, **kwargs)

    def counter(self, name: str) -> int:
        """Packets counted by the named nft counter in gw."""
        out = self.run(self.gw, "nft", "-j", "list", "counter", "inet", TABLE, name).stdout
        for item in json.loads(out)["nftables"]:
            if "counter" in item:
                return int(item["counter"]["packets"])
        raise KeyError(name)

    def counters(self) -> dict[str, int]:
        return {name: self.counter(name) for name in COUNTERS}

    def listening(self, ns: str, port: int) -> bool:
        """Whether something listens on TCP `port` in `ns` (asked of ss, never by connecting:
        a connection to the proxy port that was not redirected would loop)."""
        out = self.run(ns, "ss", "-Hltn", f"sport = :{port}", check=False).stdout
        return bool(out.strip())

    # -- tearing down ------------------------------------------------------------------

    def teardown(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self._procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self._procs.clear()
        for ns in self.namespaces:
            delete_namespace(ns)


def address_family(host: str) -> int:
    import socket

    return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET


__all__: Sequence[str] = (
    "Topology",
    "Unavailable",
    "exec_prefix",
    "in_netns",
    "sweep",
    "unavailable",
)
