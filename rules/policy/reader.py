"""Typed reading of `Node`s with every problem recorded as an Issue (file, line, key, fix).

Readers never raise: they record the issue and return None, so one pass
reports everything wrong in a file.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from datetime import date, datetime
from typing import Any

from rules.policy.errors import Issue, did_you_mean
from rules.policy.model import IPNetwork
from rules.policy.yamlsrc import Node

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class Reader:
    def __init__(self, file: str) -> None:
        self.file = file
        self.issues: list[Issue] = []

    def issue(self, node: Node | int, key: str, message: str, fix: str = "") -> None:
        line = node.line if isinstance(node, Node) else node
        self.issues.append(Issue(self.file, line, key, message, fix))

    def warn(self, node: Node | int, key: str, message: str, fix: str = "") -> None:
        line = node.line if isinstance(node, Node) else node
        self.issues.append(Issue(self.file, line, key, message, fix, warning=True))

    # -- structure ----------------------------------------------------------

    def mapping(
        self, node: Node, key: str, allowed: Iterable[str], required: Iterable[str] = ()
    ) -> dict[str, Node] | None:
        if node.kind != "mapping":
            self.issue(node, key, f"expected a mapping of keys, got {_kind(node)}")
            return None
        allowed = set(allowed)
        out = {}
        for name, value in node.value.items():
            if name in allowed:
                out[name] = value
            else:
                where = f"{key}.{name}" if key else name
                self.issue(value, where, "unknown key", did_you_mean(name, allowed))
        for name in required:
            if name not in node.value:
                self.issue(node, key, f"missing `{name}`", f"add `{name}:`")
        return out

    def entries(self, node: Node, key: str) -> dict[str, Node]:
        """A mapping of user-chosen names (zones, parties, …), names checked."""
        if node.value is None:  # `parties:` with nothing under it
            return {}
        if node.kind != "mapping":
            self.issue(node, key, f"expected a mapping of names, got {_kind(node)}")
            return {}
        out = {}
        for name, value in node.value.items():
            if self.name(name, f"{key}.{name}", value):
                out[name] = value
        return out

    def items(self, node: Node, key: str) -> list[Node]:
        if node.value is None:
            return []
        if node.kind != "list":
            self.issue(node, key, f"expected a list, got {_kind(node)}", f"write `{key}: [ … ]`")
            return []
        return node.value

    # -- scalars ------------------------------------------------------------

    def name(self, value: Any, key: str, node: Node | int) -> str | None:
        if isinstance(value, str) and NAME.match(value):
            return value
        self.issue(
            node,
            key,
            f"{value!r} is not a valid name",
            "use lower-case letters, digits, '-' and '_' (at most 63)",
        )
        return None

    def text(self, node: Node, key: str) -> str | None:
        if isinstance(node.value, str):
            return node.value
        self.issue(node, key, f"expected text, got {_kind(node)}", "quote the value")
        return None

    def integer(self, node: Node, key: str, low: int, high: int) -> int | None:
        v = node.value
        if isinstance(v, bool) or not isinstance(v, int):
            self.issue(node, key, f"expected a whole number, got {_kind(node)}")
            return None
        if not low <= v <= high:
            self.issue(node, key, f"{v} is out of range", f"use {low}..{high}")
            return None
        return v

    def number(self, node: Node, key: str, low: float, high: float) -> float | None:
        v = node.value
        if isinstance(v, bool) or not isinstance(v, int | float) or not low <= v <= high:
            self.issue(node, key, f"expected a number from {low} to {high}, got {v!r}")
            return None
        return float(v)

    def flag(self, node: Node, key: str) -> bool | None:
        if isinstance(node.value, bool):
            return node.value
        self.issue(node, key, f"expected true or false, got {node.value!r}")
        return None

    def choice(self, node: Node, key: str, choices: Iterable[str]) -> str | None:
        choices = list(choices)
        if isinstance(node.value, str) and node.value in choices:
            return node.value
        self.issue(
            node, key, f"{node.value!r} is not allowed", did_you_mean(str(node.value), choices)
        )
        return None

    def day(self, node: Node, key: str) -> date | None:
        v = node.value
        if isinstance(v, datetime):
            return v.date()
        if isinstance(v, date):
            return v
        self.issue(node, key, f"expected a date, got {v!r}", "write it as YYYY-MM-DD")
        return None

    def network(self, node: Node, key: str) -> IPNetwork | None:
        v = node.value
        try:
            return ipaddress.ip_network(str(v), strict=True)
        except ValueError as err:
            fix = ""
            try:
                fix = f"did you mean {ipaddress.ip_network(str(v), strict=False)}?"
            except ValueError:
                fix = "write an address or network like 10.1.0.0/16 or fd00::/8"
            self.issue(node, key, f"{v!r} is not a network ({err})", fix)
            return None

    def domain(self, node: Node, key: str) -> str | None:
        v = node.value
        if not isinstance(v, str):
            self.issue(node, key, f"expected a host name, got {_kind(node)}")
            return None
        host = v.strip().lower().rstrip(".")
        if "://" in host or "/" in host:
            bare = host.split("://")[-1].split("/")[0]
            self.issue(node, key, f"{v!r} is a URL, not a host", f"write the host alone: {bare}")
            return None
        if host.startswith("*."):
            self.issue(
                node,
                key,
                f"{v!r}: no wildcards",
                f"write `{host[2:]}`: a domain covers all its subdomains",
            )
            return None
        try:
            ascii_host = host.encode("idna").decode("ascii")
        except UnicodeError:
            ascii_host = ""
        if not ascii_host or not all(_LABEL.match(lb) for lb in ascii_host.split(".")):
            self.issue(node, key, f"{v!r} is not a valid host name")
            return None
        return ascii_host

    def mail_address(self, node: Node, key: str) -> str | None:
        v = node.value
        if isinstance(v, str) and v.count("@") == 1:
            local, _, dom = v.strip().rpartition("@")
            host = self.domain(Node(dom, node.line, node.file), key)
            if local and host:
                return f"{local.lower()}@{host}"
            return None
        self.issue(node, key, f"{v!r} is not a mail address", "write it as name@domain")
        return None

    def list_of(
        self, node: Node, key: str, read: Callable[[Node, str], Any], unique: bool = True
    ) -> tuple:
        out = []
        for item in self.items(node, key):
            value = read(item, key)
            if value is None:
                continue
            if unique and value in out:
                self.warn(item, key, f"{item.value!r} is listed twice")
                continue
            out.append(value)
        return tuple(out)

    def names_in(self, node: Node, key: str, known: Iterable[str], what: str) -> frozenset[str]:
        known = set(known)

        def one(item: Node, k: str) -> str | None:
            if isinstance(item.value, str) and item.value in known:
                return item.value
            self.issue(
                item, k, f"unknown {what} {item.value!r}", did_you_mean(str(item.value), known)
            )
            return None

        return frozenset(self.list_of(node, key, one))


def _kind(node: Node) -> str:
    if node.kind != "scalar":
        return f"a {node.kind}"
    if node.value is None:
        return "nothing"
    return f"{type(node.value).__name__} {node.value!r}"
