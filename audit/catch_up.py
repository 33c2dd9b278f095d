"""Events the mirror has and the store lacks, appended to the store at start.

    recovered = catch_up(store, state_dir / "events.jsonl")   before AuditLog starts

`audit.log` writes an event's mirror line before the writer thread stores it,
so a crash or `kill -9` in between (the store lags by up to GATHER), or a
store that stayed down through shutdown, leaves the newest events in
events.jsonl only. At start the gateway reads the mirror's tail and appends,
in mirror order, the events that the store's recent events lack; one
`audit.mirror_recovered` event then says how many, so the chain shows where
they came in.

Only what is newer than the oldest of the store's recent events is compared:
an old mirror beside a new or emptied store imports nothing, and a store
shared by several gateways (Redis) has each one's newest events among its
recent ones. The store's watchers (counters, alerts) do not see recovered
events: they are history by the time they are back.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime
from pathlib import Path

from audit.events import Event
from audit.store import AuditStore

log = logging.getLogger("leakguard.audit")

TAIL_BYTES = 4 * 2**20  # of the mirror read back: thousands of events, ~20 ms
RECENT = 20_000  # of the store's newest events compared against
RECOVERED = "audit.mirror_recovered"


def missing_events(store: AuditStore, mirror: str | os.PathLike) -> list[dict]:
    """The mirror's newest events that the store lacks, in mirror order."""
    tail = _tail(Path(mirror))
    if not tail:
        return []
    head = store.head()
    seq = head.get("seq") if head else None
    if not isinstance(seq, int):  # an empty store (or an unreadable head): nothing to match
        return []
    recent = list(store.events(after_seq=max(0, seq - RECENT)))
    stored = {e.get("id") for e in recent}
    times = [t for e in recent if (t := _time(e)) is not None]
    if not times:
        return []
    oldest = min(times)
    return [e for e in tail if e["id"] not in stored and _time(e) >= oldest]  # type: ignore[operator]


def catch_up(store: AuditStore, mirror: str | os.PathLike) -> list[dict]:
    """Append the missing events (see missing_events); returns them, [] when none or
    when the store refuses them (they stay in the mirror, and the log says so)."""
    try:
        missing = missing_events(store, mirror)
    except OSError as err:
        log.error("reading the events mirror %s to catch the store up: %s", mirror, err)
        return []
    if not missing:
        return []
    try:
        store.append_many(missing)
    except Exception as err:  # the gateway still starts; the events are in the mirror
        log.error(
            "%d events are in %s but could not be added to the audit store: %s",
            len(missing), mirror, err,
        )  # fmt: skip
        return []
    log.warning("%d events found only in %s were added to the audit store", len(missing), mirror)
    return missing


def recovered_event(recovered: list[dict]) -> Event:
    return Event(
        type=RECOVERED,
        reason=f"{len(recovered)} events were in the events mirror only (unclean stop)",
        detail=f"ids {recovered[0]['id']} … {recovered[-1]['id']}",
    )


def _tail(path: Path) -> list[dict]:
    """The events in the last TAIL_BYTES of the mirror; a torn or foreign line is skipped."""
    try:
        with path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - TAIL_BYTES))
            data = f.read()
    except FileNotFoundError:
        return []
    lines = data.split(b"\n")
    if size > TAIL_BYTES:
        lines = lines[1:]  # the first may be cut
    events = []
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and isinstance(event.get("id"), str) and _time(event):
            events.append(event)
    return events


def _time(event: dict) -> datetime | None:
    """The event's time; None unless it is a time with its zone (ours always are)."""
    try:
        when = datetime.fromisoformat(event["time"])
    except (KeyError, TypeError, ValueError):
        return None
    return when if when.tzinfo is not None else None
