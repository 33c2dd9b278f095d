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

Errors name the file, line, key and fix, like the policy's.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

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
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_endpoint(text: str) -> Endpoint:
    """'127.0.0.1:8080', '[::1]:8080', 'localhost:25' → Endpoint; ValueError says why."""
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
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
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


@dataclass(frozen=True)
class RelayConfig:
    enabled: bool = True
    listen: Endpoint = Endpoint("127.0.0.1", 2525)
    smarthost: Endpoint | None = None  # None: deliver to the embedded local sink


@dataclass(frozen=True)
class Config:
    state_dir: Path = Path("var")
    policy: Path | None = None  # None: $LEAKGUARD_POLICY or the shipped policy
    contact: str = "信息安全部 the security team"
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    relay: RelayConfig = field(default_factory=RelayConfig)
    source: str = ""  # the file it came from, "" for the embedded defaults


def load_config(path: str | os.PathLike) -> Config:
    path = Path(path)
    name = str(path)
    try:
        node = read(path, name)
    except PolicyError as err:
        raise ConfigError(err.issues) from None
    r = Reader(name)
    top = r.mapping(node, "", ("version", "state_dir", "policy", "contact", "proxy", "relay"))
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
    keys = ("enabled", "listen", "mode", "stream_above", "upstream_ca", "hosts")
    m = r.mapping(node, "proxy", keys) or {}
    out = ProxyConfig()
    if "enabled" in m and (flag := r.flag(m["enabled"], "proxy.enabled")) is not None:
        out = replace(out, enabled=flag)
    if "listen" in m and (ep := _endpoint(r, m["listen"], "proxy.listen")):
        out = replace(out, listen=ep)
    if "mode" in m and (mode := r.choice(m["mode"], "proxy.mode", PROXY_MODES)):
        out = replace(out, mode=mode)
    if "stream_above" in m:
        try:
            out = replace(out, stream_above=parse_size(m["stream_above"].value))
        except ValueError as err:
            r.issue(m["stream_above"], "proxy.stream_above", str(err))
    if "upstream_ca" in m and (text := r.text(m["upstream_ca"], "proxy.upstream_ca")):
        out = replace(out, upstream_ca=Path(r.file).parent / text)
    if "hosts" in m:
        out = replace(out, hosts=_hosts(r, m["hosts"]))
    return out


def _relay(r: Reader, node: Node) -> RelayConfig:
    m = r.mapping(node, "relay", ("enabled", "listen", "smarthost")) or {}
    out = RelayConfig()
    if "enabled" in m and (flag := r.flag(m["enabled"], "relay.enabled")) is not None:
        out = replace(out, enabled=flag)
    if "listen" in m and (ep := _endpoint(r, m["listen"], "relay.listen")):
        out = replace(out, listen=ep)
    if "smarthost" in m and (ep := _endpoint(r, m["smarthost"], "relay.smarthost")):
        out = replace(out, smarthost=ep)
    return out


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
        relay = replace(relay, smarthost=parse_endpoint(args.smarthost))
    if getattr(args, "no_relay", False):
        relay = replace(relay, enabled=False)
    return replace(config, proxy=proxy, relay=relay)


__all__ = [
    "Config",
    "ConfigError",
    "Endpoint",
    "Issue",
    "load_config",
    "parse_endpoint",
    "parse_host_entry",
    "parse_size",
    "with_flags",
]
