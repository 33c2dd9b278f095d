"""Delivery straight to the recipients' mail servers (no smarthost): MX lookup, then SMTP.

    resolver = MXResolver(dns_servers=(("127.0.0.1", 5353),))   () → /etc/resolv.conf
    route = MXRoute(resolver, MXSettings(port=25, local_hostname="relay.firm.example"))
    results = await route.send(sender, recipients, data, options)   like Connection.send

RFC 5321 §5.1: a domain's MX records are tried by preference (equal
preferences in random order); a domain without MX records is its own mail
server (its A/AAAA records); an address literal (user@[192.0.2.1]) is
delivered to that address. RFC 7505: a single MX record "0 ." is a null MX,
the domain accepts no mail — a permanent failure (5.1.10), so a DSN.

Recipients are grouped by domain, one transaction per domain. For each
domain the addresses of its mail servers are tried in order: a recipient
accepted (2xx) or refused (5xx) is settled; one deferred (4xx, no
connection, a TLS failure) is tried at the next address, and stays deferred
when none is left — the Deliverer retries with its backoff. DNS trouble
(timeout, SERVFAIL) defers; a domain that does not exist (NXDOMAIN) or has
neither MX nor address records fails permanently (5.1.2).

STARTTLS is opportunistic and the certificate unchecked (RFC 7435: MX
certificates rarely name the MX host; encryption without authentication
beats plain text, and refusing would only send it in plain text elsewhere).
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver

from mailrelay.delivery import TEMPORARY, Connection, Upstream

NULL_MX = (556, "5.1.10 Recipient address has null MX (RFC 7505): the domain accepts no mail")
NO_DOMAIN = (550, "5.1.2 Recipient domain {domain} does not exist (DNS: no such name)")
NO_MAIL_SERVER = (550, "5.1.2 Recipient domain {domain} has no mail server (no MX, A or AAAA)")
BAD_DOMAIN = (553, "5.1.3 Recipient address {rcpt} has no valid domain")
DNS_TROUBLE = "4.4.3 DNS lookup for {domain} failed, will retry: {why}"
NO_ADDRESS = "4.4.4 The mail servers of {domain} have no usable address"
MAX_ADDRESSES = 5  # mail server addresses tried per domain and attempt
MAX_CONNECTIONS = 16  # kept open per worker, least recently used closed first


class PermanentDNS(Exception):
    """The domain cannot receive mail; args[0] is the (code, text) reply to record."""


class TemporaryDNS(Exception):
    """The lookup failed for now; str() says why."""


@dataclass(frozen=True)
class MXSettings:
    port: int = 25  # where the MX hosts are reached (another port only for tests)
    local_hostname: str = "localhost"
    timeout: float = 60.0  # per SMTP command
    idle_close: float = 30.0


@dataclass(frozen=True)
class Target:
    host: str  # the MX host name (or the domain itself, or the literal)
    address: str


class MXResolver:
    """MX, A and AAAA lookups with dnspython's cache (answers kept for their TTL)."""

    def __init__(
        self, dns_servers: Iterable[tuple[str, int]] = (), *, timeout: float = 10.0
    ) -> None:
        self.dns_servers = tuple(dns_servers)
        self.timeout = timeout
        self._resolver: dns.asyncresolver.Resolver | None = None

    def _get(self) -> dns.asyncresolver.Resolver:
        if self._resolver is None:
            if self.dns_servers:
                resolver = dns.asyncresolver.Resolver(configure=False)
                resolver.nameservers = [
                    dns.nameserver.Do53Nameserver(host, port) for host, port in self.dns_servers
                ]
            else:
                try:
                    resolver = dns.asyncresolver.Resolver()  # /etc/resolv.conf
                except dns.resolver.NoResolverConfiguration as err:
                    raise TemporaryDNS(f"no DNS configuration: {err}") from None
            resolver.lifetime = self.timeout
            resolver.cache = dns.resolver.Cache()
            self._resolver = resolver
        return self._resolver

    async def targets(self, domain: str) -> list[Target]:
        """The addresses to try for `domain`, best first; PermanentDNS / TemporaryDNS."""
        literal = _literal(domain)
        if literal is not None:
            return [Target(domain, literal)]
        hosts = await self.mail_hosts(domain)
        out: list[Target] = []
        for host in hosts:
            try:
                out += [Target(host, a) for a in await self.addresses(host)]
            except PermanentDNS:
                continue  # one MX host without addresses: the others may do
            if len(out) >= MAX_ADDRESSES:
                break
        if not out:
            if hosts == [domain]:  # no MX and no address: nothing can receive mail there
                raise PermanentDNS(_reply(NO_MAIL_SERVER, domain=domain))
            raise TemporaryDNS(NO_ADDRESS.format(domain=domain))
        return out[:MAX_ADDRESSES]

    async def mail_hosts(self, domain: str) -> list[str]:
        """MX hosts by preference (ties shuffled), or [domain] when it has no MX records."""
        try:
            answer = await self._get().resolve(domain, "MX")
        except dns.resolver.NXDOMAIN:
            raise PermanentDNS(_reply(NO_DOMAIN, domain=domain)) from None
        except dns.resolver.NoAnswer:
            return [domain]  # RFC 5321 §5.1: the implicit MX
        except (dns.exception.DNSException, OSError, ValueError) as err:
            raise TemporaryDNS(DNS_TROUBLE.format(domain=domain, why=_why(err))) from None
        records = list(answer)
        if len(records) == 1 and records[0].exchange == dns.name.root:
            raise PermanentDNS(NULL_MX)
        records = [r for r in records if r.exchange != dns.name.root]
        random.shuffle(records)  # stable sort below: equal preferences stay shuffled
        records.sort(key=lambda r: r.preference)
        return list(dict.fromkeys(r.exchange.to_text(omit_final_dot=True) for r in records))

    async def addresses(self, host: str) -> list[str]:
        """A then AAAA records of `host`; PermanentDNS when it has neither."""
        found: list[str] = []
        trouble = ""
        for rdtype in ("A", "AAAA"):
            try:
                answer = await self._get().resolve(host, rdtype)
            except dns.resolver.NXDOMAIN:
                raise PermanentDNS(_reply(NO_DOMAIN, domain=host)) from None
            except dns.resolver.NoAnswer:
                continue
            except (dns.exception.DNSException, OSError, ValueError) as err:
                trouble = _why(err)
                continue
            found += [r.address for r in answer]
        if not found and trouble:
            raise TemporaryDNS(DNS_TROUBLE.format(domain=host, why=trouble))
        if not found:
            raise PermanentDNS(_reply(NO_MAIL_SERVER, domain=host))
        return found


class MXRoute:
    """One worker's way to the recipients' mail servers (its connections kept for reuse)."""

    def __init__(self, resolver: MXResolver, settings: MXSettings) -> None:
        self.resolver = resolver
        self.settings = settings
        self._connections: dict[tuple[str, int], Connection] = {}
        self._context = _opportunistic_context()

    async def send(
        self, sender: str, recipients: list[str], data: bytes, options: list[str]
    ) -> dict[str, tuple[int, str]]:
        """Like Connection.send: each recipient's (code, text); never raises for SMTP/DNS."""
        by_domain: dict[str, list[str]] = {}
        results: dict[str, tuple[int, str]] = {}
        for rcpt in recipients:
            domain = _domain(rcpt)
            if domain:
                by_domain.setdefault(domain, []).append(rcpt)
            else:
                results[rcpt] = _reply(BAD_DOMAIN, rcpt=rcpt)
        for domain, rcpts in by_domain.items():
            results.update(await self._send_domain(domain, sender, rcpts, data, options))
        return {r: results[r] for r in recipients}

    async def _send_domain(
        self, domain: str, sender: str, rcpts: list[str], data: bytes, options: list[str]
    ) -> dict[str, tuple[int, str]]:
        try:
            targets = await self.resolver.targets(domain)
        except PermanentDNS as err:
            return dict.fromkeys(rcpts, err.args[0])
        except TemporaryDNS as err:
            return dict.fromkeys(rcpts, (TEMPORARY, str(err)))
        settled: dict[str, tuple[int, str]] = {}
        last: dict[str, tuple[int, str]] = {}
        pending = list(rcpts)
        for target in targets:
            got = await self._connection(target).send(sender, pending, data, options)
            for rcpt, (code, text) in got.items():
                if 200 <= code < 300 or 500 <= code < 600:
                    settled[rcpt] = (code, text)
                else:
                    last[rcpt] = (code, f"{text} (at {target.host} [{target.address}])")
            pending = [r for r in pending if r not in settled]
            if not pending:
                break
        return {r: settled.get(r) or last[r] for r in rcpts}

    def _connection(self, target: Target) -> Connection:
        key = (target.address, self.settings.port)
        conn = self._connections.pop(key, None)
        if conn is None:
            up = Upstream(
                host=target.address,
                port=self.settings.port,
                tls="opportunistic",
                verify=False,
                local_hostname=self.settings.local_hostname,
                timeout=self.settings.timeout,
                idle_close=self.settings.idle_close,
            )
            conn = Connection(up, context=self._context)
        self._connections[key] = conn  # most recently used last
        while len(self._connections) > MAX_CONNECTIONS:
            oldest = next(iter(self._connections))
            self._connections.pop(oldest).close()
        self._close_idle()
        return conn

    def _close_idle(self) -> None:
        now = time.monotonic()
        for key, conn in list(self._connections.items()):
            if conn.smtp is not None and now - conn.last_used > self.settings.idle_close:
                conn.close()
                del self._connections[key]

    def close(self) -> None:
        for conn in self._connections.values():
            conn.close()
        self._connections.clear()

    async def quit(self) -> None:
        await asyncio.gather(*(c.quit() for c in self._connections.values()))
        self._connections.clear()


def _opportunistic_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _domain(rcpt: str) -> str:
    """The domain to route on, lower case, IDNA (A-labels); "" when there is none."""
    local, at, domain = rcpt.rpartition("@")
    domain = domain.strip().rstrip(".").lower()
    if not at or not local or not domain:
        return ""
    if domain.startswith("["):
        return domain if _literal(domain) is not None else ""
    try:
        return dns.name.from_text(domain).to_text(omit_final_dot=True)
    except (dns.exception.DNSException, UnicodeError, ValueError):
        return ""


def _literal(domain: str) -> str | None:
    """'[192.0.2.1]' or '[IPv6:2001:db8::1]' → the address; None for a domain name."""
    if not (domain.startswith("[") and domain.endswith("]")):
        return None
    text = domain[1:-1]
    if text.lower().startswith("ipv6:"):
        text = text[5:]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _reply(template: tuple[int, str], **values: str) -> tuple[int, str]:
    return template[0], template[1].format(**values)


def _why(err: BaseException) -> str:
    text = str(err) or type(err).__name__
    return " ".join(text.split())[:200]
