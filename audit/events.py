"""Decisions as events: constant field names, PII masked, one JSON object per line.

The audit issue makes the store rich (hash chain, SQLite/Redis, alerts);
this is the record every door writes to meanwhile, with the same fields.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from rules.policy import Context, Verdict

EVENT_FIELDS = (
    "id", "time", "type", "channel", "source_ip", "user", "source_zone", "destination",
    "destination_ip", "destination_zone", "categories", "party", "action", "rule", "reason",
    "mode", "would_block", "reported", "findings", "incident", "detail", "size",
)  # fmt: skip


def new_incident_id(now: datetime | None = None) -> str:
    """LG-20261123-7F3K9Q: the date for people, six random characters for uniqueness."""
    now = now or datetime.now(UTC)
    alphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
    return f"LG-{now:%Y%m%d}-" + "".join(secrets.choice(alphabet) for _ in range(6))


@dataclass(frozen=True)
class Event:
    type: str  # e.g. "http.request", "smtp.message", "policy.reload"
    channel: str = ""
    source_ip: str = ""
    user: str = ""
    source_zone: str = ""
    destination: str = ""  # host, or masked mail address
    destination_ip: str = ""
    destination_zone: str = ""
    categories: tuple[str, ...] = ()
    party: str = ""
    action: str = ""
    rule: str = ""
    reason: str = ""
    mode: str = ""
    would_block: bool = False
    reported: tuple[dict, ...] = ()
    findings: tuple[dict, ...] = ()  # Finding.to_dict(): masked value and keyed hash only
    incident: str = ""
    detail: str = ""  # e.g. why inspection failed; never content
    size: int = 0  # bytes of content the decision was about (anomalous transfers add them up)
    id: str = field(default_factory=lambda: secrets.token_hex(8))
    time: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="milliseconds"))

    def to_dict(self) -> dict:
        # shallow (asdict's deep copy cost ~8 µs per event on the proxy's hot path): the
        # nested findings/reported dicts are built for this event alone and never changed
        return {k: getattr(self, k) for k in EVENT_FIELDS}


def decision_event(
    event_type: str,
    verdict: Verdict,
    ctx: Context,
    *,
    incident: str = "",
    detail: str = "",
    size: int = 0,
) -> Event:
    place = verdict.place
    return Event(
        type=event_type,
        channel=ctx.channel,
        source_ip=str(ctx.source_ip or ""),
        user=ctx.user or "",
        source_zone=place.source_zone,
        destination=place.destination,
        destination_ip=str(ctx.dest_ip or ""),
        destination_zone=place.destination_zone,
        categories=tuple(sorted(place.categories)),
        party=verdict.party or place.party or "",
        action=str(verdict.action),
        rule=verdict.rule,
        reason=verdict.reason,
        mode=str(verdict.mode),
        would_block=verdict.would_block,
        reported=tuple({"rule": r.rule, "action": str(r.action)} for r in verdict.reported),
        findings=tuple(f.to_dict() for f in verdict.findings),
        incident=incident,
        detail=detail,
        size=size,
    )


class JsonLinesLog:
    """Append-only JSON lines; one write per event so lines never interleave."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._file = os.fdopen(fd, "ab", buffering=0)
        self._lock = threading.Lock()

    def record(self, event: Event | dict) -> None:
        data = event.to_dict() if isinstance(event, Event) else event
        line = json.dumps(data, ensure_ascii=False, sort_keys=False).encode() + b"\n"
        with self._lock:
            self._file.write(line)

    def close(self) -> None:
        self._file.close()


class MemoryLog:
    """Events kept in a list: for tests and for `rules test`-like tools."""

    def __init__(self) -> None:
        self.events: list[dict] = []

    def record(self, event: Event | dict) -> None:
        self.events.append(event.to_dict() if isinstance(event, Event) else dict(event))
