"""audit.incidents: times people type, filters, grouping by incident id, what is shown.

The events go through a real MemoryStore (chained like every backend) and
come back as `store.events()` yields them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from audit.events import Event
from audit.incidents import (
    Filters,
    Redactor,
    event_time,
    find_incident,
    group,
    incidents,
    parse_when,
    safe_event,
    select,
)
from audit.memory_store import MemoryStore

# Generated values (tests/proxy/test_inspect.py): GB 11643 check, Luhn, an allocated range.
ID, ID_MASKED = "11010519491231002X", "110105********002X"
CARD = "6222021234567890128"
PHONE = "13912345678"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
FINDING = {
    "type": "cn_resident_id",
    "class": "identity",
    "level": "important",
    "location": "form field id_no",
    "masked": ID_MASKED,
    "hash": "5f0c…",
    "score": 0.95,
    "why": ["GB 11643 checksum"],
}


def at(hours: float) -> str:
    return (T0 + timedelta(hours=hours)).isoformat(timespec="milliseconds")


def event(hours: float, **fields) -> dict:
    return Event(time=at(hours), **fields).to_dict()


@pytest.fixture(scope="module")
def redact() -> Redactor:
    return Redactor()


@pytest.fixture
def record() -> list[dict]:
    """A day of decisions: two incidents across several events, and noise without one."""
    store = MemoryStore(b"k" * 32)
    for e in (
        event(0, type="http.request", channel="https", user="alice", destination="mail.qq.com",
              action="block", rule="identifying-to-personal-channels", findings=(FINDING,),
              incident="LG-20261120-AAAAAA"),
        event(1, type="http.request", channel="http", user="bob", destination="example.com",
              action="allow", rule=""),
        event(2, type="smtp.message", channel="smtp", user="bob", destination="a***@law.example",
              action="quarantine", rule="important-to-party-unencrypted", findings=(FINDING,),
              incident="LG-20261120-BBBBBB"),
        event(3, type="smtp.quarantine", channel="smtp", user="bob",
              destination="a***@law.example", action="quarantine",
              rule="important-to-party-unencrypted", incident="LG-20261120-BBBBBB"),
        event(30, type="smtp.delivery", channel="smtp", user="bob",
              destination="a***@law.example", action="quarantine",
              rule="important-to-party-unencrypted", incident="LG-20261120-BBBBBB",
              detail="released by carol"),
        event(4, type="smtp.auth.failure", channel="smtp", user="mallory", action="refuse"),
    ):  # fmt: skip
        store.append(e)
    return list(store.events())


# -- times --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", NOW - timedelta(days=7)),
        ("24h", NOW - timedelta(hours=24)),
        ("30m", NOW - timedelta(minutes=30)),
        ("2w", NOW - timedelta(weeks=2)),
        ("90s", NOW - timedelta(seconds=90)),
        (" 7D ", NOW - timedelta(days=7)),
        ("now", NOW),
        ("2026-11-20T09:00:00+00:00", T0),
        ("2026-11-20T17:00+08:00", T0),
        ("2026-11-20T09:00:00Z", T0),
    ],
)
def test_parse_when_relative_and_with_offset(text, expected):
    assert parse_when(text, NOW) == expected


def test_parse_when_without_offset_is_local_time():
    local = datetime(2026, 11, 20, 9, 0).astimezone()  # the machine's own offset
    assert parse_when("2026-11-20T09:00", NOW) == local
    assert parse_when("2026-11-20 09:00", NOW) == local


def test_a_bare_until_date_includes_that_day():
    midnight = datetime(2026, 11, 20).astimezone()
    assert parse_when("2026-11-20", NOW) == midnight
    assert parse_when("2026-11-20", NOW, end_of_day=True) == midnight + timedelta(days=1)


@pytest.mark.parametrize("text", ["yesterday", "7", "d7", "-7d", "7 days", "2026-13-01", ""])
def test_parse_when_refuses_what_it_cannot_read(text):
    with pytest.raises(ValueError, match=r"is not a time: write e\.g\. 7d"):
        parse_when(text, NOW)


def test_event_time_reads_iso_and_refuses_junk():
    assert event_time({"time": "2026-11-20T09:00:00.000+00:00"}) == T0
    assert event_time({"time": "2026-11-20T09:00:00"}) == T0  # naive: stored times are UTC
    for bad in ({}, {"time": None}, {"time": 5}, {"time": "soon"}):
        assert event_time(bad) is None


# -- filters ------------------------------------------------------------------------------


def ids(found) -> list[str]:
    return [i.id for i in found]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (Filters(), ["LG-20261120-AAAAAA", "LG-20261120-BBBBBB"]),
        (Filters(user="alice"), ["LG-20261120-AAAAAA"]),
        (Filters(user="Alice"), []),  # names are exact
        (Filters(action="quarantine"), ["LG-20261120-BBBBBB"]),
        (Filters(rule="identifying-to-personal-channels"), ["LG-20261120-AAAAAA"]),
        (Filters(type="smtp"), ["LG-20261120-BBBBBB"]),  # a prefix up to a dot
        (Filters(type="smtp.deliv"), []),  # not half a word
        (Filters(type="smtp.delivery"), ["LG-20261120-BBBBBB"]),
        (Filters(since=T0 + timedelta(hours=1)), ["LG-20261120-BBBBBB"]),
        (Filters(until=T0 + timedelta(hours=2)), ["LG-20261120-AAAAAA"]),  # until excluded
        (Filters(since=T0, until=T0 + timedelta(hours=2, microseconds=1)),
         ["LG-20261120-AAAAAA", "LG-20261120-BBBBBB"]),
        # an incident matches when one of its events does: the release a day later
        (Filters(since=T0 + timedelta(hours=24)), ["LG-20261120-BBBBBB"]),
        (Filters(user="bob", action="block"), []),  # every filter at once, on one event
    ],
)  # fmt: skip
def test_incident_filters(record, filters, expected):
    assert ids(incidents(record, filters)) == expected


def test_select_filters_events_and_drops_undated_ones_from_a_window(record):
    odd = [*record, {"type": "http.request", "time": "garbage"}, "not an event"]
    assert len(list(select(odd, Filters()))) == len(record) + 1
    window = Filters(since=T0 - timedelta(days=1))
    assert len(list(select(odd, window))) == len(record)
    assert [e["user"] for e in select(record, Filters(type="smtp.auth"))] == ["mallory"]


# -- grouping -----------------------------------------------------------------------------


def test_group_keeps_every_event_of_an_incident_in_record_order(record):
    found = group(record)
    assert ids(found) == ["LG-20261120-AAAAAA", "LG-20261120-BBBBBB"]
    quarantined = found[1]
    assert [e["type"] for e in quarantined.events] == [
        "smtp.message",
        "smtp.quarantine",
        "smtp.delivery",
    ]
    assert [e["seq"] for e in quarantined.events] == [3, 4, 5]
    assert quarantined.decision["type"] == "smtp.message"
    assert quarantined.last["type"] == "smtp.delivery"


def test_find_incident_is_case_insensitive_and_none_when_unknown(record):
    found = find_incident(record, " lg-20261120-bbbbbb ")
    assert found is not None and found.id == "LG-20261120-BBBBBB" and len(found.events) == 3
    assert find_incident(record, "LG-20261120-ZZZZZZ") is None
    assert find_incident(record, "") is None


def test_summary_says_who_what_to_whom_when_which_rule_what_happened(record, redact):
    summary = find_incident(record, "LG-20261120-BBBBBB").summary(redact)
    assert summary == {
        "incident": "LG-20261120-BBBBBB",
        "time": at(2),
        "last_time": at(30),
        "user": "bob",
        "source_ip": "",
        "channel": "smtp",
        "destination": "a***@law.example",
        "party": "",
        "rule": "important-to-party-unencrypted",
        "action": "quarantine",
        "reason": "",
        "findings": [
            {"type": "cn_resident_id", "class": "identity", "masked": ID_MASKED,
             "location": "form field id_no"},
        ],
        "outcome": "smtp.delivery",
        "events": 3,
    }  # fmt: skip


# -- nothing raw is shown -----------------------------------------------------------------


def test_a_raw_value_that_reached_an_event_is_masked_when_shown(redact):
    """The second lock: events are masked where they are made; if one was not, we mask it."""
    leaky = event(
        0,
        type="http.request",
        user=f"user {ID}",
        destination=f"upload.example/?id={ID}&card={CARD}",
        action="block",
        rule="r",
        reason=f"saw {PHONE}",
        detail=f"form field id_no={ID}",
        incident="LG-20261120-CCCCCC",
        findings=({**FINDING, "masked": ID, "value": ID, "raw": CARD},),
    )
    incident = find_incident([leaky], "LG-20261120-CCCCCC")
    shown = repr(incident.summary(redact)) + repr(safe_event(leaky, redact))
    for raw in (ID, CARD, PHONE):
        assert raw not in shown
    assert ID_MASKED in shown
    finding = safe_event(leaky, redact)["findings"][0]
    assert set(finding) == {"type", "class", "level", "location", "masked", "hash", "score"}


def test_hostile_field_types_do_not_break_showing(redact):
    odd = {
        "type": ["x"],
        "time": 17,
        "user": None,
        "incident": "LG-20261120-DDDDDD",
        "findings": "not a list",
        "detail": {"nested": [ID, 1, None]},
        "action": "block\x1b[2J",
    }
    incident = find_incident([odd], "LG-20261120-DDDDDD")
    summary = incident.summary(redact)
    assert summary["user"] == "" and summary["findings"] == []
    assert summary["action"] == "block [2J"  # control characters never reach a terminal
    shown = safe_event(odd, redact)
    assert ID not in repr(shown) and shown["findings"] == []
