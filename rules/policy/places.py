"""Where a Context goes: zones by longest prefix, categories and parties by name.

Built once per policy. Lookups are dictionary probes — one per prefix
length or per domain label — so their cost does not grow with the lists.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import replace
from zoneinfo import ZoneInfo

from rules.masking import mask_email
from rules.policy.decision import Context, Place
from rules.policy.model import EXTERNAL, IPAddress, IPNetwork, Policy


def plain_ip(ip: IPAddress) -> IPAddress:
    """::ffff:10.9.0.5 is 10.9.0.5: a mapped address must not slip past IPv4 zones or rules."""
    return ip.ipv4_mapped if ip.version == 6 and ip.ipv4_mapped else ip


def network_bits(ip: IPAddress, length: int) -> int:
    """The address cut to its first `length` bits: the key of its /length network."""
    bits = 32 if ip.version == 4 else 128
    return int(ip) & (((1 << length) - 1) << (bits - length)) if length else 0


class PrefixTable:
    """Networks → labels; `longest` for zones, `all` for categories."""

    def __init__(self, entries: Iterable[tuple[IPNetwork, str]]) -> None:
        self._by_len: dict[tuple[int, int], dict[int, set[str]]] = defaultdict(dict)
        for net, label in entries:
            self._by_len[(net.version, net.prefixlen)].setdefault(
                int(net.network_address), set()
            ).add(label)
        # longest prefix first, per IP version
        self._lengths = sorted(self._by_len, key=lambda k: -k[1])

    def _probe(self, ip: IPAddress) -> Iterable[set[str]]:
        ip = plain_ip(ip)
        for version, length in self._lengths:
            if version != ip.version:
                continue
            hit = self._by_len[(version, length)].get(network_bits(ip, length))
            if hit:
                yield hit

    def longest(self, ip: IPAddress) -> str | None:
        return next((min(hit) for hit in self._probe(ip)), None)

    def all(self, ip: IPAddress) -> set[str]:
        out: set[str] = set()
        for hit in self._probe(ip):
            out |= hit
        return out


class DomainTable:
    """Domains (covering their subdomains) → labels."""

    def __init__(self, entries: Iterable[tuple[str, str]]) -> None:
        self._map: dict[str, set[str]] = defaultdict(set)
        for domain, label in entries:
            self._map[domain].add(label)

    def all(self, host: str) -> set[str]:
        out: set[str] = set()
        labels = host.split(".")
        for i in range(len(labels)):
            out |= self._map.get(".".join(labels[i:]), set())
        return out

    def most_specific(self, host: str) -> set[str]:
        labels = host.split(".")
        for i in range(len(labels)):
            hit = self._map.get(".".join(labels[i:]))
            if hit:
                return hit
        return set()


def covered(host: str, domains: Iterable[str]) -> bool:
    return any(host == d or host.endswith("." + d) for d in domains)


def normal_host(host: str | None) -> str:
    """'Mail.QQ.com.:443' → 'mail.qq.com'; '例子.example' → 'xn--fsqu00a.example'."""
    host = (host or "").strip().lower()
    if host.startswith("["):  # [v6]:port
        return host[1:].partition("]")[0]
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit() and ":" not in name:
        host = name
    host = host.rstrip(".")
    try:
        return host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        return host  # not a valid name: matches no category, and says so by not matching


class Places:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.tz = ZoneInfo(policy.timezone)
        self.zone_ips = PrefixTable((n, z.name) for z in policy.zones for n in z.cidrs)
        self.zone_names = DomainTable((d, z.name) for z in policy.zones for d in z.domains)
        self.zone_mail = DomainTable((d, z.name) for z in policy.zones for d in z.mail_domains)
        cats = policy.categories
        self.cat_ips = PrefixTable((n, c.name) for c in cats for n in c.cidrs)
        self.cat_domains = DomainTable((d, c.name) for c in cats for d in c.domains)
        self.cat_hosts = {h: {c.name for c in cats if h in c.hosts} for c in cats for h in c.hosts}
        self.cat_mail = DomainTable((d, c.name) for c in cats for d in c.mail_domains)
        self.party_hosts = DomainTable((d, p.id) for p in policy.parties for d in p.domains)
        self.party_mail = DomainTable((d, p.id) for p in policy.parties for d in p.mail_domains)
        self.party_addresses = {a: p.id for p in policy.parties for a in p.addresses}

    def resolve(self, ctx: Context) -> Place:
        source_zone = self.zone_ips.longest(ctx.source_ip) if ctx.source_ip else None
        if ctx.channel == "smtp" and ctx.recipient:
            return self._mail(ctx, source_zone or EXTERNAL)
        host = normal_host(ctx.host)
        if ctx.dest_ip is not None:  # the address connected to decides the zone, not a name
            zone = self.zone_ips.longest(ctx.dest_ip) or EXTERNAL
            cats = self.cat_ips.all(ctx.dest_ip)
        else:
            zone = min(self.zone_names.most_specific(host), default=EXTERNAL) if host else EXTERNAL
            cats = set()
        if host:
            cats |= self.cat_domains.all(host) | self.cat_hosts.get(host, set())
        party_ids = self.party_hosts.most_specific(host) if host else set()
        shown = host or (str(ctx.dest_ip) if ctx.dest_ip else "")
        return self._with_party(
            ctx, Place(source_zone or EXTERNAL, zone, frozenset(cats), destination=shown), party_ids
        )

    def _mail(self, ctx: Context, source_zone: str) -> Place:
        address = ctx.recipient.strip().lower()
        domain = normal_host(address.rpartition("@")[2])
        zone = min(self.zone_mail.most_specific(domain), default=EXTERNAL)
        cats = self.cat_mail.all(domain)
        if address in self.party_addresses:
            party_ids = {self.party_addresses[address]}
        else:
            party_ids = self.party_mail.most_specific(domain)
        # the recipient is personal data too: verdicts, events and pages show it masked
        place = Place(source_zone, zone, frozenset(cats), destination=mask_email(address))
        return self._with_party(ctx, place, party_ids)

    def _with_party(self, ctx: Context, place: Place, party_ids: set[str]) -> Place:
        if not party_ids:
            return place
        party = self.policy.party(min(party_ids))
        day = ctx.when.astimezone(self.tz).date()
        note = party.standing(day)
        if note:
            return replace(place, party_note=f"{note}: treated as unapproved")
        return replace(place, party=party.id)
