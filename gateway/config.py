"""The gateway's configuration file: typed, validated at load, flags override it.

    version: 1
    state_dir: var                 # SQLite, the CA, the spool, the installation key
    policy: rules/default          # the policy directory (default: the shipped policy)
    contact: 信息安全部 security@firm.example   # shown on block pages
    proxy:
      enabled: true
      listen: 127.0.0.1:8080
      mode: regular                # or transparent (on the gateway host, with the firewall)
      stream_above: 16MiB          # bodies larger than this are scanned as a stream, not held
      upstream_ca: /etc/ssl/certs/ca-certificates.crt   # CAs trusted for origin servers
      hosts:                       # names answered before DNS (split horizon, test rigs)
        intranet.firm.example: 10.1.0.7
    relay:
      enabled: true
      listen: 127.0.0.1:2525
      smarthost: 127.0.0.1:2526    # where accepted mail is delivered (default: the local sink)
    firewall:                      # `leakguard firewall render|apply|check` (gateway.firewall)
      interfaces: {office: [eth1], restricted: [eth2], external: [eth0]}
      resolvers: [10.1.0.53]       # the only DNS servers zones may ask
      relay_clients: [10.1.0.25]   # may connect to the relay directly (the firm's mail server)
    audit:
      store: sqlite                # <state>/audit.db (default), or redis (several gateways)
      redis_url: redis://127.0.0.1:6379/0
    alerts:                        # always <state>/alerts.jsonl (or `file`); these besides
      syslog: {address: "udp://127.0.0.1:514", app_name: leakguard, facility: auth}
      webhook: {url: "https://soc.firm.example/hooks/leakguard", timeout: 10s, retries: 3}
      mail: {to: [security@firm.example], from: leakguard@firm.example}   # through the relay
      dedup_window: 5m             # a burst of one alert within this is one alert with a count

Errors name the file, line, key and fix, like the policy's.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from proxy.addresses import plain
from rules.policy.errors import Issue, PolicyError
from rules.policy.model import IPAddress
from rules.policy.reader import Reader
from rules.policy.yamlsrc import Node, read

VERSION = 1
PROXY_MODES = ("regular", "transparent")
DEFAULT_STREAM_ABOVE = 16 * 2**20
_UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 2**10, "kib": 2**10, "m": 2**20, "mb": 2**20,
          "mib": 2**20, "g": 2**30, "gb": 2**30, "gib": 2**30}  # fmt: skip


class ConfigError(PolicyError):
    """The configuration file cannot be used; `issues` says where and why."""


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        if not self.host:
            return f"*:{self.port}"
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_endpoint(text: str) -> Endpoint:
    """'127.0.0.1:8080', '[::1]:8080', 'localhost:25', '*:8080' (all) → Endpoint."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, sep, port = text.rpartition(":")
        if not sep or ":" in host:
            raise ValueError(
                f"{text!r} has no port; write HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080"
            )
    if host == "*":  # every address, IPv4 and IPv6 (a transparent gateway's listener)
        host = ""
    elif not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r} is not HOST:PORT (port 0-65535)")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r} is not HOST:PORT (port 0-65535)")
    if ":" in host:
        ipaddress.IPv6Address(host)  # raises ValueError for nonsense
    return Endpoint(host, int(port))


@dataclass(frozen=True)
class ProxyConfig:
    enabled: bool = True
    listen: Endpoint = Endpoint("127.0.0.1", 8080)
    mode: str = "regular"
    stream_above: int = DEFAULT_STREAM_ABOVE
    upstream_ca: Path | None = None  # None: the system's trust store (mitmproxy's default)
    hosts: Mapping[str, IPAddress] = field(default_factory=dict)
    users_file: Path | None = None  # proxy authentication (407), the relay's scrypt users file


@dataclass(frozen=True)
class RelayConfig:
    enabled: bool = True
    listen: Endpoint = Endpoint("127.0.0.1", 2525)
    smarthost: Endpoint | None = None  # None: deliver to the embedded local sink
    hostname: str = ""  # EHLO/Received/DSN name; "" → this host's FQDN
    trusted_networks: tuple[str, ...] = ("127.0.0.0/8", "::1/128")  # may relay without AUTH
    users_file: Path | None = None  # AUTH PLAIN/LOGIN after STARTTLS (`python -m mailrelay.auth`)
    tls_cert: Path | None = None  # default: a certificate issued by the gateway's CA
    tls_key: Path | None = None
    smarthost_tls: str = "opportunistic"  # opportunistic | required | none
    smarthost_ca: Path | None = None
    smarthost_user: str | None = None
    smarthost_password_file: Path | None = None  # the password stays out of this file
    max_message_size: int = 25 * 2**20
    max_recipients: int = 100
    max_queue_age: float = 5 * 86400.0  # seconds; then a failure DSN to the sender
    delivery: str = ""  # smarthost | mx | sink; "" → the smarthost if given, else the sink
    dns_servers: tuple[Endpoint, ...] = ()  # delivery: mx; () → the system's /etc/resolv.conf
    mx_port: int = 25  # delivery: mx; another port only for tests


AUDIT_STORES = ("sqlite", "redis")


@dataclass(frozen=True)
class AuditConfig:
    store: str = "sqlite"  # sqlite: <state>/audit.db; redis: shared by several gateways
    redis_url: str = ""  # redis://[:password@]host:port/db (store: redis)
    redis_prefix: str = "leakguard:"  # key prefix, so installations can share one server


@dataclass(frozen=True)
class SyslogAlerts:
    address: str  # udp://HOST:PORT or tcp://HOST:PORT (RFC 5424; TCP octet-counted)
    app_name: str = "leakguard"
    facility: str = "auth"


@dataclass(frozen=True)
class WebhookAlerts:
    url: str  # JSON POST of each alert
    timeout: float = 10.0
    retries: int = 3


@dataclass(frozen=True)
class MailAlerts:
    to: tuple[str, ...]  # the security team, through the gateway's own relay
    sender: str = ""  # `from`; "" → leakguard@<this host>


@dataclass(frozen=True)
class AlertsConfig:
    file: Path | None = None  # JSON lines; None → <state>/alerts.jsonl
    syslog: SyslogAlerts | None = None
    webhook: WebhookAlerts | None = None
    mail: MailAlerts | None = None
    dedup_window: float = 300.0  # seconds


@dataclass(frozen=True)
class FirewallConfig:
    """The gateway host's packet filter: which interfaces face which policy zone."""

    interfaces: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # zone → names
    resolvers: tuple[IPAddress, ...] = ()
    relay_clients: tuple[IPAddress, ...] = ()
    line: int = 0  # where `firewall:` is written, for issues found against the policy
    zone_lines: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Config:
    state_dir: Path = Path("var")
    policy: Path | None = None  # None: $LEAKGUARD_POLICY or the shipped policy
    contact: str = "信息安全部 the security team"
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    relay: RelayConfig = field(default_factory=RelayConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    firewall: FirewallConfig | None = None  # None: no `firewall:` section
    source: str = ""  # the file it came from, "" for the embedded defaults


def load_config(path: str | os.PathLike) -> Config:
    path = Path(path)
    name = str(path)
    try:
        node = read(path, name)
    except PolicyError as err:
        raise ConfigError(err.issues) from None
    r = Reader(name)
    top = r.mapping(
        node,
        "",
        (
            "version",
            "state_dir",
            "policy",
            "contact",
            "proxy",
            "relay",
            "audit",
            "firewall",
            "alerts",
        ),
    )
    if top is None:
        raise ConfigError(r.issues)
    if "version" not in top:
        r.issue(node, "version", "missing", f"start the file with `version: {VERSION}`")
    elif top["version"].value != VERSION:
        r.issue(
            top["version"],
            "version",
            f"version {top['version'].value!r} is not supported",
            f"this leakguard reads `version: {VERSION}`",
        )
    base = path.parent
    config = Config(source=name)
    if "state_dir" in top and (text := r.text(top["state_dir"], "state_dir")):
        config = replace(config, state_dir=base / text)
    if "policy" in top and (text := r.text(top["policy"], "policy")):
        config = replace(config, policy=base / text)
    if "contact" in top and (text := r.text(top["contact"], "contact")):
        config = replace(config, contact=text)
    if "proxy" in top:
        config = replace(config, proxy=_proxy(r, top["proxy"]))
    if "relay" in top:
        config = replace(config, relay=_relay(r, top["relay"]))
    if "firewall" in top:
        config = replace(config, firewall=_firewall(r, top["firewall"]))
    if "audit" in top:
        config = replace(config, audit=_audit(r, top["audit"]))
    if "alerts" in top:
        config = replace(config, alerts=_alerts(r, top["alerts"]))
    errors = [i for i in r.issues if not i.warning]
    if errors:
        raise ConfigError(r.issues)
    return config


def _endpoint(r: Reader, node: Node, key: str) -> Endpoint | None:
    text = r.text(node, key)
    if text is None:
        return None
    try:
        return parse_endpoint(text)
    except ValueError as err:
        r.issue(node, key, str(err))
        return None


def parse_size(text: str | int) -> int:
    """'16MiB', '512k', 1048576 → bytes; ValueError says why."""
    if isinstance(text, int) and not isinstance(text, bool):
        size = text
    else:
        match = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", str(text))
        if not match or match[2].lower() not in _UNITS:
            raise ValueError(f"{text!r} is not a size; write e.g. 16MiB, 512KiB or 1048576")
        size = int(match[1]) * _UNITS[match[2].lower()]
    if size < 64 * 2**10:
        raise ValueError(f"{text!r} is too small; at least 64KiB")
    return size


def parse_host_entry(text: str) -> tuple[str, IPAddress]:
    """'name=10.1.0.7' (the --resolve flag) → (name, address)."""
    name, sep, address = text.partition("=")
    if not sep or not name.strip():
        raise ValueError(f"{text!r}: write NAME=ADDRESS, e.g. intranet.firm.example=10.1.0.7")
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        raise ValueError(
            f"{text!r}: {address.strip()!r} is not an IP address; write NAME=ADDRESS, "
            "e.g. intranet.firm.example=10.1.0.7"
        ) from None
    return name.strip().lower().rstrip("."), plain(ip)


def _parsed[T](r: Reader, node: Node, key: str, parse: Callable[[Any], T]) -> T | None:
    """`parse(node.value)`, its ValueError recorded as an issue on the node's line."""
    try:
        return parse(node.value)
    except ValueError as err:
        r.issue(node, key, str(err))
        return None


def _hosts(r: Reader, node: Node) -> dict[str, IPAddress]:
    out: dict[str, IPAddress] = {}
    if node.value is None:
        return out
    if node.kind != "mapping":
        r.issue(node, "proxy.hosts", "expected a mapping of host name: address")
        return out
    for name, value in node.value.items():
        key = f"proxy.hosts.{name}"
        host = r.domain(Node(name, value.line, value.file), key)
        try:
            address = plain(ipaddress.ip_address(str(value.value)))
        except ValueError:
            r.issue(value, key, f"{value.value!r} is not an IP address", "write e.g. 10.1.0.7")
            continue
        if host:
            out[host] = address
    return out


def _proxy(r: Reader, node: Node) -> ProxyConfig:
    keys = ("enabled", "listen", "mode", "stream_above", "upstream_ca", "hosts", "users_file")
    m = r.mapping(node, "proxy", keys) or {}
    out = ProxyConfig()
    if "enabled" in m and (flag := r.flag(m["enabled"], "proxy.enabled")) is not None:
        out = replace(out, enabled=flag)
    if "listen" in m and (ep := _endpoint(r, m["listen"], "proxy.listen")):
        out = replace(out, listen=ep)
    if "mode" in m and (mode := r.choice(m["mode"], "proxy.mode", PROXY_MODES)):
        out = replace(out, mode=mode)
    if "stream_above" in m and (
        size := _parsed(r, m["stream_above"], "proxy.stream_above", parse_size)
    ):
        out = replace(out, stream_above=size)
    if "upstream_ca" in m and (text := r.text(m["upstream_ca"], "proxy.upstream_ca")):
        out = replace(out, upstream_ca=Path(r.file).parent / text)
    if "users_file" in m and (text := r.text(m["users_file"], "proxy.users_file")):
        out = replace(out, users_file=Path(r.file).parent / text)
    if "hosts" in m:
        out = replace(out, hosts=_hosts(r, m["hosts"]))
    return out


SMARTHOST_TLS = ("opportunistic", "required", "none")
_DURATION = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str | int) -> float:
    """'5d', '12h', '30m', 90 → seconds; ValueError says why."""
    if isinstance(text, int) and not isinstance(text, bool):
        seconds = float(text)
    else:
        match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", str(text))
        if not match:
            raise ValueError(f"{text!r} is not a duration; write e.g. 5d, 12h, 30m or 90s")
        seconds = float(int(match[1]) * _DURATION[match[2] or "s"])
    if seconds <= 0:
        raise ValueError(f"{text!r}: a duration must be positive")
    return seconds


def _relay(r: Reader, node: Node) -> RelayConfig:
    keys = (
        "enabled", "listen", "smarthost", "hostname", "trusted_networks", "users_file",
        "tls_cert", "tls_key", "smarthost_tls", "smarthost_ca", "smarthost_user",
        "smarthost_password_file", "max_message_size", "max_recipients", "max_queue_age",
        "delivery", "dns_servers", "mx_port",
    )  # fmt: skip
    m = r.mapping(node, "relay", keys) or {}
    out = RelayConfig()
    if "enabled" in m and (flag := r.flag(m["enabled"], "relay.enabled")) is not None:
        out = replace(out, enabled=flag)
    if "listen" in m and (ep := _endpoint(r, m["listen"], "relay.listen")):
        out = replace(out, listen=ep)
    if "smarthost" in m and (ep := _endpoint(r, m["smarthost"], "relay.smarthost")):
        out = replace(out, smarthost=ep)
    base = Path(r.file).parent
    for key in ("hostname", "smarthost_user"):
        if key in m and (text := r.text(m[key], f"relay.{key}")):
            out = replace(out, **{key: text})
    for key in ("users_file", "tls_cert", "tls_key", "smarthost_ca", "smarthost_password_file"):
        if key in m and (text := r.text(m[key], f"relay.{key}")):
            out = replace(out, **{key: base / text})
    if "trusted_networks" in m:
        nets = r.list_of(m["trusted_networks"], "relay.trusted_networks", r.network)
        out = replace(out, trusted_networks=tuple(str(n) for n in nets if n is not None))
    if "smarthost_tls" in m and (
        mode := r.choice(m["smarthost_tls"], "relay.smarthost_tls", SMARTHOST_TLS)
    ):
        out = replace(out, smarthost_tls=mode)
    if "max_message_size" in m and (
        size := _parsed(r, m["max_message_size"], "relay.max_message_size", parse_size)
    ):
        out = replace(out, max_message_size=size)
    if "max_recipients" in m and (
        n := r.integer(m["max_recipients"], "relay.max_recipients", 1, 100_000)
    ):
        out = replace(out, max_recipients=n)
    if "max_queue_age" in m and (
        age := _parsed(r, m["max_queue_age"], "relay.max_queue_age", parse_duration)
    ):
        out = replace(out, max_queue_age=age)
    if (out.tls_cert is None) != (out.tls_key is None):
        r.issue(node, "relay", "tls_cert and tls_key go together", "give both, or neither")
    return _relay_delivery(r, m, out)


RELAY_DELIVERY = ("smarthost", "mx", "sink")


def _relay_delivery(r: Reader, m: dict[str, Node], out: RelayConfig) -> RelayConfig:
    """relay.delivery and the MX settings, checked against relay.smarthost."""
    if "delivery" in m and (how := r.choice(m["delivery"], "relay.delivery", RELAY_DELIVERY)):
        out = replace(out, delivery=how)
        if how == "smarthost" and out.smarthost is None:
            r.issue(
                m["delivery"], "relay.delivery", "no smarthost given", "add smarthost: HOST:PORT"
            )
        if how != "smarthost" and out.smarthost is not None:
            r.issue(
                m["delivery"],
                "relay.delivery",
                f"delivery: {how} does not use the smarthost given",
                "remove `smarthost`, or write delivery: smarthost",
            )
    if "dns_servers" in m:
        read = lambda item, key: _dns_server(r, item, key)  # noqa: E731
        servers = r.list_of(m["dns_servers"], "relay.dns_servers", read)
        out = replace(out, dns_servers=servers)
    if "mx_port" in m and (port := r.integer(m["mx_port"], "relay.mx_port", 1, 65535)):
        out = replace(out, mx_port=port)
    for key in ("dns_servers", "mx_port"):
        if key in m and out.delivery != "mx":
            r.issue(m[key], f"relay.{key}", "only used with delivery: mx", "add delivery: mx")
    return out


def _dns_server(r: Reader, node: Node, key: str) -> Endpoint | None:
    """'10.1.0.53' (port 53), '127.0.0.1:5353', '[::1]:5353': an address, not a name."""
    text = r.text(node, key)
    if text is None:
        return None
    try:
        return Endpoint(str(ipaddress.ip_address(text.strip())), 53)
    except ValueError:
        pass
    try:
        endpoint = parse_endpoint(text)
        ipaddress.ip_address(endpoint.host)
        return endpoint
    except ValueError:
        r.issue(node, key, f"{text!r} is not IP or IP:PORT", "e.g. 10.1.0.53 or 127.0.0.1:5353")
        return None


def _audit(r: Reader, node: Node) -> AuditConfig:
    m = r.mapping(node, "audit", ("store", "redis_url", "redis_prefix")) or {}
    out = AuditConfig()
    if "store" in m and (store := r.choice(m["store"], "audit.store", AUDIT_STORES)):
        out = replace(out, store=store)
    if "redis_url" in m and (url := r.text(m["redis_url"], "audit.redis_url")):
        if not re.match(r"(rediss?|unix)://", url):
            r.issue(
                m["redis_url"],
                "audit.redis_url",
                f"{url!r} is not a Redis URL",
                "write e.g. redis://127.0.0.1:6379/0 or unix:///run/redis.sock",
            )
        out = replace(out, redis_url=url)
    if "redis_prefix" in m and (prefix := r.text(m["redis_prefix"], "audit.redis_prefix")):
        out = replace(out, redis_prefix=prefix)
    if out.store == "redis" and not out.redis_url:
        r.issue(
            node,
            "audit.redis_url",
            "missing (store: redis needs it)",
            "write e.g. redis_url: redis://127.0.0.1:6379/0",
        )
    return out


def _alerts(r: Reader, node: Node) -> AlertsConfig:
    from audit.syslog import FACILITIES, parse_address
    from audit.webhook import check_url

    m = r.mapping(node, "alerts", ("file", "syslog", "webhook", "mail", "dedup_window")) or {}
    out = AlertsConfig()
    if "file" in m and (text := r.text(m["file"], "alerts.file")):
        out = replace(out, file=Path(r.file).parent / text)
    if "dedup_window" in m and (
        window := _parsed(r, m["dedup_window"], "alerts.dedup_window", parse_duration)
    ):
        out = replace(out, dedup_window=window)
    if "syslog" in m:
        s = r.mapping(m["syslog"], "alerts.syslog", ("address", "app_name", "facility")) or {}
        address = s.get("address")
        if address is None:
            r.issue(
                m["syslog"], "alerts.syslog.address", "missing", 'write e.g. "udp://127.0.0.1:514"'
            )
        elif (text := r.text(address, "alerts.syslog.address")) and _parsed(
            r, address, "alerts.syslog.address", parse_address
        ):
            syslog = SyslogAlerts(text)
            if "app_name" in s and (app := r.text(s["app_name"], "alerts.syslog.app_name")):
                if not re.fullmatch(r"[!-~]{1,48}", app):
                    r.issue(
                        s["app_name"],
                        "alerts.syslog.app_name",
                        f"{app!r} is not 1-48 printable ASCII characters without spaces",
                    )
                syslog = replace(syslog, app_name=app)
            if "facility" in s and (
                facility := r.choice(s["facility"], "alerts.syslog.facility", FACILITIES)
            ):
                syslog = replace(syslog, facility=facility)
            out = replace(out, syslog=syslog)
    if "webhook" in m:
        w = r.mapping(m["webhook"], "alerts.webhook", ("url", "timeout", "retries")) or {}
        if "url" not in w:
            r.issue(
                m["webhook"],
                "alerts.webhook.url",
                "missing",
                "write e.g. url: https://soc.firm.example/hooks/leakguard",
            )
        elif (text := r.text(w["url"], "alerts.webhook.url")) and _parsed(
            r, w["url"], "alerts.webhook.url", check_url
        ):
            hook = WebhookAlerts(text)
            if "timeout" in w and (
                timeout := _parsed(r, w["timeout"], "alerts.webhook.timeout", parse_duration)
            ):
                hook = replace(hook, timeout=timeout)
            if (
                "retries" in w
                and (n := r.integer(w["retries"], "alerts.webhook.retries", 0, 20)) is not None
            ):
                hook = replace(hook, retries=n)
            out = replace(out, webhook=hook)
    if "mail" in m:
        mm = r.mapping(m["mail"], "alerts.mail", ("to", "from")) or {}
        to = r.list_of(mm["to"], "alerts.mail.to", r.mail_address) if "to" in mm else ()
        if not to:
            r.issue(
                m["mail"],
                "alerts.mail.to",
                "no recipient",
                "write e.g. to: [security@firm.example]",
            )
        sender = ""
        if "from" in mm and (text := r.mail_address(mm["from"], "alerts.mail.from")):
            sender = text
        if to:
            out = replace(out, mail=MailAlerts(to, sender))
    return out


IFNAME = re.compile(r"^[A-Za-z0-9_.:@+-]{1,15}$")  # Linux: at most 15 bytes, no / or space


def _interface(r: Reader, node: Node, key: str) -> str | None:
    if isinstance(node.value, str) and IFNAME.match(node.value):
        return node.value
    r.issue(node, key, f"{node.value!r} is not an interface name", "write e.g. eth1 (`ip link`)")
    return None


def _address(r: Reader, node: Node, key: str) -> IPAddress | None:
    try:
        return plain(ipaddress.ip_address(str(node.value)))
    except ValueError:
        r.issue(node, key, f"{node.value!r} is not an IP address", "write e.g. 10.1.0.53")
        return None


def _firewall(r: Reader, node: Node) -> FirewallConfig:
    m = r.mapping(node, "firewall", ("interfaces", "resolvers", "relay_clients"), ("interfaces",))
    out = FirewallConfig(line=node.line)
    if not m:
        return out
    interfaces: dict[str, tuple[str, ...]] = {}
    lines: dict[str, int] = {}
    owner: dict[str, str] = {}  # interface → the zone that claimed it first
    if "interfaces" in m:
        for zone, value in r.entries(m["interfaces"], "firewall.interfaces").items():
            key = f"firewall.interfaces.{zone}"
            names = r.list_of(value, key, lambda n, k: _interface(r, n, k))
            for name in names:
                if name in owner:
                    r.issue(value, key, f"{name} is already in zone {owner[name]}",
                            "an interface faces one zone")  # fmt: skip
                owner.setdefault(name, zone)
            if not names and value.value != []:
                continue  # the item issues say why
            if not names:
                r.issue(value, key, "empty list", "list its interfaces, or leave the zone out")
            interfaces[zone], lines[zone] = names, value.line
        if "external" not in interfaces:
            r.issue(m["interfaces"], "firewall.interfaces", "no `external` zone",
                    "name the uplink: `external: [eth0]`")  # fmt: skip
    for key in ("resolvers", "relay_clients"):
        if key in m:
            found = r.list_of(m[key], f"firewall.{key}", lambda n, k: _address(r, n, k))
            out = replace(out, **{key: found})
    return replace(out, interfaces=interfaces, zone_lines=lines)


def with_flags(config: Config, args) -> Config:
    """Flags win over the file, so scripts and tests need not write one."""
    proxy, relay = config.proxy, config.relay
    if getattr(args, "state_dir", None):
        config = replace(config, state_dir=Path(args.state_dir))
    if getattr(args, "policy", None):
        config = replace(config, policy=Path(args.policy))
    if getattr(args, "proxy_listen", None):
        proxy = replace(proxy, listen=parse_endpoint(args.proxy_listen))
    if getattr(args, "proxy_mode", None):
        proxy = replace(proxy, mode=args.proxy_mode)
    if getattr(args, "upstream_ca", None):
        proxy = replace(proxy, upstream_ca=Path(args.upstream_ca))
    if getattr(args, "resolve", None):
        proxy = replace(proxy, hosts={**proxy.hosts, **dict(map(parse_host_entry, args.resolve))})
    if getattr(args, "no_proxy", False):
        proxy = replace(proxy, enabled=False)
    if getattr(args, "relay_listen", None):
        relay = replace(relay, listen=parse_endpoint(args.relay_listen))
    if getattr(args, "smarthost", None):
        relay = replace(relay, smarthost=parse_endpoint(args.smarthost), delivery="smarthost")
    if getattr(args, "users_file", None):
        relay = replace(relay, users_file=Path(args.users_file))
    if getattr(args, "no_relay", False):
        relay = replace(relay, enabled=False)
    return replace(config, proxy=proxy, relay=relay)


__all__ = [
    "AuditConfig",
    "Config",
    "ConfigError",
    "Endpoint",
    "FirewallConfig",
    "Issue",
    "load_config",
    "parse_duration",
    "parse_endpoint",
    "parse_host_entry",
    "parse_size",
    "with_flags",
]
