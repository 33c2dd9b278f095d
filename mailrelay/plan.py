"""What the relay will do with one accepted message: the contract between judging and delivery.

    judge (mailrelay.judge)  raw message + Envelope  →  Plan
    handler                  Plan.all_refused → 550 at DATA; else spool(raw, plan) → 250
    delivery                 each Delivery: deliver / bounce (DSN) / hold in quarantine;
                             each Notice: a separate mail (e.g. the zip password to the sender)

A Plan is data: printable, comparable, stored in the spool beside the
message (`to_dict`/`from_dict`, transformed bodies as separate files), so a
restart delivers exactly what was decided before the crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Outcome(StrEnum):
    DELIVER = "deliver"  # as is, or transformed (masked / encrypted): see Delivery.message
    BOUNCE = "bounce"  # refused for these recipients: a DSN to the sender names rule + findings
    QUARANTINE = "quarantine"  # held in the spool until the security team releases or rejects


@dataclass(frozen=True)
class Envelope:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    source_ip: str = ""
    user: str = ""  # the SMTP AUTH login, when there was one
    message_id: str = ""  # the relay's own id for this message (spool name)


@dataclass(frozen=True)
class Delivery:
    """One recipient group and what happens to the message for it."""

    recipients: tuple[str, ...]
    outcome: Outcome
    action: str  # the Verdict's action (allow, report, mask, encrypt, quarantine, block)
    rule: str
    reason: str  # words for the DSN / the 550 text: never unmasked content
    findings: tuple[dict, ...] = ()  # Finding.to_dict(): masked values only
    incident: str = ""
    message: bytes | None = None  # transformed message to send; None = the original bytes
    # The policy's message to the sender (bilingual, masked): for the DSN / quarantine notice.
    explanation: str = ""
    # How `message` was made: "" (the original), "masked", "smime:message",
    # "smime:attachments", "zip:attachments" (a "+"-joined list when several apply).
    transform: str = ""


@dataclass(frozen=True)
class Notice:
    """A separate message the relay sends (the zip password reaches the sender out of band)."""

    to: str
    message: bytes


@dataclass(frozen=True)
class Plan:
    deliveries: tuple[Delivery, ...]
    notices: tuple[Notice, ...] = field(default=())

    @property
    def all_refused(self) -> bool:
        """Every recipient is bounced: refuse at DATA (550 5.7.1), accept nothing."""
        return bool(self.deliveries) and all(d.outcome is Outcome.BOUNCE for d in self.deliveries)
