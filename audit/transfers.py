"""Anomalous transfers: what one sender sends out, added up across transfers.

    watcher = TransferWatcher(store, alerts, audit_log.record, lambda: policy.watch.transfers)
    audit_log.add_watcher(watcher)

It watches the decision events of every door (http.request, websocket.message,
smtp.message) whose content went out (allow, report, mask, encrypt) to the
external zone, per sender — the user, else the source address — and judges
five rules, each set in the policy's watch.yaml (`TransferWatch`):

    external_bytes   bytes sent within the window
    distinct_pii     distinct PII values (their keyed hashes) within the window:
                     a slow leak of small allowed uploads adds up here
    new_destination  a host (mail: a domain) this sender never sent to, once
                     the sender's history is older than the baseline's learning days
    off_hours        sending outside working hours, in the policy's time zone
    baseline         today's bytes far above the sender's own past days

A rule crossed records a "transfer.anomaly" event (with an incident id) and
raises an alert, once per rule, sender and window — the counters live in the
shared store, so several gateways agree. With action "hold" the sender is
held (Hold kind "sender") and "sender.held" recorded: the proxy and the relay
then refuse that sender's external sending until `leakguard senders release`.
Counters hold keyed hashes and numbers only, never a value.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from audit.alert import Alert, AlertSender
from audit.chain import iso
from audit.events import Event, new_incident_id
from audit.store import AuditStore, Hold
from audit.watch_settings import OffHours, TransferWatch
from rules.policy import Action, Verdict

log = logging.getLogger("leakguard.transfers")

DECISION_TYPES = frozenset({"http.request", "websocket.message", "smtp.message"})
SENDING_ACTIONS = frozenset({"allow", "report", "mask", "encrypt"})
EXTERNAL = "external"
DAY = 86400.0
HISTORY_DAYS = 30  # the baseline looks this far back
HELD_PREFIX = "held for review"


def sender_of(event: dict) -> str:
    """Who a transfer is counted against: the user, else the source address."""
    return str(event.get("user") or event.get("source_ip") or "")


def sender_hold(store: AuditStore, user: str | None, source_ip: str | None, now: float):
    """The active sender hold for this user (else this address), or None. For the doors."""
    for name in (user, source_ip):
        if name:
            hold = store.get_hold("sender", str(name))
            if hold is not None and hold.active(now):
                return hold
    return None


def held_reason(hold: Hold) -> str:
    """What the block page and the 550 say: why, without PII (the hold's reason has none)."""
    return f"{HELD_PREFIX}: {hold.reason} (since {iso(hold.since)}; the security team releases)"


class TransferWatcher:
    def __init__(
        self,
        store: AuditStore,
        alerts: AlertSender,
        record: Callable[[dict], None],
        settings_getter: Callable[[], TransferWatch],
        clock: Callable[[], float] = time.time,
        *,
        timezone: Callable[[], str] = lambda: "Asia/Shanghai",
    ) -> None:
        self.store = store
        self.alerts = alerts
        self.record = record
        self.settings = settings_getter
        self.clock = clock
        self.timezone = timezone
        self._baselines: dict[tuple[str, date], float | None] = {}

    def __call__(self, event: dict) -> None:
        """An AuditLog watcher: sees every stored event; never raises."""
        try:
            if not self.counts(event):
                return
            self.observe(event)
        except Exception:  # a detector failure must not lose the decision or its record
            log.exception("transfer watch failed on a %s event", event.get("type", "?"))

    @staticmethod
    def counts(event: dict) -> bool:
        return (
            event.get("type") in DECISION_TYPES
            and event.get("action") in SENDING_ACTIONS
            and event.get("destination_zone") == EXTERNAL
            and bool(sender_of(event))
        )

    def observe(self, event: dict) -> None:
        settings = self.settings()
        who = sender_of(event)
        now = self.clock()
        size = max(0, int(event.get("size") or 0))
        window = settings.window
        local = datetime.fromtimestamp(now, ZoneInfo(self.timezone()))

        if settings.external_bytes is not None:
            total = self.store.add(f"transfer.bytes:{who}", now, window, size)
            if total >= settings.external_bytes.limit:
                self.breach(
                    event, "external_bytes", settings.external_bytes.action, window,
                    f"{who} sent {_bytes(total)} to external destinations within "
                    f"{_duration(window)} (limit {_bytes(settings.external_bytes.limit)})",
                    {"bytes": total, "limit": settings.external_bytes.limit},
                )  # fmt: skip

        if settings.distinct_pii is not None:
            hashes = {
                f"{f.get('type', '')}:{f['hash']}"
                for f in event.get("findings") or ()
                if f.get("hash")
            }
            count = 0
            for member in sorted(hashes):
                count = self.store.distinct(f"transfer.pii:{who}", member, now, window)
            if hashes and count >= settings.distinct_pii.limit:
                self.breach(
                    event, "distinct_pii", settings.distinct_pii.action, window,
                    f"{who} sent {count} distinct sensitive values to external destinations "
                    f"within {_duration(window)} (limit {settings.distinct_pii.limit:g})",
                    {"distinct": count, "limit": settings.distinct_pii.limit},
                )  # fmt: skip

        first_day = self._first_day(who, now)
        learning_days = settings.baseline.learn_days if settings.baseline else 7
        if settings.new_destination != "off":
            for destination in _destinations(event):
                new = self.store.first_seen(f"transfer.destinations:{who}", destination)
                if new and now - first_day >= learning_days * DAY:
                    self.breach(
                        event, "new_destination", settings.new_destination, window,
                        f"{who} sent to {destination}, a destination never used before",
                        {"destination": destination},
                        key_extra=destination,
                    )  # fmt: skip

        if settings.off_hours is not None and not _working(settings.off_hours, local):
            self.breach(
                event, "off_hours", settings.off_hours.action, window,
                f"{who} sent to an external destination at {local:%a %H:%M} "
                f"({local.tzname()}), outside working hours",
                {"local_time": local.isoformat(timespec="minutes")},
            )  # fmt: skip

        if settings.baseline is not None:
            self._baseline(event, settings, who, now, local.date(), size, window)

    # -- the baseline ------------------------------------------------------------------

    def _first_day(self, who: str, now: float) -> float:
        """When this sender was first seen sending out (remembered in the store)."""
        key = f"transfer.first:{who}"
        known = self.store.members(key)
        if not known:
            self.store.first_seen(key, repr(now))
            known = self.store.members(key)
        return min(float(m) for m in known)

    def _baseline(self, event, settings, who, now, today, size, window) -> None:
        b = settings.baseline
        day_key = f"transfer.day:{who}:{today.isoformat()}"
        today_total = self.store.add(day_key, now, (HISTORY_DAYS + 2) * DAY, size)
        self.store.first_seen(f"transfer.days:{who}", today.isoformat())
        if today_total < b.min_bytes:
            return  # below this, never an anomaly (and the history need not be read)
        usual = self._usual(who, now, today, b.learn_days)
        if usual is None or today_total < b.factor * usual:
            return
        self.breach(
            event, "baseline", b.action, window,
            f"{who} sent {_bytes(today_total)} to external destinations today, "
            f"{today_total / max(usual, 1):.0f}× the usual {_bytes(usual)} a day",
            {"today_bytes": today_total, "usual_bytes": usual, "factor": b.factor},
        )  # fmt: skip

    def _usual(self, who: str, now: float, today: date, learn_days: int) -> float | None:
        """The median of the sender's past sending days (the last HISTORY_DAYS); None
        until there are `learn_days` of them. Cached per day: the past does not change."""
        cached = (who, today)
        if cached in self._baselines:
            return self._baselines[cached]
        oldest = today - timedelta(days=HISTORY_DAYS)
        days = sorted(
            d
            for d in self.store.members(f"transfer.days:{who}")
            if oldest.isoformat() <= d < today.isoformat()
        )
        usual = None
        if len(days) >= learn_days:
            window = (HISTORY_DAYS + 2) * DAY
            totals = [self.store.add(f"transfer.day:{who}:{d}", now, window, 0) for d in days]
            usual = statistics.median(totals)
        self._baselines = {k: v for k, v in self._baselines.items() if k[1] == today}
        self._baselines[cached] = usual
        return usual

    # -- a rule crossed -------------------------------------------------------------------

    def breach(
        self,
        event: dict,
        rule: str,
        action: str,
        window: float,
        summary: str,
        detail: dict,
        *,
        key_extra: str = "",
    ) -> None:
        """Record, alert and (action "hold") hold — once per rule, sender and window."""
        if action not in ("alert", "hold"):
            return
        who = sender_of(event)
        now = self.clock()
        once = f"transfer.breached:{rule}:{who}" + (f":{key_extra}" if key_extra else "")
        if self.store.add(once, now, window, 1) > 1:
            return  # already raised within this window
        incident = new_incident_id(datetime.fromtimestamp(now, UTC))
        kind = f"transfer.{rule}"
        self.record(
            self._event(event, "transfer.anomaly", kind, action, summary, incident, now)
            | {"anomaly": {"rule": rule, "window": window, **detail}}
        )
        held = action == "hold" and self.hold(event, summary, now, incident)
        self.alerts.send(
            Alert(
                kind=kind,
                key=f"{kind}:{who}",
                summary=summary + ("; further external sending held for review" if held else ""),
                severity="critical" if action == "hold" else "warning",
                user=str(event.get("user") or ""),
                source_ip=str(event.get("source_ip") or ""),
                detail={"rule": rule, "action": action, "incident": incident, **detail},
                time=now,
            )
        )

    def hold(self, event: dict, why: str, now: float, incident: str) -> bool:
        who = sender_of(event)
        current = self.store.get_hold("sender", who)
        if current is not None and current.active(now):
            return False
        self.store.put_hold(Hold(kind="sender", name=who, reason=why, since=now))
        self.record(self._event(event, "sender.held", "transfer.hold", "hold", why, incident, now))
        return True

    @staticmethod
    def _event(
        event: dict, type_: str, rule: str, action: str, reason: str, incident: str, now: float
    ) -> dict:
        return Event(
            type=type_,
            channel=str(event.get("channel") or ""),
            source_ip=str(event.get("source_ip") or ""),
            user=str(event.get("user") or ""),
            source_zone=str(event.get("source_zone") or ""),
            destination=str(event.get("destination") or ""),
            destination_zone=str(event.get("destination_zone") or ""),
            action=action,
            rule=rule,
            reason=reason,
            incident=incident,
            detail=f"after event {event.get('id', '')}",
            time=iso(now),
        ).to_dict()


def _destinations(event: dict) -> list[str]:
    """Hosts as they are; mail recipients (masked a***@domain) by their domain."""
    text = str(event.get("destination") or "")
    out = []
    for item in text.split(","):
        item = item.strip().lower()
        if item:
            out.append(item.rpartition("@")[2] if event.get("channel") == "smtp" else item)
    return sorted(set(out))


def _working(hours: OffHours, local: datetime) -> bool:
    t = local.time()
    if hours.start <= hours.end:
        inside = hours.start <= t < hours.end
    else:  # a shift across midnight, e.g. 22:00-06:00
        inside = t >= hours.start or t < hours.end
    return local.weekday() in hours.days and inside


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _duration(seconds: float) -> str:
    if seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


# -- enforcement, for the doors (proxy, relay) -------------------------------------------

HELD_RULE = "sender-held"
HELD_MESSAGE = (
    "已暂停：您向外部发送数据的权限正等待信息安全部审核。"
    "Held for review: your sending to external destinations is paused until the security "
    "team has looked at it."
)

HoldLookup = Callable[[str | None, str | None], str | None]


def hold_lookup(store: AuditStore, clock: Callable[[], float] = time.time) -> HoldLookup:
    """(user, source_ip) → the reason the sender is held, or None: what the doors ask."""

    def lookup(user: str | None, source_ip: str | None) -> str | None:
        hold = sender_hold(store, user, source_ip, clock())
        return held_reason(hold) if hold is not None else None

    return lookup


def held_verdict(
    verdict: Verdict, lookup: HoldLookup | None, user: object, source_ip: object
) -> Verdict:
    """The verdict, or a block when content would go out to the external zone from a held
    sender. The store is asked only for external sending that would go through."""
    if lookup is None or verdict.action.holds or verdict.place.destination_zone != EXTERNAL:
        return verdict
    try:
        reason = lookup(str(user) if user else None, str(source_ip) if source_ip else None)
    except Exception as err:  # the store is unreachable: the hold cannot be checked
        log.error("sender hold check failed (%s): external sending refused", type(err).__name__)
        reason = f"{HELD_PREFIX}: the hold list cannot be read ({type(err).__name__})"
    if reason is None:
        return verdict
    return replace(
        verdict, action=Action.BLOCK, rule=HELD_RULE, reason=reason, message=HELD_MESSAGE
    )


def release_sender(store: AuditStore, name: str) -> Hold | None:
    """Lift a sender hold; the windows it was judged on start over, so the sender is not
    held again at the next transfer for what the security team has just reviewed."""
    released = store.drop_hold("sender", name)
    if released is not None:
        for key in ("transfer.bytes", "transfer.pii"):
            store.reset(f"{key}:{name}")
        for rule in ("external_bytes", "distinct_pii"):
            store.reset(f"transfer.breached:{rule}:{name}")
    return released
