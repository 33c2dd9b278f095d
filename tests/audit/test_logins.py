"""LoginWatcher with an injected clock against real stores and the real alert sender.

Brute force and spraying run against every backend (memory, SQLite, Redis): the
counters and holds they rely on are the store's, and several gateways share them.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from audit.alerts import Alerts, FileSink
from audit.events import MemoryLog
from audit.logins import LoginWatcher, normal_account
from audit.sqlite_store import SQLiteStore
from audit.watch_settings import Failures, LoginWatch, Spraying, Unusual
from tests.audit.conftest import KEY

MONDAY_10H = datetime(2026, 11, 23, 10, 0, tzinfo=UTC).timestamp()
HOUR = 3600.0


class Clock:
    def __init__(self, now: float = MONDAY_10H) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Rig:
    """A watcher, its clock, its events and the alerts as the JSON-lines sink wrote them."""

    def __init__(self, store, tmp_path, settings: LoginWatch | None = None, zones=None) -> None:
        self.clock = Clock()
        self.log = MemoryLog()
        self.alerts_path = tmp_path / "alerts.jsonl"
        self.alerts = Alerts(
            [FileSink(self.alerts_path)], record=self.log.record, clock=self.clock, tick=None
        )
        self.settings = settings or LoginWatch()
        self.store = store
        zones = zones or {}
        self.watcher = LoginWatcher(
            store,
            self.alerts,
            self.log.record,
            lambda: self.settings,
            self.clock,
            zone_of=lambda ip: next((z for p, z in zones.items() if ip.startswith(p)), "external"),
        )

    def login(self, account: str, ip: str, ok: bool, channel: str = "smtp"):
        refusal = self.watcher.check(channel, account, ip)
        if refusal is not None:
            return refusal
        return self.watcher.attempt(channel, account, ip, ok=ok)

    def events(self, kind: str) -> list[dict]:
        return [e for e in self.log.events if e["type"] == kind]

    def sent_alerts(self) -> list[dict]:
        self.alerts.close()
        return [json.loads(line) for line in self.alerts_path.read_text().splitlines()]


OFFICE = {"10.1.": "office", "10.2.": "branch"}


def test_brute_force_freezes_then_unfreeze_lets_the_right_password_in(store, tmp_path) -> None:
    rig = Rig(store, tmp_path, LoginWatch(failures=Failures(count=3, within=600)), OFFICE)
    assert rig.login("alice", "10.1.0.5", ok=True) is None  # learns office, 10.1.0.0/24
    for _ in range(2):
        assert rig.login("alice", "10.1.0.9", ok=False) is None
        rig.clock.now += 10
    assert rig.login("alice", "10.1.0.9", ok=False) is None  # the third failure freezes …
    refusal = rig.login("Alice", "10.1.0.5", ok=True)  # … so the right password is refused
    assert refusal is not None and refusal.why == "account frozen"
    [frozen] = rig.events("account.frozen")
    assert (frozen["user"], frozen["source_ip"], frozen["source_zone"]) == (
        "alice",
        "10.1.0.9",
        "office",
    )
    assert "3 failed logins within 10m" in frozen["reason"]
    assert rig.events("login.failure")[-1]["reason"] == "account frozen"
    hold = store.get_hold("account", "alice")
    assert hold is not None and hold.until == 0.0 and hold.by == "leakguard"
    store.drop_hold("account", "alice")  # what `leakguard accounts unfreeze` does
    assert rig.login("alice", "10.1.0.5", ok=True) is None
    [alert] = [a for a in rig.sent_alerts() if a["kind"] == "login.bruteforce"]
    assert alert["severity"] == "critical" and alert["user"] == "alice"
    assert "account frozen" in alert["summary"]
    assert all("password" not in json.dumps(e).lower().replace("wrong login or password", "")
               for e in rig.log.events)  # fmt: skip


def test_a_success_resets_the_failure_count(store, tmp_path) -> None:
    rig = Rig(store, tmp_path, LoginWatch(failures=Failures(count=3, within=600)), OFFICE)
    for _ in range(5):
        rig.login("bob", "10.1.0.7", ok=False)
        rig.login("bob", "10.1.0.7", ok=False)
        assert rig.login("bob", "10.1.0.7", ok=True) is None
    assert store.get_hold("account", "bob") is None
    assert len(rig.events("login.failure")) == 10


def test_failures_spread_beyond_the_window_do_not_freeze(tmp_path) -> None:
    store = SQLiteStore(tmp_path / "audit.db", KEY)
    rig = Rig(store, tmp_path, LoginWatch(failures=Failures(count=3, within=60)), OFFICE)
    for _ in range(6):
        rig.login("carol", "10.1.0.8", ok=False)
        rig.clock.now += 31  # at most two failures in any 60 s
    assert store.get_hold("account", "carol") is None


def test_freeze_false_alerts_without_freezing(tmp_path) -> None:
    store = SQLiteStore(tmp_path / "audit.db", KEY)
    rig = Rig(store, tmp_path, LoginWatch(failures=Failures(3, 600, freeze=False)), OFFICE)
    for _ in range(3):
        rig.login("dan", "10.1.0.8", ok=False)
    assert rig.login("dan", "10.1.0.8", ok=True) is None
    assert store.get_hold("account", "dan") is None and not rig.events("account.frozen")
    assert [a["kind"] for a in rig.sent_alerts()] == ["login.bruteforce"]


def test_spraying_blocks_the_address_escalating_on_repeat(store, tmp_path) -> None:
    spraying = Spraying(accounts=4, within=600, block_for=900, escalate=4, max_block=4 * HOUR)
    rig = Rig(store, tmp_path, LoginWatch(spraying=spraying), OFFICE)
    sprayer = "10.2.0.66"

    def spray(first: int) -> None:
        for i in range(first, first + 4):
            assert rig.login(f"user{i}", sprayer, ok=False) is None
            rig.clock.now += 5

    spray(0)
    hold = store.get_hold("address", sprayer)
    assert hold is not None and hold.level == 1 and hold.until - hold.since == 900
    refusal = rig.login("user0", sprayer, ok=True)  # blocked: even a right password
    assert refusal is not None and refusal.why == "address blocked"
    assert rig.login("user0", "10.2.0.67", ok=True) is None  # the neighbour is not blocked
    durations = [900.0]
    for _ in range(3):  # each repeat after the cool-down: × 4, capped at 4 h
        rig.clock.now = store.get_hold("address", sprayer).until + 1
        assert rig.login("user0", sprayer, ok=True) is None  # the cool-down is over
        spray(100 * len(durations))
        hold = store.get_hold("address", sprayer)
        durations.append(hold.until - hold.since)
        assert hold.level == len(durations)
    assert durations == [900.0, 3600.0, 4 * HOUR, 4 * HOUR]
    blocked = rig.events("address.blocked")
    assert [e["source_ip"] for e in blocked] == [sprayer] * 4
    assert "password spraying" in blocked[0]["reason"]
    assert not rig.events("account.frozen")  # four failures each: below the account limit
    alerts = [a for a in rig.sent_alerts() if a["kind"] == "login.spraying"]
    assert alerts and alerts[0]["source_ip"] == sprayer and alerts[0]["detail"]["level"] == 1


def test_a_new_subnet_alerts_and_is_learned(tmp_path) -> None:
    store = SQLiteStore(tmp_path / "audit.db", KEY)
    rig = Rig(store, tmp_path, LoginWatch(), OFFICE)
    assert rig.login("erin", "10.1.0.5", ok=True) is None  # the first login teaches
    assert rig.login("erin", "10.1.0.200", ok=True) is None  # same /24
    assert not rig.events("login.anomaly")
    assert rig.login("erin", "10.1.7.5", ok=True) is None  # new /24, same zone: alert only
    [anomaly] = rig.events("login.anomaly")
    assert anomaly["reason"] == "login from a new subnet 10.1.7.0/24"
    assert anomaly["action"] == "alert" and anomaly["detail"] == "login.new_subnet"
    assert rig.login("erin", "10.1.7.9", ok=True) is None  # learned now
    assert len(rig.events("login.anomaly")) == 1
    assert rig.login("erin", "10.2.0.5", ok=True) is None  # new zone and subnet
    assert rig.events("login.anomaly")[-1]["detail"] == "login.new_zone, login.new_subnet"
    kinds = [a["kind"] for a in rig.sent_alerts()]
    assert kinds == ["login.new_subnet", "login.new_zone", "login.new_subnet"]


def test_an_ipv6_subnet_is_a_64(tmp_path) -> None:
    store = SQLiteStore(tmp_path / "audit.db", KEY)
    rig = Rig(store, tmp_path, LoginWatch(), {"fd00:": "office"})
    rig.login("fay", "fd00:1:2:3::5", ok=True)
    rig.login("fay", "fd00:1:2:3:ffff::1", ok=True)
    assert not rig.events("login.anomaly")
    rig.login("fay", "fd00:1:2:4::5", ok=True)
    assert rig.events("login.anomaly")[0]["reason"] == "login from a new subnet fd00:1:2:4::/64"


def test_an_external_login_freezes_at_once_when_the_policy_says_hold(tmp_path) -> None:
    store = SQLiteStore(tmp_path / "audit.db", KEY)
    rig = Rig(store, tmp_path, LoginWatch(), OFFICE)
    rig.login("gus", "10.1.0.5", ok=True)
    refusal = rig.login("gus", "203.0.113.9", ok=True)  # 异地 IP, right password
    assert refusal is not None and refusal.why == "account frozen"
    assert rig.events("login.anomaly")[-1]["action"] == "hold"
    assert rig.events("account.frozen")[-1]["source_zone"] == "external"
    assert rig.login("gus", "10.1.0.5", ok=True).why == "account frozen"  # until released
    alerts = {a["kind"]: a for a in rig.sent_alerts()}
    assert alerts["login.external"]["severity"] == "critical"


def test_an_external_login_only_alerts_when_the_policy_says_alert(tmp_path) -> None:
    store = SQLiteStore(tmp_path / "audit.db", KEY)
    settings = LoginWatch(unusual=Unusual(external="alert", new_subnet="off"))
    rig = Rig(store, tmp_path, settings, OFFICE)
    rig.login("hal", "10.1.0.5", ok=True)
    assert rig.login("hal", "203.0.113.9", ok=True) is None
    assert store.get_hold("account", "hal") is None
    assert rig.events("login.anomaly")[-1]["detail"] == "login.external"


def test_off_hours_judged_after_learning_with_an_injected_clock(tmp_path) -> None:
    store = SQLiteStore(tmp_path / "audit.db", KEY)
    settings = LoginWatch(unusual=Unusual(learn_logins=5))
    rig = Rig(store, tmp_path, settings, OFFICE)
    rig.watcher.timezone = lambda: "Asia/Shanghai"  # 10:00 UTC is 18:00 there
    day = 86400.0
    start = datetime(2026, 11, 2, 1, 0, tzinfo=UTC).timestamp()  # 09:00 in Shanghai
    for i in range(5):  # a working week, 09:00 and 14:00
        rig.clock.now = start + i * day
        rig.login("ivy", "10.1.0.5", ok=True)
        rig.clock.now = start + i * day + 5 * HOUR
        rig.login("ivy", "10.1.0.5", ok=True)
    rig.clock.now = start + 7 * day + 5 * HOUR  # 14:00 next Monday: a known hour
    assert rig.login("ivy", "10.1.0.5", ok=True) is None
    assert not rig.events("login.anomaly")
    rig.clock.now = start + 7 * day + 18 * HOUR  # 03:00 Tuesday in Shanghai
    assert rig.login("ivy", "10.1.0.5", ok=True) is None
    [anomaly] = rig.events("login.anomaly")
    assert anomaly["reason"] == "login from 03:00, an hour never used"
    assert anomaly["time"].startswith("2026-11-09T19:00")  # the event carries the clock's time
    assert [a["kind"] for a in rig.sent_alerts()] == ["login.odd_hour"]


def test_odd_hours_are_not_judged_while_learning(tmp_path) -> None:
    store = SQLiteStore(tmp_path / "audit.db", KEY)
    rig = Rig(store, tmp_path, LoginWatch(unusual=Unusual(learn_logins=20)), OFFICE)
    for hour in range(0, 24, 2):  # twelve logins at twelve hours: still learning
        rig.clock.now = MONDAY_10H + hour * HOUR
        rig.login("jon", "10.1.0.5", ok=True)
    assert not rig.events("login.anomaly")


def test_settings_are_read_at_each_login(tmp_path) -> None:
    """A policy reload changes thresholds for the next login, nothing restarts."""
    store = SQLiteStore(tmp_path / "audit.db", KEY)
    rig = Rig(store, tmp_path, LoginWatch(failures=Failures(count=10)), OFFICE)
    for _ in range(3):
        rig.login("kim", "10.1.0.5", ok=False)
    rig.settings = replace(rig.settings, failures=Failures(count=4))
    rig.login("kim", "10.1.0.5", ok=False)
    assert store.get_hold("account", "kim") is not None


def test_account_names_have_one_spelling() -> None:
    assert normal_account("  Alice\x00\n") == "alice"
    assert len(normal_account("x" * 1000)) == 128


# -- a MaxMind-format database (built here with mmdb-writer, read with MaxMind's geoip2) --


@pytest.fixture
def geo_db(tmp_path) -> str:
    from mmdb_writer import MmdbF64, MMDBWriter
    from netaddr import IPSet

    places = {  # documentation networks, synthetic places
        "198.51.100.0/24": ("CN", 31.23, 121.47),  # Shanghai
        "203.0.113.0/24": ("CN", 39.90, 116.40),  # Beijing, 1070 km away
        "192.0.2.0/24": ("US", 40.71, -74.00),  # New York
    }
    writer = MMDBWriter(ip_version=6, database_type="GeoIP2-City", ipv4_compatible=True)
    for net, (country, lat, lon) in places.items():
        writer.insert_network(
            IPSet([net]),
            {
                "country": {"iso_code": country},
                "location": {"latitude": MmdbF64(lat), "longitude": MmdbF64(lon)},
            },
        )
    path = tmp_path / "city.mmdb"
    writer.to_db_file(str(path))
    return str(path)


def test_a_new_country_and_impossible_travel(tmp_path, geo_db) -> None:
    store = SQLiteStore(tmp_path / "audit.db", KEY)
    unusual = Unusual(external="alert", new_subnet="off", geoip_database=geo_db)
    rig = Rig(store, tmp_path, LoginWatch(unusual=unusual), {"198.51.": "office"})
    rig.login("lee", "198.51.100.5", ok=True)  # Shanghai: learns CN
    rig.clock.now += 3 * HOUR
    rig.login("lee", "203.0.113.5", ok=True)  # Beijing 3 h later: 357 km/h, fine
    assert [e["detail"] for e in rig.events("login.anomaly")] == ["login.external"]
    rig.clock.now += 2 * HOUR
    rig.login("lee", "192.0.2.5", ok=True)  # New York 2 h after Beijing
    last = rig.events("login.anomaly")[-1]
    assert last["detail"] == "login.external, login.new_country, login.impossible_travel"
    assert "a new country US" in last["reason"] and "km from the last login 2.0 h" in last["reason"]
    rig.clock.now += 30 * HOUR
    rig.login("lee", "192.0.2.9", ok=True)  # the same place a day later: only external
    assert rig.events("login.anomaly")[-1]["detail"] == "login.external"
    kinds = [a["kind"] for a in rig.sent_alerts()]
    assert "login.new_country" in kinds and "login.impossible_travel" in kinds


def test_an_unreadable_geo_database_turns_geo_checks_off(tmp_path) -> None:
    broken = tmp_path / "broken.mmdb"
    broken.write_bytes(b"not a database")
    store = SQLiteStore(tmp_path / "audit.db", KEY)
    unusual = Unusual(external="alert", new_subnet="off", geoip_database=str(broken))
    rig = Rig(store, tmp_path, LoginWatch(unusual=unusual), OFFICE)
    assert rig.login("max", "10.1.0.5", ok=True) is None  # logins go on
    assert rig.login("max", "192.0.2.5", ok=True) is None
    assert rig.events("login.anomaly")[-1]["detail"] == "login.external"


def test_personal_data_in_an_account_name_is_masked_in_events_and_alerts(tmp_path) -> None:
    phone = "13812345678"  # a login name that is a mobile number (synthetic)
    store = SQLiteStore(tmp_path / "audit.db", KEY)
    rig = Rig(store, tmp_path, LoginWatch(failures=Failures(count=2)), OFFICE)
    rig.login(phone, "10.1.0.5", ok=False)
    rig.login(phone, "10.1.0.5", ok=False)
    assert store.get_hold("account", phone) is not None  # the hold is keyed by the name itself
    assert rig.login(phone, "10.1.0.5", ok=True).why == "account frozen"
    frozen = rig.events("account.frozen")[0]
    assert frozen["user"] == "138****5678"
    recorded = json.dumps(rig.log.events) + rig.alerts_path.read_text()
    alerts = rig.sent_alerts()
    assert alerts and alerts[0]["user"] == "138****5678"
    assert phone not in recorded + json.dumps(alerts)


def test_an_address_quiet_for_max_block_starts_over_at_the_first_cool_down(tmp_path) -> None:
    store = SQLiteStore(tmp_path / "audit.db", KEY)
    spraying = Spraying(accounts=3, within=600, block_for=900, escalate=4, max_block=4 * HOUR)
    rig = Rig(store, tmp_path, LoginWatch(spraying=spraying), OFFICE)
    for round_ in range(2):
        for i in range(3):
            rig.login(f"u{round_}{i}", "10.2.0.99", ok=False)
        hold = store.get_hold("address", "10.2.0.99")
        rig.clock.now = hold.until + 4 * HOUR + 1  # quiet for longer than max_block
    assert (hold.level, hold.until - hold.since) == (1, 900.0)
