"""IP literals in odd notations parse to the address a browser or libc would connect to."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.addresses import host_ip, normal_host

V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address

CASES = {
    # name: (host, address)
    "dotted": ("127.0.0.1", V4("127.0.0.1")),
    "decimal": ("2130706433", V4("127.0.0.1")),
    "octal": ("0177.0.0.1", V4("127.0.0.1")),
    "octal whole": ("017700000001", V4("127.0.0.1")),
    "hex part": ("0x7f.0.0.1", V4("127.0.0.1")),
    "hex whole": ("0x7f000001", V4("127.0.0.1")),
    "hex upper": ("0X7F.0X1", V4("127.0.0.1")),
    "short two": ("127.1", V4("127.0.0.1")),
    "short three": ("10.1.2", V4("10.1.0.2")),
    "restricted hex": ("0x0a.9.0.5", V4("10.9.0.5")),
    "mixed": ("0x0a.011.0.5", V4("10.9.0.5")),
    "mixed short": ("012.0x90005", V4("10.9.0.5")),
    "leading zeros": ("010.0.0.01", V4("8.0.0.1")),
    "bare 0x": ("0x.0x.0x.0x", V4("0.0.0.0")),
    "zero": ("0", V4("0.0.0.0")),
    "trailing dot": ("127.0.0.1.", V4("127.0.0.1")),
    "trailing dot short": ("2130706433.", V4("127.0.0.1")),
    "percent-encoded": ("%31%32%37.0.0.1", V4("127.0.0.1")),
    "full-width": ("１２７．０．０．１", V4("127.0.0.1")),
    "ideographic dot": ("10。9。0。5", V4("10.9.0.5")),
    "ipv6": ("::1", V6("::1")),
    "ipv6 bracketed": ("[::1]", V6("::1")),
    "ipv6 upper": ("[FD00::1]", V6("fd00::1")),
    "mapped dotted": ("::ffff:10.9.0.5", V4("10.9.0.5")),
    "mapped hex": ("::ffff:a09:5", V4("10.9.0.5")),
    "mapped bracketed": ("[::ffff:7f00:1]", V4("127.0.0.1")),
    "mapped long form": ("0:0:0:0:0:ffff:0a09:0005", V4("10.9.0.5")),
}

# WHATWG: only a host whose last label is a number is an IPv4 candidate ("1.2.3.4.." ends in
# an empty label: a name, which no resolver finds)
NAMES = ["localhost", "mail.qq.com", "a.example.", "1e3", "0x7g.example", "1.2.3.4..", "x.1a"]

INVALID = {
    "five parts": "1.2.3.4.5",
    "part too large": "256.0.0.1",
    "last part too large": "1.2.3.256",
    "short too large": "1.16777216",
    "decimal too large": "4294967296",
    "bad octal": "08.0.0.1",
    "ends in number": "example.1",
    "ends in hex": "example.0x10",
    "empty part": "1..2.3",
    "unbalanced bracket": "[::1",
    "zone id": "[fe80::1%25eth0]",
    "bad ipv6": "[1::2::3]",
    "empty": "",
}


@pytest.mark.parametrize("host,expected", CASES.values(), ids=CASES.keys())
def test_literals(host: str, expected: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    assert host_ip(host) == expected


@pytest.mark.parametrize("host", NAMES)
def test_names_are_not_addresses(host: str) -> None:
    assert host_ip(host) is None


@pytest.mark.parametrize("host", INVALID.values(), ids=INVALID.keys())
def test_invalid_hosts_are_refused(host: str) -> None:
    with pytest.raises(ValueError):
        host_ip(host)


@pytest.mark.parametrize(
    "host",
    ["2130706433", "0177.0.0.1", "0x7f.0.0.1", "0x7f000001", "127.1", "10.1.2", "0x0a.9.0.5"],
)
def test_agrees_with_inet_aton(host: str) -> None:
    """libc is what a client's resolver uses for these forms; we must see the same address."""
    assert host_ip(host) == V4(socket.inet_aton(host))


def test_normal_host() -> None:
    assert normal_host("Mail.QQ.com.") == "mail.qq.com"
    assert normal_host("0x0a.9.0.5") == "10.9.0.5"
    assert normal_host("[::ffff:a09:5]") == "10.9.0.5"
    assert normal_host("[FD00::1]") == "fd00::1"
    assert normal_host("例子.example") == "xn--fsqu00a.example"


# -- property: any address rendered in any accepted notation parses back ---------------------


def _render_part(value: int, radix: str, zeros: int) -> str:
    if radix == "oct":
        return "0" * (zeros + 1) + format(value, "o")
    if radix == "hex":
        return "0x" + "0" * zeros + format(value, "x")
    return str(value)


@st.composite
def notations(draw) -> tuple[int, str]:
    value = draw(st.integers(0, 2**32 - 1))
    n = draw(st.integers(1, 4))
    raw = value.to_bytes(4, "big")
    # n-1 single-byte parts, then the rest of the address as one number
    nums = [*raw[: n - 1], int.from_bytes(raw[n - 1 :], "big")]
    radix = st.sampled_from(["dec", "oct", "hex"])
    parts = [_render_part(x, draw(radix), draw(st.integers(0, 2))) for x in nums]
    text = ".".join(parts) + draw(st.sampled_from(["", "."]))
    if draw(st.booleans()):
        text = text.upper()
    return value, text


@given(notations())
def test_every_notation_parses_back(case: tuple[int, str]) -> None:
    value, text = case
    assert host_ip(text) == V4(value)


@given(st.integers(0, 2**32 - 1), st.booleans())
def test_mapped_ipv6_is_the_ipv4_address(value: int, bracket: bool) -> None:
    mapped = str(V6((0xFFFF << 32) | value))
    text = f"[{mapped}]" if bracket else mapped
    assert host_ip(text) == V4(value)
