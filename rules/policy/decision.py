"""The values a decision passes around: `Context` in, `Verdict` out.

`Verdict()` — the zero value — blocks: anything that goes wrong on the way
to a decision leaves the caller holding a block, never an allow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from rules.findings import Finding
from rules.policy.model import EXTERNAL, Action, IPAddress, Mode


@dataclass(frozen=True, slots=True)
class Context:
    """Who sends, where to, how. The policy works out zones, categories and party."""

    channel: str  # http, https, websocket, smtp
    source_ip: IPAddress | None = None
    user: str | None = None
    groups: frozenset[str] = frozenset()
    host: str | None = None  # the destination's name (HTTP Host / SNI), lower case
    dest_ip: IPAddress | None = None  # the address actually connected to
    port: int | None = None
    recipient: str | None = None  # for mail: the recipient address
    when: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True, slots=True)
class Place:
    """Where a Context goes from and to, as the policy sees it."""

    source_zone: str = EXTERNAL
    destination_zone: str = EXTERNAL
    categories: frozenset[str] = frozenset()
    party: str | None = None  # an approved party whose agreement is in force
    party_note: str = ""  # why a matching party is not approved (e.g. agreement expired)
    destination: str = ""  # the host, address or IP in words

    def describe(self) -> str:
        parts = [self.destination or "an unknown destination", f"zone {self.destination_zone}"]
        if self.categories:
            parts.append("category " + ", ".join(sorted(self.categories)))
        if self.party:
            parts.append(f"approved party {self.party}")
        return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class Reported:
    """A report-mode rule that matched: what enforce would have done."""

    rule: str
    action: Action
    reason: str


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Action = Action.BLOCK
    rule: str = "fail-closed"
    reason: str = "no decision was reached, so the transfer is blocked"
    findings: tuple[Finding, ...] = ()  # the findings the deciding rule was about (masked)
    mask: tuple[Finding, ...] = ()  # values to mask before the content leaves
    mode: Mode = Mode.ENFORCE
    reported: tuple[Reported, ...] = ()  # report-mode rules that matched on the way
    message: str = "This transfer was blocked by the data-protection gateway."
    place: Place = field(default_factory=Place)
    party: str | None = None  # the party to encrypt to / mask for
    encrypt_scope: str = ""  # "message" or "attachments" when action is encrypt

    @property
    def would_block(self) -> bool:
        """In report mode: enforce would have held this transfer back."""
        return any(r.action.holds for r in self.reported)

    @property
    def would_action(self) -> Action | None:
        """The strictest action a report-mode rule would have taken."""
        actions = [r.action for r in self.reported]
        return max(actions, key=list(Action).index) if actions else None

    def failed(self, why: str) -> Verdict:
        return replace(self, action=Action.BLOCK, rule="fail-closed", reason=why)

    def to_dict(self) -> dict:
        return {
            "action": str(self.action),
            "rule": self.rule,
            "reason": self.reason,
            "mode": str(self.mode),
            "would_block": self.would_block,
            "reported": [
                {"rule": r.rule, "action": str(r.action), "reason": r.reason} for r in self.reported
            ],
            "message": self.message,
            "source_zone": self.place.source_zone,
            "destination_zone": self.place.destination_zone,
            "destination": self.place.destination,
            "categories": sorted(self.place.categories),
            "party": self.party or self.place.party,
            "encrypt_scope": self.encrypt_scope or None,
            "findings": [f.to_dict() for f in self.findings],
            "mask": [f.to_dict() for f in self.mask],
        }

    def __str__(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)
