"""The relay's events about one message: who sent it to whom, what was decided, masked."""

from __future__ import annotations

from collections.abc import Iterable

from audit.events import Event
from mailrelay.plan import Delivery, Envelope
from rules.masking import mask_email


def mail_event(
    event_type: str,
    env: Envelope,
    recipients: Iterable[str],
    d: Delivery | None,
    detail: str,
    message_id: str = "",
    size: int = 0,
) -> Event:
    """Addresses masked; the Delivery (if any) gives action, rule, reason and findings."""
    sender = mask_email(env.mail_from) if env.mail_from else "<>"
    prefix = f"message {message_id} " if message_id else ""
    return Event(
        type=event_type,
        channel="smtp",
        source_ip=env.source_ip,
        user=env.user,
        destination=", ".join(mask_email(r) for r in recipients),
        action=d.action if d else "",
        rule=d.rule if d else "",
        reason=d.reason if d else "",
        findings=tuple(d.findings) if d else (),
        incident=d.incident if d else "",
        detail=f"{prefix}from {sender}: {detail}",
        size=size,  # the message's bytes, where the caller knows them
    )
