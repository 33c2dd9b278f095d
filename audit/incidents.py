"""Incidents: the record's events grouped by incident id, and the filters people ask with.

    since = parse_when("7d", now)                     # or 2026-11-23, 2026-11-23T09:00+08:00
    filters = Filters(since=since, user="alice", action="block")
    for incident in incidents(store.events(), filters): ...
    incident = find_incident(store.events(), "LG-20261123-7F3K9Q")

An incident id is set on every decision that stopped or changed a transfer
(block, quarantine, mask, encrypt) and carried by the events that follow it
(the relay's quarantine, release, delivery, bounce). The store is the source
of truth; events are untrusted dicts (a field may be missing or of the wrong
type), so every read goes through `text()`. Everything shown to people goes
through a `Redactor` too: events are masked where they are made, and this is
the second lock on the door should a field ever carry a raw value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

# The decision that opened an incident; later events say what happened to it.
DECISION_TYPES = ("http.request", "websocket.message", "smtp.message", "proxy.connect")
FINDING_FIELDS = ("type", "class", "level", "location", "masked", "hash", "score")

_RELATIVE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


# -- times --------------------------------------------------------------------------------


def parse_when(text: str, now: datetime, *, end_of_day: bool = False) -> datetime:
    """An aware datetime from "7d", "24h", "30m", "2w", "now", an ISO date or date-time.

    Relative forms count back from `now`. A date or date-time without an offset
    is local time (what an administrator at the gateway means). A bare date is
    its midnight, or with `end_of_day` the next midnight, so `--until 2026-11-30`
    includes the 30th. Raises ValueError with the accepted forms.
    """
    value = text.strip()
    if value.lower() == "now":
        return now
    m = _RELATIVE.match(value)
    if m:
        return now - timedelta(**{_UNITS[m.group(2).lower()]: int(m.group(1))})
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            day = date.fromisoformat(value) + timedelta(days=1 if end_of_day else 0)
            return datetime.combine(day, time()).astimezone()
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: write e.g. 7d, 24h, 30m, 2026-11-23 or 2026-11-23T09:00"
        ) from None
    return when if when.tzinfo else when.astimezone()


def event_time(event: dict) -> datetime | None:
    """The event's time (aware), or None when the field is missing or malformed."""
    value = event.get("time")
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def local(value: str) -> str:
    """An event's ISO UTC time as local 'YYYY-MM-DD HH:MM:SS' for tables; as is if malformed."""
    when = event_time({"time": value})
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S") if when else text(value)


# -- untrusted fields ---------------------------------------------------------------------


def text(value: object) -> str:
    """A field as one line of text: None is "", control characters become spaces."""
    if value is None:
        return ""
    if not isinstance(value, str):
        value = str(value)
    return re.sub(r"[\x00-\x1f\x7f]", " ", value)


class Redactor:
    """Every value a built-in detector finds in a string, replaced by its masked form.

    Built on first use (it compiles the scan engine); one per command.
    """

    def __init__(self) -> None:
        self._engine = None

    def __call__(self, value: object) -> str:
        s = text(value)
        if not s:
            return s
        if self._engine is None:
            from rules.engine import Engine  # heavy: only when something is shown

            self._engine = Engine(hash_key=b"leakguard-redactor-display-only")
        return self._engine.redact(s)


def safe_findings(event: dict, redact: Redactor) -> list[dict]:
    """The event's findings with only the fields meant to be shown (masked value, hash)."""
    out = []
    findings = event.get("findings")
    for f in findings if isinstance(findings, list | tuple) else ():
        if isinstance(f, dict):
            out.append({k: redact(f[k]) for k in FINDING_FIELDS if k in f})
    return out


def safe_event(event: dict, redact: Redactor) -> dict:
    """A stored event for display: every string redacted, findings reduced to masked fields."""

    def clean(value: object) -> object:
        if isinstance(value, bool | int | float) or value is None:
            return value
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        if isinstance(value, dict):
            return {redact(k): clean(v) for k, v in value.items()}
        return redact(value)

    out = {k: clean(v) for k, v in event.items() if k != "findings"}
    out["findings"] = safe_findings(event, redact)
    return out


# -- filters ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    user: str = ""
    rule: str = ""
    action: str = ""
    type: str = ""  # "smtp" matches smtp.* ; "smtp.quarantine" that type and its sub-types

    def matches(self, event: dict) -> bool:
        if self.since or self.until:
            when = event_time(event)
            if when is None:
                return False  # cannot be placed in the window
            if self.since and when < self.since:
                return False
            if self.until and when >= self.until:
                return False
        for name in ("user", "rule", "action"):
            wanted = getattr(self, name)
            if wanted and text(event.get(name)) != wanted:
                return False
        if self.type:
            kind = text(event.get("type"))
            if kind != self.type and not kind.startswith(self.type + "."):
                return False
        return True


def select(events: Iterable[dict], filters: Filters) -> Iterator[dict]:
    return (e for e in events if isinstance(e, dict) and filters.matches(e))


# -- incidents ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Incident:
    id: str
    events: tuple[dict, ...] = field(default=())

    @property
    def decision(self) -> dict:
        """The event that decided (first decision type), else the first event."""
        for e in self.events:
            if text(e.get("type")) in DECISION_TYPES:
                return e
        return self.events[0]

    @property
    def first(self) -> str:
        return text(self.events[0].get("time"))

    @property
    def last(self) -> dict:
        return self.events[-1]

    def findings(self, redact: Redactor) -> list[dict]:
        """Masked findings of every event, each (type, masked value, location) once."""
        seen, out = set(), []
        for e in self.events:
            for f in safe_findings(e, redact):
                key = (f.get("type"), f.get("masked"), f.get("location"))
                if key not in seen:
                    seen.add(key)
                    out.append(f)
        return out

    def summary(self, redact: Redactor) -> dict:
        """Who sent what (masked) to whom, when, which rule, what happened: for tables and JSON."""
        d = self.decision
        return {
            "incident": redact(self.id),
            "time": self.first,
            "last_time": text(self.last.get("time")),
            "user": redact(d.get("user")),
            "source_ip": redact(d.get("source_ip")),
            "channel": redact(d.get("channel")),
            "destination": redact(d.get("destination")),
            "party": redact(d.get("party")),
            "rule": redact(d.get("rule")),
            "action": redact(d.get("action")),
            "reason": redact(d.get("reason")),
            "findings": [
                {k: f[k] for k in ("type", "class", "masked", "location") if k in f}
                for f in self.findings(redact)
            ],
            "outcome": redact(self.last.get("type")),
            "events": len(self.events),
        }


def group(events: Iterable[dict]) -> list[Incident]:
    """Events with an incident id, grouped by it, in order of each incident's first event."""
    grouped: dict[str, list[dict]] = {}
    for e in events:
        if not isinstance(e, dict):
            continue
        incident = text(e.get("incident")).strip()
        if incident:
            grouped.setdefault(incident, []).append(e)
    return [Incident(i, tuple(evs)) for i, evs in grouped.items()]


def incidents(events: Iterable[dict], filters: Filters | None = None) -> list[Incident]:
    """The incidents with at least one event matching every filter, oldest first."""
    filters = filters or Filters()
    return [i for i in group(events) if any(filters.matches(e) for e in i.events)]


def find_incident(events: Iterable[dict], incident_id: str) -> Incident | None:
    """Every event of one incident (ids compare case-insensitively), or None."""
    wanted = incident_id.strip().upper()
    if not wanted:
        return None  # events outside any incident have an empty id
    found = tuple(
        e for e in events if isinstance(e, dict) and text(e.get("incident")).upper() == wanted
    )
    return Incident(text(found[0].get("incident")), found) if found else None
