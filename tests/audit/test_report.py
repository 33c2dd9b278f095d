"""audit.report: figures from a known event set, and the page they make.

The events go through a real MemoryStore; the page is parsed with
html.parser (what a browser would build from it), never string-matched for
structure.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from xml.etree import ElementTree

import pytest

from audit.events import Event
from audit.incidents import Redactor
from audit.memory_store import MemoryStore
from audit.report import (
    CHANNEL_LABELS,
    CLASS_LABELS,
    NO_CLASS,
    NO_PARTY,
    bar_chart,
    build_report,
    render_html,
)
from audit.store import Hold

# Generated values (tests/proxy/test_inspect.py): GB 11643 check, Luhn, an allocated range.
ID, ID_MASKED = "11010519491231002X", "110105********002X"
ID2 = "440301199001010012"  # another generated resident ID (checked below)
CARD, CARD_MASKED = "6222021234567890128", "6222 **** **** 0128"
PHONE, PHONE_MASKED = "13912345678", "139****5678"
RAW = (ID, ID.lower(), ID2, CARD, PHONE)
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
SINCE, UNTIL = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
NOW = UNTIL + timedelta(hours=1)
HOSTILE = '"><script>alert(1)</script><img src=x onerror=alert(2)>'

IDENTITY, FINANCIAL, CONTACT = (CLASS_LABELS[c] for c in ("identity", "financial", "contact"))
HTTPS, SMTP, WS = (CHANNEL_LABELS[c] for c in ("https", "smtp", "websocket"))


def finding(kind: str, cls: str, masked: str, n: int) -> dict:
    return {"type": kind, "class": cls, "masked": masked, "hash": f"h{n}", "location": "body"}


ID_F = finding("cn_resident_id", "identity", ID_MASKED, 1)
ID2_F = finding("cn_resident_id", "identity", "440301********0012", 2)
CARD_F = finding("cn_bank_card", "financial", CARD_MASKED, 3)
PHONE_F = finding("cn_mobile", "contact", PHONE_MASKED, 4)

# (hours after T0, type, channel, party, action, findings)
TRANSFERS = [
    (0, "http.request", "https", "", "block", (ID_F, ID2_F)),
    (1, "http.request", "https", "", "block", (CARD_F,)),
    (2, "websocket.message", "websocket", "", "block", (ID_F, PHONE_F)),
    (3, "smtp.message", "smtp", "lawfirm", "encrypt", (ID_F, CARD_F)),
    (4, "smtp.message", "smtp", "lawfirm", "mask", (PHONE_F,)),
    (5, "smtp.message", "smtp", "court", "quarantine", (ID_F,)),
    (30, "smtp.message", "smtp", "", "allow", ()),
    (31, "http.request", "https", "", "report", (PHONE_F,)),
]


def stored(events: list[dict]) -> list[dict]:
    store = MemoryStore(b"k" * 32)
    for e in events:
        store.append(e)
    return list(store.events())


def transfer(hours, kind, channel, party, action, findings, **more) -> dict:
    return Event(
        time=(T0 + timedelta(hours=hours)).isoformat(timespec="milliseconds"),
        type=kind,
        channel=channel,
        party=party,
        action=action,
        user="alice",
        destination="mail.qq.com" if channel != "smtp" else "a***@law.example",
        rule="r-" + action,
        findings=findings,
        incident="" if action in ("allow", "report") else f"LG-20261102-{hours:06d}",
        **more,
    ).to_dict()


def other(hours, kind, **fields) -> dict:
    return Event(time=(T0 + timedelta(hours=hours)).isoformat(), type=kind, **fields).to_dict()


@pytest.fixture(scope="module")
def redact() -> Redactor:
    return Redactor()


@pytest.fixture
def events() -> list[dict]:
    return stored(
        [
            *(transfer(*t) for t in TRANSFERS),
            transfer(6, "smtp.message", "smtp", "", "allow", (), would_block=True),
            # follow-ups of a decision are not transfers of their own
            transfer(7, "smtp.quarantine", "smtp", "court", "quarantine", (ID_F,)),
            transfer(8, "smtp.refused", "smtp", "", "block", (ID_F,)),
            other(9, "proxy.connect", action="block", rule="isolation:zone"),
            other(9, "proxy.connect", action="allow"),
            # outside the period
            transfer(-24 * 5, "http.request", "https", "", "block", (ID_F,)),
            transfer(24 * 40, "http.request", "https", "", "block", (ID_F,)),
            # logins and anomalies
            *(other(10 + i, "login.failure", user="bob", source_ip="10.1.2.3") for i in range(5)),
            other(10, "smtp.auth.failure", user="bob", source_ip="10.1.2.3"),
            other(11, "account.frozen", user="bob", reason="5 wrong passwords"),
            other(12, "account.unfrozen", user="bob", reason="by carol"),
            other(13, "login.anomaly", user="dave", source_ip="203.0.113.9",
                  source_zone="external", reason="login from the external zone (异地 IP)"),
            other(14, "address.blocked", source_ip="10.9.9.9", reason="password spraying"),
            other(15, "transfer.anomaly", user="erin", reason="20 distinct ID numbers in 24h"),
            other(15, "sender.held", user="erin", reason="held for review"),
            other(15, "alert", reason="transfer.bulk"),
        ]
    )  # fmt: skip


HOLDS = [
    Hold("account", "bob", "5 wrong passwords", since=T0.timestamp()),
    Hold("account", "frank", "cool-down", since=T0.timestamp(), until=NOW.timestamp() - 1),
    Hold("account", "gina", "new subnet", since=T0.timestamp(), until=NOW.timestamp() + 3600),
]


def report_of(events, redact, **kw):
    return build_report(events, HOLDS, SINCE, UNTIL, now=NOW, redact=redact, **kw)


# -- figures ------------------------------------------------------------------------------------


def test_totals_count_each_decision_once_by_outcome(events, redact):
    r = report_of(events, redact)
    assert r.totals == Counter(blocked=3, encrypted=1, masked=1, quarantined=1, delivered=3)
    assert r.transfers == 9
    assert r.would_block == 1
    assert r.connections_blocked == 1


def test_figures_per_data_class(events, redact):
    r = report_of(events, redact)
    assert r.by_class == {
        IDENTITY: Counter(blocked=2, encrypted=1, quarantined=1),  # two IDs in one: counted once
        FINANCIAL: Counter(blocked=1, encrypted=1),
        CONTACT: Counter(blocked=1, masked=1, delivered=1),
        NO_CLASS: Counter(delivered=2),
    }


def test_figures_per_party_and_channel(events, redact):
    r = report_of(events, redact)
    assert r.by_party == {
        NO_PARTY: Counter(blocked=3, delivered=3),
        "lawfirm": Counter(encrypted=1, masked=1),
        "court": Counter(quarantined=1),
    }
    assert r.by_channel == {
        HTTPS: Counter(blocked=2, delivered=1),
        WS: Counter(blocked=1),
        SMTP: Counter(encrypted=1, masked=1, quarantined=1, delivered=2),
    }
    assert r.by_day == {
        "2026-11-02": Counter(blocked=3, encrypted=1, masked=1, quarantined=1, delivered=1),
        "2026-11-03": Counter(delivered=2),
    }


def test_logins_anomalies_and_frozen_accounts(events, redact):
    r = report_of(events, redact)
    assert r.counts["login_failures"] == 5  # smtp.auth.failure repeats a login.failure
    assert r.counts["login_anomalies"] == 1
    assert r.counts["accounts_frozen"] == 1 and r.counts["accounts_unfrozen"] == 1
    assert r.counts["addresses_blocked"] == 1
    assert r.counts["transfer_anomalies"] == 1 and r.counts["senders_held"] == 1
    assert r.counts["alerts"] == 1
    assert [row["type"] for row in r.login_rows] == [
        "account.frozen",
        "login.anomaly",
        "address.blocked",
    ]
    # frank's cool-down ended before the report was made
    assert [h["name"] for h in r.frozen] == ["bob", "gina"]


def test_party_narrows_the_transfers(events, redact):
    r = report_of(events, redact, party="LawFirm")
    assert r.totals == Counter(encrypted=1, masked=1)
    assert list(r.by_party) == ["lawfirm"]
    assert r.counts["login_failures"] == 5  # logins cover the whole firm


def test_the_period_is_half_open(events, redact):
    first = T0  # the first transfer's time exactly
    r = build_report(events, [], first, first + timedelta(hours=1), now=NOW, redact=redact)
    assert r.totals == Counter(blocked=1)


def test_latest_blocked_and_held_transfers_count_values_never_show_them(events, redact):
    rows = report_of(events, redact).held_rows
    assert [row["outcome"] for row in rows] == [
        "已阻止 Blocked",
        "已阻止 Blocked",
        "已阻止 Blocked",
        "待审核 Held for review",
    ]
    assert rows[0]["value_count"] == 2 and rows[0]["classes"] == IDENTITY
    assert rows[0]["incident"] == "LG-20261102-000000"


# -- the page -----------------------------------------------------------------------------------


class Page(HTMLParser):
    """What a browser would see: tags with attributes, text, and where the SVGs are."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.svgs = 0
        self.rects_in_svg = 0
        self._in_svg = 0
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "svg":
            self.svgs += 1
            self._in_svg += 1
        if tag == "rect" and self._in_svg:
            self.rects_in_svg += 1

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag == "svg":
            self._in_svg -= 1

    def handle_endtag(self, tag):
        if tag == "svg":
            self._in_svg -= 1

    def handle_data(self, data):
        self.text.append(data)

    def names(self) -> set[str]:
        return {t for t, _ in self.tags}


def test_the_page_parses_and_holds_the_charts(events, redact):
    r = report_of(events, redact)
    html = render_html(r)
    page = Page(html)
    assert page.svgs == 4  # per day, per class, per party, per channel
    # one rectangle per non-zero (row, outcome) in each chart
    expected = sum(
        sum(1 for n in counts.values() if n)
        for rows in (r.by_day, r.by_class, r.by_party, r.by_channel)
        for counts in rows.values()
    )
    assert page.rects_in_svg == expected
    for svg in re.findall(r"<svg\b.*?</svg>", html, re.S):  # each chart is well-formed XML too
        root = ElementTree.fromstring(svg)
        assert root.tag == "svg" and root.find("rect") is not None
    text = " ".join(page.text)
    for label in (IDENTITY, FINANCIAL, NO_PARTY, "lawfirm", SMTP, "已阻止 Blocked"):
        assert label in text
    assert "11-02" in text and "11-03" in text  # the per-day chart labels days MM-DD


def test_the_page_is_self_contained(events, redact):
    page = Page(render_html(report_of(events, redact)))
    assert not page.names() & {"script", "link", "img", "iframe", "object", "embed", "base"}
    for tag, attrs in page.tags:
        assert not {"src", "href", "srcset", "action", "xlink:href"} & set(attrs), tag
        assert not any(k.startswith("on") for k in attrs), tag
    html = render_html(report_of(events, redact))
    assert "url(" not in html and "@import" not in html


def test_bars_are_proportional_to_counts():
    chart = bar_chart(
        "t", {"a": Counter(blocked=2), "b": Counter(blocked=1, masked=3)}, ("blocked", "masked")
    )
    widths = {s.title: s.width for s in chart.segments}
    one = widths["b — 已阻止 Blocked: 1"]
    assert widths["a — 已阻止 Blocked: 2"] == pytest.approx(2 * one)
    assert widths["b — 已脱敏 Masked: 3"] == pytest.approx(3 * one)
    assert [t.text for t in chart.grid][-1] >= "4"


def test_an_empty_period_still_makes_a_page(redact):
    r = build_report([], [], SINCE, UNTIL, now=NOW, redact=redact)
    page = Page(render_html(r))
    assert page.svgs == 4
    assert "本期无数据 Nothing in this period" in " ".join(page.text)


# -- nothing raw, nothing injected --------------------------------------------------------------


def test_generated_id2_is_a_valid_resident_id():
    from stdnum.cn import ric

    assert ric.is_valid(ID2) and ric.is_valid(ID)


def test_raw_values_planted_anywhere_never_reach_the_page(redact):
    """Every free-text field an event or hold can carry, salted with raw values."""
    salt = f"{ID} {CARD} {PHONE} {ID2.lower()}"
    leaky_finding = {"type": "cn_resident_id", "class": f"identity {ID}", "masked": ID,
                     "hash": ID2, "location": f"field {ID}"}  # fmt: skip
    events = stored(
        [
            Event(time=T0.isoformat(), type="http.request", channel=f"https {PHONE}",
                  user=f"alice {ID}", destination=f"up.example/?id={ID}", party=f"p {CARD}",
                  action="block", rule=f"rule {ID}", reason=salt, detail=salt,
                  incident=f"LG-{ID}", findings=(leaky_finding,)).to_dict(),
            Event(time=T0.isoformat(), type="login.anomaly", user=ID2, source_ip=salt,
                  source_zone=salt, reason=salt).to_dict(),
            Event(time=T0.isoformat(), type="transfer.anomaly", user=CARD,
                  detail=salt).to_dict(),
        ]
    )  # fmt: skip
    holds = [Hold("account", f"acct {ID}", reason=salt, since=T0.timestamp(), by=PHONE)]
    html = render_html(
        build_report(events, holds, SINCE, UNTIL, now=NOW, redact=redact, title=f"T {ID}")
    )
    for raw in (*RAW, ID2.lower()):
        assert raw not in html
    assert ID_MASKED in html  # the masked form stands where the raw one was


def test_hostile_fields_are_text_not_markup(redact):
    events = stored(
        [
            Event(time=T0.isoformat(), type="http.request", channel="https",
                  destination=HOSTILE, user=HOSTILE, party=HOSTILE, rule=HOSTILE,
                  action="block", incident="LG-1", findings=(
                      {"type": "x", "class": HOSTILE, "masked": "m", "hash": "h"},)).to_dict(),
            Event(time=T0.isoformat(), type="login.anomaly", user=HOSTILE,
                  reason=HOSTILE).to_dict(),
        ]
    )  # fmt: skip
    holds = [Hold("account", HOSTILE, reason=HOSTILE, since=T0.timestamp())]
    html = render_html(
        build_report(events, holds, SINCE, UNTIL, now=NOW, redact=redact, title=HOSTILE)
    )
    page = Page(html)
    assert not page.names() & {"script", "img"}
    for _tag, attrs in page.tags:
        assert not any(k.startswith("on") for k in attrs)
    text = "".join(page.text)
    assert text.count(HOSTILE) >= 8  # shown, as text: title, tables, chart labels, holds
