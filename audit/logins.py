"""Anomalous logins: brute force, password spraying, logins from unusual places and hours.

    watcher = LoginWatcher(store, alerts, record, lambda: policy.watch.logins)
    if (refusal := watcher.check("smtp", "alice", "10.1.2.3")) is not None:
        answer 535 without looking at the password        # frozen account, blocked address
    ok = users.verify(...)
    if (refusal := watcher.attempt("smtp", "alice", "10.1.2.3", ok=ok)) is not None:
        answer 535 even though the password was right     # this login froze the account

Every door that sees a login (SMTP AUTH at the relay, proxy authentication, the
web applications watch.yaml names) calls the same two methods, so one account
has one failure count whichever door is hammered. State lives in the audit
store (counters and holds), so several gateways sharing a Redis share it, and
`leakguard accounts unfreeze` takes effect at the next login.

Decisions, each an event (never a password) and, where it matters, an alert:
- `failures.count` failures for one account within `failures.within` → freeze
  it (Hold kind "account", until released); a success resets the count.
- failures for `spraying.accounts` distinct accounts from one address within
  `spraying.within` → block the address for `block_for`, times `escalate` for
  each repeat (Hold.level), at most `max_block`; an address quiet for
  `max_block` after its last cool-down starts over at `block_for`.
- a successful login from a subnet (/24, /64) or zone the account never used,
  from the external zone, or at an hour of the day it never used (once it has
  `learn_logins` logins to judge by) → `login.anomaly`, alert, freeze on "hold".
- with `geoip_database` (a MaxMind-format file the firm supplies): a country the
  account never used, or a login farther from the last one than `impossible_kmh`
  allows → acted on like a login from the external zone.
The very first login of an account teaches its places; it is not an anomaly.

Account names are keys as typed (trimmed, lower-case); in events and alerts any
personal data in them (a phone number or ID number used as a login, a mail
address) is shown masked, like every other value the gateway records.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from audit.alert import Alert, AlertSender
from audit.chain import iso
from audit.events import Event
from audit.geo import Location, distance_km, open_geo
from audit.store import AuditStore, Hold
from audit.watch_settings import LoginWatch

log = logging.getLogger("leakguard.logins")

EXTERNAL = "external"  # rules.policy.model.EXTERNAL: the zone of every unclaimed address
LEARN_WINDOW = 400 * 86400.0  # successful logins are counted over this long, until learned
MIN_TRAVEL_KM = 500.0  # closer than this, a city database's error: never "impossible travel"
MAX_NAME = 128  # longer account names are cut: a name is a key, not a payload

Record = Callable[[Event | dict], None]


@dataclass(frozen=True)
class Refusal:
    """Why a login is refused regardless of the password. Tell the client only "invalid
    credentials": a guesser must not learn that the account exists or is frozen."""

    why: str  # "account frozen" | "address blocked"
    hold: Hold


class LoginWatcher:
    def __init__(
        self,
        store: AuditStore,
        alerts: AlertSender | None,
        record: Record,
        settings_getter: Callable[[], LoginWatch],
        clock: Callable[[], float] = time.time,
        *,
        zone_of: Callable[[str], str] | None = None,
        timezone_getter: Callable[[], str] | None = None,
    ) -> None:
        self.store = store
        self.alerts = alerts
        self.record = record
        self.settings = settings_getter
        self.clock = clock
        self.zone_of = zone_of  # source IP → zone name, when a caller does not know it
        self.timezone = timezone_getter or (lambda: "UTC")

    @classmethod
    def for_policy(cls, store, alerts, record, holder, clock=time.time) -> LoginWatcher:
        """Settings, zones and time zone read from the policy in use at each login."""

        def zone_of(ip: str) -> str:
            try:
                address = ipaddress.ip_address(ip)
            except ValueError:
                return EXTERNAL
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
                address = address.ipv4_mapped
            places = holder.policy.compiled.places
            return places.zone_ips.longest(address) or EXTERNAL

        return cls(
            store,
            alerts,
            record,
            lambda: holder.policy.watch.logins,
            clock,
            zone_of=zone_of,
            timezone_getter=lambda: holder.policy.timezone,
        )

    # -- before the password is looked at ------------------------------------------------

    def check(
        self, channel: str, account: str, source_ip: str, source_zone: str | None = None
    ) -> Refusal | None:
        """A blocked address or a frozen account: refuse without checking the password
        (and record the refused attempt; it does not count as a failure)."""
        now = self.clock()
        account = normal_account(account)
        refusal = None
        hold = self.store.get_hold("address", source_ip) if source_ip else None
        if hold is not None and hold.active(now):
            refusal = Refusal("address blocked", hold)
        elif account:
            hold = self.store.get_hold("account", account)
            if hold is not None and hold.active(now):
                refusal = Refusal("account frozen", hold)
        if refusal is not None:
            zone = self._zone(source_ip, source_zone)
            self._event(
                "login.failure", channel, account, source_ip, zone, now,
                action="refuse", reason=refusal.why,
                detail=f"{refusal.hold.kind} held since {iso(refusal.hold.since)}: "
                f"{refusal.hold.reason}",
            )  # fmt: skip
        return refusal

    def frozen(self, account: str) -> Hold | None:
        """The account's hold if it is in force now (the proxy's "frozen" page asks this)."""
        hold = self.store.get_hold("account", normal_account(account))
        return hold if hold is not None and hold.active(self.clock()) else None

    # -- after ---------------------------------------------------------------------------

    def attempt(
        self,
        channel: str,
        account: str,
        source_ip: str,
        source_zone: str | None = None,
        *,
        ok: bool,
    ) -> Refusal | None:
        """Record a login whose password was checked. Returns a Refusal when this very
        login froze the account (an anomaly the policy holds), so the door refuses it."""
        now = self.clock()
        settings = self.settings()
        account = normal_account(account)
        zone = self._zone(source_ip, source_zone)
        self._event(
            "login.success" if ok else "login.failure", channel, account, source_ip, zone, now,
            action="allow" if ok else "refuse",
            reason="" if ok else "wrong login or password",
        )  # fmt: skip
        if not ok:
            self._failed(settings, channel, account, source_ip, zone, now)
            return None
        self.store.reset(_key("fail", account))
        return self._unusual(settings, channel, account, source_ip, zone, now)

    def _failed(self, s: LoginWatch, channel, account, ip, zone, now) -> None:
        if account:
            failures = self.store.add(_key("fail", account), now, s.failures.within)
            if failures >= s.failures.count:
                self._brute_force(s, channel, account, ip, zone, now, int(failures))
        if ip and account:
            accounts = self.store.distinct(_key("spray", ip), account, now, s.spraying.within)
            if accounts >= s.spraying.accounts:
                self._spraying(s, channel, ip, zone, now, accounts)

    def _brute_force(self, s: LoginWatch, channel, account, ip, zone, now, failures) -> None:
        why = f"{failures} failed logins within {_span(s.failures.within)}"
        if s.failures.freeze:
            if self.frozen(account) is None:
                self._freeze(account, why, channel, ip, zone, now)
            self.store.reset(_key("fail", account))
        self._alert(
            "login.bruteforce", account, ip, now,
            f"{failures} failed logins for account {account} within "
            f"{_span(s.failures.within)}" + ("; account frozen" if s.failures.freeze else ""),
            "critical", {"failures": failures, "channel": channel, "frozen": s.failures.freeze},
        )  # fmt: skip

    def _spraying(self, s: LoginWatch, channel, ip, zone, now, accounts) -> None:
        before = self.store.get_hold("address", ip)
        if before is not None and before.active(now):
            return  # a login seen while blocked (a web app the proxy only watches)
        # a repeat offender comes back within max_block of the last cool-down's end
        repeat = before is not None and now - before.until < s.spraying.max_block
        level = before.level + 1 if repeat else 1
        seconds = min(
            s.spraying.block_for * s.spraying.escalate ** (level - 1), s.spraying.max_block
        )
        why = (
            f"failed logins for {accounts} accounts within {_span(s.spraying.within)} "
            f"(password spraying), block {level}"
        )
        hold = Hold("address", ip, why, since=now, until=now + seconds, level=level)
        self.store.put_hold(hold)
        self.store.reset(_key("spray", ip))
        self._event(
            "address.blocked", channel, "", ip, zone, now, action="block", reason=why,
            detail=f"blocked for {_span(seconds)}, until {iso(hold.until)}",
        )  # fmt: skip
        self._alert(
            "login.spraying", "", ip, now,
            f"address {ip} blocked for {_span(seconds)}: {why}", "critical",
            {"accounts": accounts, "level": level, "seconds": seconds, "channel": channel},
        )  # fmt: skip

    # -- unusual places and hours (successful logins only) ---------------------------------

    def _unusual(self, s: LoginWatch, channel, account, ip, zone, now) -> Refusal | None:
        if not account:
            return None
        u = s.unusual
        findings: list[tuple[str, str, str]] = []  # (alert kind, setting, words)
        subnet = _subnet(ip, u.subnet_v4, u.subnet_v6)
        places = [("zone", zone)] + ([("subnet", subnet)] if subnet else [])
        for what, value in places:
            key = _key(what + "s", account)
            known = self.store.members(key)
            if self.store.first_seen(key, value) and known and u.new_subnet != "off":
                findings.append((f"login.new_{what}", u.new_subnet, f"a new {what} {value}"))
        if zone == EXTERNAL and u.external != "off":
            findings.append(("login.external", u.external, "the external zone"))
        if u.geoip_database and u.external != "off":
            findings += self._far_away(u, account, ip, now)
        hour = datetime.fromtimestamp(now, ZoneInfo(self.timezone())).hour
        hours_key = _key("hours", account)
        learned = self._learned(account, now, u.learn_logins)
        if learned and u.odd_hour != "off" and str(hour) not in self.store.members(hours_key):
            findings.append(("login.odd_hour", u.odd_hour, f"{hour:02d}:00, an hour never used"))
        self.store.first_seen(hours_key, str(hour))
        if not findings:
            return None
        hold = any(action == "hold" for _, action, _ in findings)
        why = "login from " + "; ".join(words for _, _, words in findings)
        self._event(
            "login.anomaly", channel, account, ip, zone, now,
            action="hold" if hold else "alert", reason=why,
            detail=", ".join(kind for kind, _, _ in findings),
        )  # fmt: skip
        for kind, action, words in findings:
            self._alert(
                kind, account, ip, now,
                f"account {account} logged in from {words}"
                + ("; account frozen" if action == "hold" else ""),
                "critical" if action == "hold" else "warning",
                {"channel": channel, "zone": zone, "subnet": subnet, "hour": hour},
            )  # fmt: skip
        if not hold:
            return None
        frozen = self._freeze(account, why, channel, ip, zone, now)
        return Refusal("account frozen", frozen)

    def _far_away(self, u, account: str, ip: str, now: float) -> list[tuple[str, str, str]]:
        """A country the account never logged in from; a place too far from the last login
        for the time between them. Acted on like a login from the external zone."""
        geo = open_geo(u.geoip_database)
        where = geo.locate(ip) if geo is not None and ip else None
        if where is None:
            return []
        out = []
        if where.country:
            key = _key("countries", account)
            known = self.store.members(key)
            if self.store.first_seen(key, where.country) and known:
                out.append(("login.new_country", u.external, f"a new country {where.country}"))
        if where.has_point:
            key = _key("last_place", account)  # one member: "time latitude longitude"
            last = next(iter(self.store.members(key)), "")
            self.store.reset(key)
            self.store.first_seen(key, f"{now:.0f} {where.latitude} {where.longitude}")
            if last:
                then, lat, lon = map(float, last.split())
                km = distance_km(Location("", lat, lon), where)
                hours = max(now - then, 60.0) / 3600
                if km >= MIN_TRAVEL_KM and km / hours > u.impossible_kmh:
                    words = f"{km:.0f} km from the last login {(now - then) / 3600:.1f} h before"
                    out.append(("login.impossible_travel", u.external, words))
        return out

    def _learned(self, account: str, now: float, learn_logins: int) -> bool:
        """True once the account has `learn_logins` successful logins (this one not counted)."""
        done = _key("learned", account)
        if self.store.members(done):
            return True
        count = self.store.add(_key("logins", account), now, LEARN_WINDOW)
        if count > learn_logins:
            self.store.first_seen(done, "yes")
            self.store.reset(_key("logins", account))  # counting stops here
            return True
        return False

    # -- acting ----------------------------------------------------------------------------

    def _freeze(self, account, why, channel, ip, zone, now) -> Hold:
        hold = Hold("account", account, why, since=now)
        self.store.put_hold(hold)
        self._event(
            "account.frozen", channel, account, ip, zone, now, action="hold", reason=why,
            detail="until released: leakguard accounts unfreeze " + account,
        )  # fmt: skip
        return hold

    def _zone(self, ip: str, zone: str | None) -> str:
        if zone:
            return zone
        return self.zone_of(ip) if self.zone_of is not None and ip else ""

    def _event(self, kind, channel, account, ip, zone, now, **fields) -> None:
        shown = {k: redact(v) for k, v in fields.items() if k in ("reason", "detail")}
        event = Event(
            type=kind, channel=channel, user=redact(account), source_ip=ip,
            source_zone=zone, time=iso(now), **{**fields, **shown},
        )  # fmt: skip
        try:
            self.record(event)
        except Exception:  # the record is the audit log's job; a login must not crash on it
            log.exception("login event %s could not be recorded", kind)

    def _alert(self, kind, account, ip, now, summary, severity, detail) -> None:
        if self.alerts is None:
            return
        alert = Alert(
            kind=kind, key=f"{kind}:{redact(account) or ip}", summary=redact(summary),
            severity=severity, user=redact(account), source_ip=ip, detail=detail, time=now,
        )  # fmt: skip
        self.alerts.send(alert)


_redactor_lock = threading.Lock()


@functools.cache
def _redactor():
    from rules.engine import Engine  # only its redaction: no keyed hashes are made

    return Engine(hash_key=bytes(32))  # compiling the detectors takes about a second: once


def redact(text: str) -> str:
    """`text` with any personal data in it masked, for events and alerts (an account name
    may be a phone number, an ID number or a mail address)."""
    if not text:
        return text
    with _redactor_lock:  # one engine, not thread-safe: logins are few
        return _redactor().redact(text)


def normal_account(name: str) -> str:
    """One spelling per account: trimmed, lower-case, printable, at most MAX_NAME."""
    clean = "".join(ch for ch in str(name).strip() if ch.isprintable())
    return clean.lower()[:MAX_NAME]


def _key(what: str, name: str) -> str:
    return f"login.{what}:{name}"


def _subnet(ip: str, v4: int, v6: int) -> str:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    bits = v4 if address.version == 4 else v6
    return str(ipaddress.ip_network(f"{address}/{bits}", strict=False))


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
