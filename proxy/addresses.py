"""IP literals in every notation a client or resolver accepts → the plain address.

A host such as `2130706433`, `0177.1`, `0x7f.0.0.1` or `[::ffff:7f00:1]` is
127.0.0.1 to the client's URL parser and to libc, so it must be to the
policy too, before any decision. The reference is the WHATWG URL Standard,
"IPv4 parser" and "ends in a number checker" (https://url.spec.whatwg.org/#
concept-ipv4-parser), which is the superset of what BSD/glibc `inet_aton`
accepts (1–4 parts; each part decimal, octal with a leading 0, or hex with
0x; the last part fills the remaining bytes) plus one trailing dot:

    host_ip("2130706433")        → 127.0.0.1
    host_ip("0x0a.9.0.5")        → 10.9.0.5
    host_ip("10.1.2")            → 10.1.0.2
    host_ip("[::ffff:a09:5]")    → 10.9.0.5   (IPv4-mapped IPv6 is the IPv4 address)
    host_ip("mail.qq.com")       → None       (a name: resolve it)
    host_ip("1.2.3.999999999")   → ValueError (ends in a number but is no address:
                                               a browser refuses it; so do we)

Pure: no mitmproxy, no I/O.
"""

from __future__ import annotations

import functools
import ipaddress
import unicodedata
from urllib.parse import unquote

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_DIGITS = {10: "0123456789", 8: "01234567", 16: "0123456789abcdef"}


@functools.lru_cache(maxsize=4096)  # pure, and asked for every request
def host_ip(text: str) -> IPAddress | None:
    """The address an IP-literal host names, or None for a host name.

    Raises ValueError for a host no client would connect to (a bad IPv6
    literal, a numeric-looking host that is out of range): callers block it.
    """
    host = _prepare(text)
    if not host:
        raise ValueError("empty host")
    if host.startswith("[") or ":" in host:
        return _ipv6(host)
    if not _ends_in_number(host):
        return None
    return ipaddress.IPv4Address(_ipv4_int(host))


def plain(ip: IPAddress) -> IPAddress:
    """::ffff:10.9.0.5 is 10.9.0.5: one address, one zone."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


@functools.lru_cache(maxsize=4096)  # pure, and asked for every request
def normal_host(text: str) -> str:
    """A host for comparison: lower case, no trailing dot, IP literals canonical.

    Raises ValueError like host_ip for hosts that are no valid destination.
    """
    ip = host_ip(text)
    if ip is not None:
        return str(ip)
    host = _prepare(text).rstrip(".")
    if not host.isascii():
        host = host.encode("idna").decode("ascii")  # what the client sends in SNI/DNS
    return host


def _prepare(text: str) -> str:
    host = text.strip()
    if "%" in host and not host.startswith("["):
        host = unquote(host)  # URL hosts are percent-decoded before parsing
    if not host.isascii():
        # UTS 46 maps full-width digits and dots (１２７．０．０．１) before the IPv4 parser runs
        host = unicodedata.normalize("NFKC", host).replace("\u3002", ".")
    return host.lower()


def _ipv6(host: str) -> IPAddress:
    if host.startswith("["):
        if not host.endswith("]"):
            raise ValueError(f"unbalanced brackets in {host!r}")
        host = host[1:-1]
    if "%" in host:
        raise ValueError("IPv6 zone identifiers are not valid in URL hosts")
    return plain(ipaddress.IPv6Address(host))


def _parts(host: str) -> list[str]:
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()  # one trailing dot: "127.0.0.1." is 127.0.0.1
    return parts


def _ends_in_number(host: str) -> bool:
    """WHATWG: a host whose last label is a number is parsed as IPv4, or refused."""
    last = _parts(host)[-1]
    if last and all(c in _DIGITS[10] for c in last):
        return True
    return _number(last) is not None


def _number(part: str) -> int | None:
    """One IPv4 part: decimal, 0-prefixed octal, 0x-prefixed hex (0x alone is 0)."""
    if not part:
        return None
    radix = 10
    if part.startswith("0x"):
        radix, part = 16, part[2:]
    elif len(part) > 1 and part.startswith("0"):
        radix, part = 8, part[1:]
    if not part:
        return 0
    if not all(c in _DIGITS[radix] for c in part):
        return None
    return int(part, radix)


def _ipv4_int(host: str) -> int:
    parts = _parts(host)
    if len(parts) > 4:
        raise ValueError(f"{host!r} ends in a number but has more than four parts")
    numbers = []
    for part in parts:
        n = _number(part)
        if n is None:
            raise ValueError(f"{host!r} ends in a number but is not an IPv4 address")
        numbers.append(n)
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(numbers)):
        raise ValueError(f"{host!r} is out of range for an IPv4 address")
    value = last
    for i, n in enumerate(head):
        value += n << (8 * (3 - i))
    return value


__all__ = ["IPAddress", "host_ip", "normal_host", "plain"]
