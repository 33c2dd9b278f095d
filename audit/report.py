"""The periodic information-security report a firm sends its clients: figures, then HTML.

    report = build_report(store.events(), store.holds("account"), since, until, now=now)
    html = render_html(report)          # one self-contained file: inline CSS and SVG

Figures: every content decision in the period (an HTTP request, a WebSocket
message, a mail's recipient group — "a transfer") counted by outcome
(blocked, held for review, masked, encrypted, delivered) per data class, per
party, per channel and per day; login failures and anomalies; accounts
frozen; transfer anomalies; the latest blocked or held transfers.

Nothing raw reaches the page: the figures are counts and names, every string
taken from an event passes a `Redactor` (masked values stay masked, a raw ID
that should never have been there is masked here), and the template engine
escapes every field — a hostile Host header is text, not markup.

The charts are small SVG bar charts drawn here (geometry in Python, markup
in the template) rather than a charting library: four rectangles and a few
labels per bar need no dependency, print sharply, and work offline.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from jinja2 import Environment, PackageLoader, StrictUndefined

from audit.incidents import Redactor, event_time, local, text
from audit.store import Hold

TRANSFER_TYPES = ("http.request", "websocket.message", "smtp.message")
OUTCOMES = ("blocked", "quarantined", "masked", "encrypted", "delivered")
OUTCOME_OF_ACTION = {
    "block": "blocked",
    "quarantine": "quarantined",
    "mask": "masked",
    "encrypt": "encrypted",
    "allow": "delivered",
    "report": "delivered",  # allowed; recorded because a report-only rule matched
}
OTHER = "other"  # an action this report does not know: counted, never dropped
OUTCOME_LABELS = {
    "blocked": "已阻止 Blocked",
    "quarantined": "待审核 Held for review",
    "masked": "已脱敏 Masked",
    "encrypted": "已加密 Encrypted",
    "delivered": "已放行 Delivered",
    OTHER: "其他 Other",
}
COLOURS = {  # print-safe, distinguishable in grey too
    "blocked": "#c0392b",
    "quarantined": "#e67e22",
    "masked": "#2980b9",
    "encrypted": "#16a085",
    "delivered": "#95a5a6",
    OTHER: "#7f8c8d",
}
CLASS_LABELS = {  # the shipped classes (rules/default/classes.yaml); others show their name
    "identity": "身份信息 Identity",
    "financial": "金融信息 Financial",
    "business-secret": "商业秘密 Business secret",
    "core-secret": "核心数据 Core secret",
    "contact": "联系方式 Contact",
    "organisation": "机构信息 Organisation",
}
CHANNEL_LABELS = {
    "http": "网页 HTTP",
    "https": "网页 HTTPS",
    "websocket": "WebSocket",
    "smtp": "邮件 Mail (SMTP)",
}
NO_CLASS = "未识别敏感信息 No sensitive data"
NO_PARTY = "非登记第三方 No approved party"
COUNTED_TYPES = {  # event type → the figure it adds to
    # the login watch records every login the gateway sees (SMTP AUTH, proxy, web apps);
    # the relay's own "smtp.auth.failure" repeats the SMTP ones, so it is not counted again
    "login.failure": "login_failures",
    "login.anomaly": "login_anomalies",
    "account.frozen": "accounts_frozen",
    "account.unfrozen": "accounts_unfrozen",
    "address.blocked": "addresses_blocked",
    "transfer.anomaly": "transfer_anomalies",
    "sender.held": "senders_held",
    "sender.released": "senders_released",
    "alert": "alerts",
}
ANOMALY_TYPES = ("login.anomaly", "account.frozen", "address.blocked")
TRANSFER_ANOMALY_TYPES = ("transfer.anomaly", "sender.held")
LATEST = 30  # rows in each "latest" table


@dataclass
class Report:
    title: str
    since: datetime
    until: datetime
    generated: datetime
    party: str = ""
    totals: Counter = field(default_factory=Counter)
    by_class: dict[str, Counter] = field(default_factory=dict)
    by_party: dict[str, Counter] = field(default_factory=dict)
    by_channel: dict[str, Counter] = field(default_factory=dict)
    by_day: dict[str, Counter] = field(default_factory=dict)
    would_block: int = 0  # report-only rules that would have blocked
    connections_blocked: int = 0  # zone isolation (proxy.connect) blocks
    counts: Counter = field(default_factory=Counter)  # COUNTED_TYPES figures
    login_rows: list[dict] = field(default_factory=list)
    transfer_anomaly_rows: list[dict] = field(default_factory=list)
    held_rows: list[dict] = field(default_factory=list)  # latest blocked or held transfers
    frozen: list[dict] = field(default_factory=list)  # accounts frozen when the report was made

    @property
    def transfers(self) -> int:
        return sum(self.totals.values())

    @property
    def outcomes(self) -> tuple[str, ...]:
        """The outcome columns: the five, plus "other" only when something needs it."""
        return (*OUTCOMES, OTHER) if self.totals[OTHER] else OUTCOMES


def outcome(event: dict) -> str:
    return OUTCOME_OF_ACTION.get(text(event.get("action")), OTHER)


def data_classes(event: dict) -> list[str]:
    """The data classes of an event's findings, each once; detector name when unclassed."""
    found = []
    findings = event.get("findings")
    for f in findings if isinstance(findings, list | tuple) else ():
        if isinstance(f, dict):
            name = text(f.get("class") or f.get("type") or "?")
            if name not in found:
                found.append(name)
    return found


def build_report(
    events: Iterable[dict],
    frozen: Iterable[Hold],
    since: datetime,
    until: datetime,
    *,
    now: datetime,
    party: str = "",
    title: str = "",
    redact: Redactor | None = None,
) -> Report:
    """Count the events in [since, until); `party` narrows the transfers to one party."""
    redact = redact or Redactor()
    report = Report(
        title=redact(title) or "信息安全报告 Information security report",
        since=since,
        until=until,
        generated=now,
        party=redact(party),
    )
    held: list[dict] = []
    for e in events:
        if not isinstance(e, dict):
            continue
        when = event_time(e)
        if when is None or not since <= when < until:
            continue
        kind = text(e.get("type"))
        if kind in TRANSFER_TYPES:
            if party and text(e.get("party")).casefold() != party.casefold():
                continue
            _count_transfer(report, e, when, redact)
            if outcome(e) in ("blocked", "quarantined"):
                held.append(e)
        elif kind == "proxy.connect" and text(e.get("action")) == "block":
            report.connections_blocked += 1
        if kind in COUNTED_TYPES:
            report.counts[COUNTED_TYPES[kind]] += 1
        if kind in ANOMALY_TYPES:
            report.login_rows.append(_row(e, redact))
        elif kind in TRANSFER_ANOMALY_TYPES:
            report.transfer_anomaly_rows.append(_row(e, redact))
    report.login_rows = report.login_rows[-LATEST:]
    report.transfer_anomaly_rows = report.transfer_anomaly_rows[-LATEST:]
    report.held_rows = [_held_row(e, redact) for e in held[-LATEST:]]
    now_ts = now.timestamp()
    report.frozen = [
        {
            "name": redact(h.name),
            "since": local(datetime.fromtimestamp(h.since).astimezone().isoformat()),
            "until": (
                local(datetime.fromtimestamp(h.until).astimezone().isoformat())
                if h.until
                else "解冻前 until released"
            ),
            "reason": redact(h.reason),
            "by": redact(h.by),
        }
        for h in frozen
        if h.active(now_ts)
    ]
    return report


def _count_transfer(report: Report, e: dict, when: datetime, redact: Redactor) -> None:
    result = outcome(e)
    report.totals[result] += 1
    if e.get("would_block") is True:
        report.would_block += 1
    for name in data_classes(e) or [NO_CLASS]:
        label = CLASS_LABELS.get(name) or redact(name)
        report.by_class.setdefault(label, Counter())[result] += 1
    party = redact(e.get("party")) or NO_PARTY
    report.by_party.setdefault(party, Counter())[result] += 1
    channel = text(e.get("channel"))
    label = CHANNEL_LABELS.get(channel) or redact(channel) or "?"
    report.by_channel.setdefault(label, Counter())[result] += 1
    day = when.astimezone().strftime("%Y-%m-%d")
    report.by_day.setdefault(day, Counter())[result] += 1


def _row(e: dict, redact: Redactor) -> dict:
    return {
        "time": local(text(e.get("time"))),
        "type": redact(e.get("type")),
        "user": redact(e.get("user")),
        "source_ip": redact(e.get("source_ip")),
        "zone": redact(e.get("source_zone")),
        "reason": redact(e.get("reason") or e.get("detail")),
    }


def _held_row(e: dict, redact: Redactor) -> dict:
    return {
        "time": local(text(e.get("time"))),
        "incident": redact(e.get("incident")),
        "user": redact(e.get("user")),
        "channel": redact(e.get("channel")),
        "destination": redact(e.get("destination")),
        "classes": ", ".join(CLASS_LABELS.get(c) or redact(c) for c in data_classes(e)),
        "value_count": _count_values(e),
        "rule": redact(e.get("rule")),
        "outcome": OUTCOME_LABELS[outcome(e)],
    }


def _count_values(e: dict) -> int:
    """Distinct sensitive values in one transfer (by keyed hash): a count, never a value."""
    findings = e.get("findings")
    hashes = {
        text(f.get("hash") or f.get("masked"))
        for f in (findings if isinstance(findings, list | tuple) else ())
        if isinstance(f, dict)
    }
    return len(hashes)


# -- charts: geometry here, markup in the template ---------------------------------------------


@dataclass(frozen=True)
class Segment:
    x: float
    y: float
    width: float
    height: float
    colour: str
    title: str  # tooltip and accessible name: "label — outcome: count"


@dataclass(frozen=True)
class Label:
    x: float
    y: float
    text: str
    anchor: str = "start"


@dataclass(frozen=True)
class Chart:
    title: str
    width: int
    height: int
    segments: tuple[Segment, ...]
    labels: tuple[Label, ...]
    grid: tuple[Label, ...]  # tick values; x (or y) places the line
    legend: tuple[tuple[str, str], ...]  # (colour, label)
    horizontal: bool = True


def _ticks(top: int, count: int = 4) -> list[int]:
    """Round tick values (1, 2, 5 × 10^k steps) from 0 to at least `top`."""
    if top <= 0:
        return [0, 1]
    raw = top / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    step = max(1, int(step))
    return list(range(0, top + step, step))[: count + 2]


def bar_chart(title: str, rows: dict[str, Counter], outcomes: tuple[str, ...]) -> Chart:
    """Horizontal stacked bars: one per row, one colour per outcome, total at the end."""
    label_w, bar_h, gap, top_pad, width = 210, 18, 8, 8, 680
    plot_w = width - label_w - 60
    ticks = _ticks(max((sum(c.values()) for c in rows.values()), default=0))
    scale = plot_w / ticks[-1]
    segments, labels = [], []
    for i, (name, counts) in enumerate(rows.items()):
        y = top_pad + i * (bar_h + gap)
        labels.append(Label(label_w - 8, y + bar_h * 0.75, _short(name), "end"))
        x = float(label_w)
        for o in outcomes:
            if counts[o]:
                w = counts[o] * scale
                segments.append(
                    Segment(
                        x, y, w, bar_h, COLOURS[o], f"{name} — {OUTCOME_LABELS[o]}: {counts[o]}"
                    )
                )
                x += w
        labels.append(Label(x + 6, y + bar_h * 0.75, str(sum(counts.values()))))
    plot_h = top_pad + len(rows) * (bar_h + gap)
    grid = tuple(Label(label_w + t * scale, plot_h + 14, str(t), "middle") for t in ticks)
    return Chart(
        title=title,
        width=width,
        height=plot_h + 22,
        segments=tuple(segments),
        labels=tuple(labels),
        grid=grid,
        legend=tuple((COLOURS[o], OUTCOME_LABELS[o]) for o in outcomes),
    )


def _short(name: str, limit: int = 32) -> str:
    """A row label that fits left of the bars (the tables below give it whole)."""
    return name if len(name) <= limit else name[: limit - 1] + "…"


def day_chart(title: str, days: dict[str, Counter], outcomes: tuple[str, ...]) -> Chart:
    """Vertical stacked columns, one per day of the period (days without events are zero)."""
    width, height, left, bottom, top_pad = 680, 220, 40, 34, 10
    plot_w, plot_h = width - left - 10, height - bottom - top_pad
    ticks = _ticks(max((sum(c.values()) for c in days.values()), default=0))
    scale = plot_h / ticks[-1]
    n = max(len(days), 1)
    slot = plot_w / n
    col = max(2.0, slot * 0.7)
    segments, labels = [], []
    every = math.ceil(n / 12)  # at most about twelve date labels
    for i, (day, counts) in enumerate(days.items()):
        x = left + i * slot + (slot - col) / 2
        y = top_pad + plot_h
        for o in outcomes:
            if counts[o]:
                h = counts[o] * scale
                y -= h
                segments.append(
                    Segment(x, y, col, h, COLOURS[o], f"{day} — {OUTCOME_LABELS[o]}: {counts[o]}")
                )
        if i % every == 0:
            labels.append(Label(x + col / 2, height - bottom + 16, day[5:], "middle"))
    grid = tuple(Label(left - 6, top_pad + plot_h - t * scale, str(t), "end") for t in ticks)
    return Chart(
        title=title,
        width=width,
        height=height,
        segments=tuple(segments),
        labels=tuple(labels),
        grid=grid,
        legend=tuple((COLOURS[o], OUTCOME_LABELS[o]) for o in outcomes),
        horizontal=False,
    )


def _every_day(report: Report) -> dict[str, Counter]:
    """by_day with the period's empty days filled in (long periods: as counted)."""
    first = report.since.astimezone().date()
    last = (report.until - timedelta(microseconds=1)).astimezone().date()
    if (last - first).days > 400:
        return dict(sorted(report.by_day.items()))
    days, d = {}, first
    while d <= last:
        key = d.isoformat()
        days[key] = report.by_day.get(key, Counter())
        d += timedelta(days=1)
    return days


def _sorted(rows: dict[str, Counter]) -> dict[str, Counter]:
    return dict(sorted(rows.items(), key=lambda kv: (-sum(kv[1].values()), kv[0])))


# -- HTML ----------------------------------------------------------------------------------------


def render_html(report: Report) -> str:
    env = Environment(
        loader=PackageLoader("audit", "templates"),
        autoescape=True,  # every field is untrusted input
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    outcomes = report.outcomes
    by_class, by_party, by_channel = (
        _sorted(report.by_class),
        _sorted(report.by_party),
        _sorted(report.by_channel),
    )
    charts = {
        "day": day_chart("每日传输 Transfers per day", _every_day(report), outcomes),
        "class": bar_chart("按数据类别 By data class", by_class, outcomes),
        "party": bar_chart("按第三方 By party", by_party, outcomes),
        "channel": bar_chart("按渠道 By channel", by_channel, outcomes),
    }
    return env.get_template("report.html.j2").render(
        r=report,
        outcomes=outcomes,
        labels=OUTCOME_LABELS,
        colours=COLOURS,
        tables={
            "class": ("数据类别 Data class", by_class),
            "party": ("第三方 Party", by_party),
            "channel": ("渠道 Channel", by_channel),
        },
        charts=charts,
        period=(_stamp(report.since), _stamp(report.until)),
        generated=_stamp(report.generated),
    )


def _stamp(when: datetime) -> str:
    return when.astimezone().strftime("%Y-%m-%d %H:%M %Z").strip()
