"""The policy as frozen domain objects: what the loader builds and evaluation reads.

Nothing here knows YAML; `wire.py` turns files into these. Every object is
immutable so a policy in use can never change under a running decision.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import TYPE_CHECKING

from audit.watch_settings import Watch
from rules.custom import CustomDetector, KeywordDetector, RegexDetector

if TYPE_CHECKING:
    from rules.policy.index import Compiled

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

EXTERNAL = "external"  # the implicit zone: every address no zone claims


class Action(StrEnum):
    """What happens to the transfer, from most to least permissive."""

    ALLOW = "allow"
    REPORT = "report"  # allowed, and recorded as an incident
    MASK = "mask"
    ENCRYPT = "encrypt"
    QUARANTINE = "quarantine"
    BLOCK = "block"

    @property
    def holds(self) -> bool:
        """The content does not reach the destination (now)."""
        return self in (Action.QUARANTINE, Action.BLOCK)


class Mode(StrEnum):
    ENFORCE = "enforce"
    REPORT = "report"  # record what enforce would have done; let it pass


class Level(StrEnum):
    CORE = "core"
    IMPORTANT = "important"
    BASIC = "basic"


CHANNELS = ("http", "https", "websocket", "smtp")
MAIL_ONLY_ACTIONS = (Action.ENCRYPT, Action.QUARANTINE)  # meaningless for a web upload


@dataclass(frozen=True, slots=True)
class Zone:
    name: str
    cidrs: tuple[IPNetwork, ...]
    domains: tuple[str, ...] = ()  # hosts by name in this zone (when no address is known)
    mail_domains: tuple[str, ...] = ()  # the firm's own mail domains live here
    description: str = ""


@dataclass(frozen=True, slots=True)
class Reach:
    """One allowed zone → zone path. Anything not listed is refused."""

    source: str
    destination: str
    ports: frozenset[int] = frozenset()  # empty: any port
    channels: frozenset[str] = frozenset()  # empty: any channel
    inspect: bool = True  # the firewall sends it through the proxy/relay
    mode: Mode = Mode.ENFORCE

    def allows(self, port: int | None, channel: str | None) -> bool:
        # an unknown port or channel does not pass an entry that names some: fail closed
        if self.ports and port not in self.ports:
            return False
        return not (self.channels and channel not in self.channels)


@dataclass(frozen=True, slots=True)
class Category:
    name: str
    domains: tuple[str, ...] = ()  # the domain and every host under it
    hosts: tuple[str, ...] = ()  # exactly these hosts
    cidrs: tuple[IPNetwork, ...] = ()
    mail_domains: tuple[str, ...] = ()  # recipients at these domains belong here
    description: str = ""


@dataclass(frozen=True, slots=True)
class Party:
    """An approved third party; approved only while its agreement is in force."""

    id: str
    name: str
    receives: frozenset[str]  # data classes it may receive
    domains: tuple[str, ...] = ()  # its web hosts (domain and subdomains)
    mail_domains: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()  # exact recipient addresses
    mask: frozenset[str] = frozenset()  # classes or detectors masked for it (need to know)
    encrypt_mail: str = "by-rule"  # "always": every mail to it is encrypted
    encrypt_scope: str = "message"  # or "attachments"
    certificate: str | None = None  # a file, else the certificate store (`certs import`)
    agreement: str = ""
    valid_from: date | None = None
    valid_until: date | None = None

    def standing(self, day: date) -> str | None:
        """None when the agreement is in force on `day`, else why not (with the date)."""
        if self.valid_from and day < self.valid_from:
            return f"agreement of party {self.id} is in force only from {self.valid_from}"
        if self.valid_until and day > self.valid_until:
            return f"agreement of party {self.id} expired on {self.valid_until}"
        return None


@dataclass(frozen=True, slots=True)
class DataClass:
    name: str
    level: Level
    detectors: tuple[str, ...]
    bulk: int | None = None  # distinct values in one transfer that make a bulk record set
    description: str = ""


@dataclass(frozen=True, slots=True)
class CustomSpec:
    """A detector the policy declares: a keyword list or a regex with a validator."""

    id: str
    words: tuple[str, ...] = ()
    pattern: str = ""
    validator: str | None = None
    score: float = 0.8
    case_sensitive: bool = False
    description: str = ""

    def build(self) -> CustomDetector:
        if self.words:
            return KeywordDetector(self.id, self.words, self.score, self.case_sensitive)
        return RegexDetector(self.id, self.pattern, self.score, self.validator)


@dataclass(frozen=True, slots=True)
class Conditions:
    """A rule's `when:` — every condition given must hold; a list holds if any item does."""

    source_zone: frozenset[str] = frozenset()
    source: tuple[IPNetwork, ...] = ()
    user: frozenset[str] = frozenset()
    group: frozenset[str] = frozenset()
    channel: frozenset[str] = frozenset()
    destination_zone: frozenset[str] = frozenset()
    category: frozenset[str] = frozenset()
    host: tuple[str, ...] = ()
    party: str | frozenset[str] = ""  # "", "any", "none" or party ids
    data_class: frozenset[str] = frozenset()
    level: frozenset[Level] = frozenset()
    detector: frozenset[str] = frozenset()
    min_distinct: int = 0  # 0: no count condition (1 when a data condition is given)
    bulk: bool | None = None
    uninspectable: bool | None = None

    @property
    def on_data(self) -> bool:
        return bool(
            self.data_class or self.level or self.detector or self.min_distinct or self.bulk
        )


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    when: Conditions
    action: Action
    mode: Mode
    message: str = ""  # what the user sees; may use {rule} {reason} {destination}
    description: str = ""
    line: int = field(default=0, compare=False)  # where it is written, for explanations
    file: str = field(default="rules.yaml", compare=False)


@dataclass(frozen=True)
class Policy:
    zones: tuple[Zone, ...]
    reach: tuple[Reach, ...]
    categories: tuple[Category, ...]
    parties: tuple[Party, ...]
    classes: tuple[DataClass, ...]
    rules: tuple[Rule, ...]
    custom_detectors: tuple[CustomSpec, ...] = ()
    default_action: Action = Action.ALLOW
    mode: Mode = Mode.ENFORCE
    timezone: str = "Asia/Shanghai"
    tls_passthrough: tuple[str, ...] = ()  # pinned clients: tunnelled uninspected, by name
    watch: Watch = field(default_factory=Watch)  # watch.yaml: login and transfer anomalies
    source: str = field(default="", compare=False)  # the directory it came from
    warnings: tuple[str, ...] = field(default=(), compare=False)
    compiled: Compiled | None = field(default=None, compare=False, repr=False)

    def zone(self, name: str) -> Zone | None:
        return next((z for z in self.zones if z.name == name), None)

    def party(self, party_id: str) -> Party | None:
        return next((p for p in self.parties if p.id == party_id), None)

    def data_class(self, name: str) -> DataClass | None:
        return next((c for c in self.classes if c.name == name), None)
