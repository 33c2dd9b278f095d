"""The gateway host's nftables ruleset, derived from the policy and the config: pure.

    render(policy, config) -> str      the whole file `nft -f` loads (FirewallError if not)

One `table inet leakguard` (IPv4 and IPv6). Zones are recognised by
interface *and* address: a packet belongs to zone Z when it arrives on one
of Z's interfaces (config `firewall.interfaces`) from one of Z's networks
(the policy's `cidrs`, minus the longer prefixes other zones carve out —
the proxy's longest-prefix rule). `external` is every address no zone
claims. Zone-to-zone allowances come only from `policy.reach`, so the
filter and the proxy's isolation read the same list:

- `inspect: true` (the default) across zones: TCP ports an inspecting service
  serves (REDIRECTS: 80/443 → proxy, 25/587 → relay, if the entry's ports and
  channels allow them) are redirected to it in nat prerouting. Other ports of
  such an entry are forwarded directly only between internal zones: nothing
  leaves for `external` uninspected.
- `inspect: false`, or a zone reaching itself across two of its interfaces
  (as the PAC file sends it DIRECT): forwarded as the entry's ports allow.

Everything else is dropped by a named reason (DROP_REASONS): each reason is a
chain that counts, logs `leakguard drop <reason>: ` (rate-limited) and drops.
The input chain refuses connections to the proxy and relay ports that were
not redirected (`ct status & dnat == 0`): the transparent proxy would
connect to itself. `relay_clients` (the firm's mail server, which uses the
relay as its smarthost) may connect to the relay directly.

The file starts by declaring and deleting the table, so `nft -f` replaces it
in one transaction: the old ruleset stays if the new one fails to load.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.config import Config, ConfigError, Endpoint, FirewallConfig
from rules.policy.errors import Issue, did_you_mean
from rules.policy.model import EXTERNAL, IPAddress, IPNetwork, Policy, Reach

TABLE = "leakguard"
FAMILIES = (("ip", 4), ("ip6", 6))
LOG_RATE = "limit rate 10/second burst 20 packets"  # a flood must not fill the journal


@dataclass(frozen=True)
class Redirect:
    port: int
    service: str  # "proxy" or "relay"
    channels: frozenset[str]  # a reach entry naming channels must name one of these


REDIRECTS = (
    Redirect(80, "proxy", frozenset({"http", "websocket"})),
    Redirect(443, "proxy", frozenset({"https", "websocket"})),
    Redirect(25, "relay", frozenset({"smtp"})),
    Redirect(587, "relay", frozenset({"smtp"})),
)

# reason → what the log line means (also the chain's comment)
DROP_REASONS = {
    "invalid": "packets conntrack cannot place in any connection",
    "quic": "UDP 443 (QUIC): browsers fall back to TCP, which the proxy inspects",
    "dns": "DNS to a server that is not a configured resolver",
    "direct": "a connection to the proxy or relay port that was not redirected (would loop)",
    "external-to-internal": "the external network reaching an internal zone",
    "not-in-policy": "no reach entry of the policy allows it",
}  # plus "<zone>-to-external" for every internal zone the policy keeps off the internet


class FirewallError(ConfigError):
    """The ruleset cannot be made from this policy and config; `issues` says why."""


# -- addresses --------------------------------------------------------------------------


def zone_networks(policy: Policy) -> dict[str, list[IPNetwork]]:
    """Each zone's networks minus what longer prefixes of other zones carve out of them."""
    claims = [(net, z.name) for z in policy.zones for net in z.cidrs]
    out: dict[str, list[IPNetwork]] = {}
    for zone in policy.zones:
        kept: list[IPNetwork] = []
        for net in zone.cidrs:
            pieces = [net]
            for other, owner in claims:
                if owner == zone.name or other.version != net.version:
                    continue
                if other.prefixlen > net.prefixlen and other.subnet_of(net):  # type: ignore[arg-type]
                    pieces = [p for piece in pieces for p in _without(piece, other)]
            kept += pieces
        out[zone.name] = _collapse(kept)
    return out


def _without(net: IPNetwork, hole: IPNetwork) -> list[IPNetwork]:
    if not hole.subnet_of(net):  # type: ignore[arg-type]
        return [net] if not net.subnet_of(hole) else []  # type: ignore[arg-type]
    return list(net.address_exclude(hole))  # type: ignore[arg-type]


def _collapse(nets: Iterable[IPNetwork]) -> list[IPNetwork]:
    out: list[IPNetwork] = []
    for version in (4, 6):
        out += ipaddress.collapse_addresses(n for n in nets if n.version == version)  # type: ignore[arg-type]
    return out


def zone_of(address: IPAddress, networks: dict[str, list[IPNetwork]]) -> str:
    """The zone whose (carved) networks hold `address`, else external."""
    for zone, nets in networks.items():
        if any(address in n for n in nets):
            return zone
    return EXTERNAL


# -- validation -------------------------------------------------------------------------


def _issues(policy: Policy, config: Config) -> list[Issue]:
    fw = config.firewall
    file = config.source or "config"
    if fw is None:
        return [
            Issue(file, 0, "firewall", "no `firewall:` section",
                  "add one naming each zone's interfaces (deploy/leakguard.example.yaml)")
        ]  # fmt: skip
    issues = []
    zones = {z.name for z in policy.zones} | {EXTERNAL}
    for zone in fw.interfaces:
        if zone not in zones:
            line = fw.zone_lines.get(zone, fw.line)
            fix = did_you_mean(zone, zones)
            issues.append(
                Issue(file, line, f"firewall.interfaces.{zone}",
                      f"zone {zone!r} is not in the policy ({policy.source or 'policy'})", fix)
            )  # fmt: skip
    if config.proxy.enabled and config.proxy.mode != "transparent":
        issues.append(
            Issue(file, fw.line, "proxy.mode",
                  "the firewall redirects web traffic to the proxy, which is in regular mode",
                  "set `proxy.mode: transparent`")
        )  # fmt: skip
    for service, enabled, listen in (
        ("proxy", config.proxy.enabled, config.proxy.listen),
        ("relay", config.relay.enabled, config.relay.listen),
    ):
        if enabled and _loopback(listen):
            issues.append(
                Issue(file, fw.line, f"{service}.listen",
                      f"the {service} listens on {listen}, where redirected connections "
                      "never arrive (they come to the office interface's address)",
                      f"listen on every address: `listen: '*:{listen.port}'`")
            )  # fmt: skip
    return issues


def _loopback(listen: Endpoint) -> bool:
    if listen.host in ("", "0.0.0.0", "::"):
        return False
    if listen.host == "localhost":
        return True
    try:
        return ipaddress.ip_address(listen.host).is_loopback
    except ValueError:
        return False


# -- rendering --------------------------------------------------------------------------


def render(policy: Policy, config: Config) -> str:
    issues = _issues(policy, config)
    if issues:
        raise FirewallError(issues)
    assert config.firewall is not None
    return _Builder(policy, config, config.firewall).text()


def ident(text: str) -> str:
    """An nft identifier from a zone or reason name (letters, digits, underscores)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


def _set(items: Iterable[object]) -> str:
    items = list(items)
    return str(items[0]) if len(items) == 1 else "{ " + ", ".join(map(str, items)) + " }"


def _ifnames(names: Iterable[str]) -> str:
    return _set(f'"{n}"' for n in names)


class _Builder:
    def __init__(self, policy: Policy, config: Config, fw: FirewallConfig) -> None:
        self.policy, self.config, self.fw = policy, config, fw
        self.networks = zone_networks(policy)
        self.interfaces = dict(fw.interfaces)
        self.internal = [z.name for z in policy.zones if z.name in self.interfaces]
        self.ports = {
            "proxy": config.proxy.listen.port if config.proxy.enabled else None,
            "relay": config.relay.listen.port if config.relay.enabled else None,
        }
        self.reasons = dict(DROP_REASONS)
        for zone in self.internal:
            if not any(r.source == zone and r.destination == EXTERNAL for r in policy.reach):
                self.reasons[f"{zone}-to-external"] = f"zone {zone} reaching the external network"

    # -- matches ----------------------------------------------------------------------

    def _has(self, zone: str, version: int) -> bool:
        if zone == EXTERNAL:
            return True
        return any(n.version == version for n in self.networks.get(zone, ()))

    def _addr(self, fam: str, version: int, way: str, zone: str) -> str:
        if zone == EXTERNAL:
            return f"{fam} {way}addr != @internal_v{version}"
        return f"{fam} {way}addr @zone_{ident(zone)}_v{version}"

    def _source(self, fam: str, version: int, zone: str) -> str:
        return f"iifname {_ifnames(self.interfaces[zone])} {self._addr(fam, version, 's', zone)}"

    def _dest(self, fam: str, version: int, zone: str, oif: bool = True) -> str:
        where = f"oifname {_ifnames(self.interfaces[zone])} " if oif else ""
        return where + self._addr(fam, version, "d", zone)

    # -- pieces -----------------------------------------------------------------------

    def text(self) -> str:
        body = [*self._sets(), *self._drop_chains(), *self._prerouting(), *self._input()]
        body += self._forward()
        head = [
            "#!/usr/sbin/nft -f",
            "# Generated by `leakguard firewall render`; do not edit (apply replaces it).",
            f"# policy: {self.policy.source or '(embedded)'}",
            f"# config: {self.config.source or '(defaults)'}",
            f"# zones: {_zone_summary(self.interfaces)}",
            "",
            "# declare, then delete: one transaction replaces the table, or nothing changes",
            f"table inet {TABLE} {{}}",
            f"delete table inet {TABLE}",
            "",
            f"table inet {TABLE} {{",
        ]
        return "\n".join(head + ["\t" + line if line else "" for line in body] + ["}", ""])

    def _sets(self) -> list[str]:
        out = []
        internal = [n for z in self.policy.zones for n in self.networks[z.name]]
        named: list[tuple[str, list]] = [
            *((f"zone_{ident(z)}", self.networks[z]) for z in self.internal),
            ("internal", _collapse(internal)),
            ("relay_clients", list(self.fw.relay_clients)),
        ]
        for name, items in named:
            for _, version in FAMILIES:
                elements = [str(i) for i in items if i.version == version]
                interval = name.startswith(("zone_", "internal"))
                out += [f"set {name}_v{version} {{", f"\ttype ipv{version}_addr"]
                if interval:
                    out.append("\tflags interval")
                if elements:
                    out.append(f"\telements = {{ {', '.join(elements)} }}")
                out += ["}", ""]
        counters = ["redirect_proxy", "redirect_relay", *(f"drop_{ident(r)}" for r in self.reasons)]
        return [*out, *(f"counter {name} {{}}" for name in counters), ""]

    def _drop_chains(self) -> list[str]:
        out = []
        for reason, meaning in self.reasons.items():
            name = f"drop_{ident(reason)}"
            out += [
                f"chain {name} {{",
                f'\tcomment "{meaning}"',
                f'\tcounter name "{name}"',
                f'\t{LOG_RATE} log prefix "leakguard drop {reason}: "',
            ]
            if reason == "direct":  # refused at once, so the client does not wait
                out.append("\tmeta l4proto tcp reject with tcp reset")
            out += ["\tdrop", "}", ""]
        return out

    def _reach(self) -> list[Reach]:
        """The policy's entries between zones this host has interfaces for."""
        return [
            r
            for r in self.policy.reach
            if r.source in self.interfaces and r.destination in self.interfaces
        ]

    def _redirected(self, r: Reach) -> list[Redirect]:
        if not r.inspect or r.source == r.destination:
            return []
        return [
            d
            for d in REDIRECTS
            if (not r.ports or d.port in r.ports)
            and (not r.channels or r.channels & d.channels)
            and self.ports[d.service] is not None
        ]

    def _prerouting(self) -> list[str]:
        out = [
            "chain prerouting {",
            "\ttype nat hook prerouting priority dstnat; policy accept;",
            "\tfib daddr type local return  # to this host itself: not redirected",
        ]
        for r in self._reach():
            redirects = self._redirected(r)
            if r.inspect and r.source != r.destination:
                missing = sorted(p for p in r.ports if p not in {d.port for d in redirects})
                if missing:
                    out.append(
                        f"\t# reach {r.source}->{r.destination} ports {_set(missing)}: no "
                        "inspecting service for them here; "
                        + ("not forwarded" if r.destination == EXTERNAL else "forwarded directly")
                    )
            for service in ("proxy", "relay"):
                ports = [d.port for d in redirects if d.service == service]
                if not ports:
                    continue
                for fam, version in FAMILIES:
                    if not (self._has(r.source, version) and self._has(r.destination, version)):
                        continue
                    match = (
                        f"{self._source(fam, version, r.source)} "
                        f"{self._dest(fam, version, r.destination, oif=False)}"
                    )
                    out.append(
                        f"\t{match} tcp dport {_set(ports)} "
                        f'counter name "redirect_{service}" redirect to :{self.ports[service]}'
                    )
        return [*out, "}", ""]

    def _input(self) -> list[str]:
        ports = [p for p in self.ports.values() if p is not None]
        out = ["chain input {", "\ttype filter hook input priority filter; policy accept;"]
        if self.ports["relay"] is not None and self.fw.relay_clients:
            relay = self.ports["relay"]
            for _, version in FAMILIES:
                fam = "ip" if version == 4 else "ip6"
                if any(a.version == version for a in self.fw.relay_clients):
                    out.append(f"\t{fam} saddr @relay_clients_v{version} tcp dport {relay} accept")
        if ports:
            out.append(
                f"\ttcp dport {_set(sorted(set(ports)))} ct status & dnat == 0 goto drop_direct"
            )
        return [*out, "}", ""]

    def _forward(self) -> list[str]:
        out = [
            "chain forward {",
            "\ttype filter hook forward priority filter; policy drop;",
            "\tct state established,related accept",
            "\tct state invalid goto drop_invalid",
            "\tudp dport 443 goto drop_quic",
        ]
        out += self._dns()
        out.append("\tmeta l4proto { tcp, udp } th dport 53 goto drop_dns")
        for r in self._reach():
            out += self._allow(r)
        uplink = _ifnames(self.interfaces[EXTERNAL])
        for zone in self.internal:
            if f"{zone}-to-external" in self.reasons:
                own = _ifnames(self.interfaces[zone])
                out.append(f"\tiifname {own} oifname {uplink} goto drop_{ident(zone)}_to_external")
        out.append(f"\tiifname {uplink} goto drop_external_to_internal")
        out.append("\tgoto drop_not_in_policy")
        return [*out, "}"]

    def _dns(self) -> list[str]:
        """Zones may ask a resolver when the policy lets them reach the resolver's zone."""
        out = []
        for fam, version in FAMILIES:
            resolvers = [a for a in self.fw.resolvers if a.version == version]
            zones = sorted({zone_of(a, self.networks) for a in resolvers})
            for target in zones:
                if target not in self.interfaces:
                    continue
                addresses = [a for a in resolvers if zone_of(a, self.networks) == target]
                for source in self.interfaces:
                    if source == EXTERNAL or not self._has(source, version):
                        continue
                    if not any(
                        r.source == source and r.destination == target for r in self.policy.reach
                    ):
                        continue
                    out.append(
                        f"\t{self._source(fam, version, source)} "
                        f"oifname {_ifnames(self.interfaces[target])} "
                        f"{fam} daddr {_set(addresses)} "
                        "meta l4proto { tcp, udp } th dport 53 accept"
                    )
        return out

    def _allow(self, r: Reach) -> list[str]:
        """Forwarded directly: uninspected entries, a zone to itself, and an inspected entry's
        other ports between internal zones."""
        if r.inspect and r.source != r.destination and r.destination == EXTERNAL:
            return []  # only the redirects: nothing leaves uninspected
        # (redirected ports never reach forward: they go to input, so listing them is moot)
        ports = sorted(r.ports)
        proto = f" meta l4proto {{ tcp, udp }} th dport {_set(ports)}" if ports else ""
        out = []
        for fam, version in FAMILIES:
            if not (self._has(r.source, version) and self._has(r.destination, version)):
                continue
            out.append(
                f"\t{self._source(fam, version, r.source)} "
                f"{self._dest(fam, version, r.destination)}{proto} accept"
                f"  # reach {r.source}->{r.destination}"
            )
        return out


def _zone_summary(interfaces: dict[str, tuple[str, ...]]) -> str:
    return "; ".join(f"{z}: {', '.join(names)}" for z, names in interfaces.items())
