"""TransferWatcher on a real store, with an injected clock: slow leaks, bulk, new
destinations, off-hours, the sender's own baseline."""

from __future__ import annotations

import json
from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest

from audit.alerts import Alerts, FileSink
from audit.events import Event, MemoryLog
from audit.sqlite_store import SQLiteStore
from audit.transfers import TransferWatcher, held_reason, sender_hold
from audit.watch_settings import Baseline, OffHours, Threshold, TransferWatch
from rules.engine import Engine
from tests.audit.conftest import KEY
from tests.audit.synthetic import resident_id

SHANGHAI = ZoneInfo("Asia/Shanghai")
QUIET = TransferWatch(
    window=3600,
    external_bytes=None,
    distinct_pii=None,
    new_destination="off",
    off_hours=None,
    baseline=None,
)
ENGINE = Engine(hash_key=b"the installation key of the audit tests".ljust(32, b"."))


def at(text: str) -> float:
    """'2026-11-23 10:00' in Shanghai → epoch seconds."""
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI).timestamp()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Rig:
    def __init__(self, store, tmp_path, settings: TransferWatch, now: str = "2026-11-23 10:00"):
        self.store = store
        self.log = MemoryLog()
        self.clock = Clock(at(now))
        self.alerts_path = tmp_path / "alerts.jsonl"
        self.alerts = Alerts(
            [FileSink(self.alerts_path)], record=self.log.record, clock=self.clock, tick=None
        )
        self.settings = settings
        self.watcher = TransferWatcher(
            store, self.alerts, self.log.record, lambda: self.settings, self.clock
        )

    def send(self, text: str = "", *, size: int = 1000, **fields) -> dict:
        findings = tuple(f.to_dict() for f in ENGINE.scan_text(text)) if text else ()
        base = dict(
            type="http.request",
            channel="https",
            user="alice",
            source_ip="10.1.2.3",
            source_zone="office",
            destination="upload.example.net",
            destination_zone="external",
            action="allow",
            findings=findings,
        )
        event = Event(**{**base, **fields}).to_dict() | {"size": size}
        self.log.record(event)
        self.watcher(event)
        return event

    def of_type(self, kind: str) -> list[dict]:
        return [e for e in self.log.events if e["type"] == kind]

    def sent_alerts(self) -> list[dict]:
        self.alerts.close()
        if not self.alerts_path.exists():
            return []
        return [json.loads(line) for line in self.alerts_path.read_text().splitlines()]


def test_a_slow_leak_of_single_ids_crosses_the_distinct_pii_threshold_and_holds(store, tmp_path):
    settings = TransferWatch(**{**QUIET.__dict__, "distinct_pii": Threshold(10, "hold")})
    rig = Rig(store, tmp_path, settings)
    ids = [resident_id(i) for i in range(12)]
    for n, value in enumerate(ids[:9]):
        rig.send(f"客户身份证号 {value}")
        rig.send(f"again {ids[0]}")  # the same value again adds nothing
        rig.clock.now += 60 * (n + 1)
    assert not rig.of_type("transfer.anomaly")
    assert sender_hold(store, "alice", "10.1.2.3", rig.clock.now) is None
    rig.send(f"客户身份证号 {ids[9]}")  # the tenth distinct value within the hour
    rig.send(f"客户身份证号 {ids[10]}")  # over it still: no second anomaly in the window
    (anomaly,) = rig.of_type("transfer.anomaly")
    assert anomaly["rule"] == "transfer.distinct_pii" and anomaly["action"] == "hold"
    assert anomaly["anomaly"]["distinct"] == 10 and anomaly["incident"].startswith("LG-")
    assert anomaly["user"] == "alice" and anomaly["destination"] == "upload.example.net"
    (held,) = rig.of_type("sender.held")
    assert held["incident"] == anomaly["incident"]
    hold = sender_hold(store, "alice", None, rig.clock.now)
    assert hold is not None and hold.kind == "sender" and hold.name == "alice"
    assert held_reason(hold).startswith("held for review: alice sent 10 distinct")
    (alert,) = rig.sent_alerts()
    assert alert["kind"] == "transfer.distinct_pii" and alert["severity"] == "critical"
    assert alert["detail"]["incident"] == anomaly["incident"]
    assert "held for review" in alert["summary"]
    everything = json.dumps(rig.log.events, ensure_ascii=False) + rig.alerts_path.read_text()
    assert not any(value in everything for value in ids)
    assert len(rig.of_type("alert")) == 1


def test_values_older_than_the_window_fall_out_of_the_count(tmp_path):
    settings = TransferWatch(**{**QUIET.__dict__, "distinct_pii": Threshold(3, "alert")})
    rig = Rig(SQLiteStore(tmp_path / "audit.db", KEY), tmp_path, settings)
    for i in range(6):
        rig.send(f"身份证 {resident_id(i)}")
        rig.clock.now += 1900  # two per window at most
    assert not rig.of_type("transfer.anomaly")


def test_only_content_that_went_out_to_the_external_zone_counts(tmp_path):
    settings = TransferWatch(**{**QUIET.__dict__, "distinct_pii": Threshold(2, "hold")})
    rig = Rig(SQLiteStore(tmp_path / "audit.db", KEY), tmp_path, settings)
    rig.send(f"身份证 {resident_id(1)}", action="block")  # refused: nothing left
    rig.send(f"身份证 {resident_id(2)}", destination_zone="office")  # internal
    rig.send(f"身份证 {resident_id(3)}", type="smtp.delivered")  # not a decision
    rig.send(f"身份证 {resident_id(4)}", user="bob")  # someone else
    rig.send(f"身份证 {resident_id(5)}", user="")  # counted against 10.1.2.3
    assert not rig.of_type("transfer.anomaly")
    rig.send(f"身份证 {resident_id(6)}", user="", action="mask", type="smtp.message")
    (anomaly,) = rig.of_type("transfer.anomaly")
    assert anomaly["source_ip"] == "10.1.2.3" and anomaly["user"] == ""
    assert sender_hold(rig.store, "carol", "10.1.2.3", rig.clock.now).name == "10.1.2.3"


def test_external_bytes_within_the_window(tmp_path):
    settings = TransferWatch(**{**QUIET.__dict__, "external_bytes": Threshold(10e6, "alert")})
    rig = Rig(SQLiteStore(tmp_path / "audit.db", KEY), tmp_path, settings)
    for _ in range(9):
        rig.send(size=1_000_000)
        rig.clock.now += 300
    assert not rig.of_type("transfer.anomaly")
    rig.send(size=1_000_001)
    (anomaly,) = rig.of_type("transfer.anomaly")
    assert anomaly["rule"] == "transfer.external_bytes" and anomaly["action"] == "alert"
    assert anomaly["anomaly"]["bytes"] == 10_000_001
    assert not rig.of_type("sender.held")
    (alert,) = rig.sent_alerts()
    assert alert["severity"] == "warning" and "9.5 MiB" in alert["summary"]


@pytest.mark.parametrize(
    ("when", "anomalous"),
    [
        ("2026-11-23 10:00", False),  # Monday morning
        ("2026-11-23 07:59", True),  # before work
        ("2026-11-23 20:00", True),  # the end is not working time
        ("2026-11-28 11:00", True),  # Saturday
        ("2026-11-24 03:30", True),  # the middle of the night
    ],
)
def test_off_hours_in_the_policy_time_zone(tmp_path, when, anomalous):
    settings = TransferWatch(**{**QUIET.__dict__, "off_hours": OffHours()})
    rig = Rig(SQLiteStore(tmp_path / "audit.db", KEY), tmp_path, settings, now=when)
    rig.send()
    rig.send()  # once per window
    got = rig.of_type("transfer.anomaly")
    assert len(got) == (1 if anomalous else 0)
    if anomalous:
        assert got[0]["rule"] == "transfer.off_hours"
        assert got[0]["anomaly"]["local_time"].startswith(when.replace(" ", "T"))


def test_off_hours_across_midnight_and_another_time_zone(tmp_path):
    night = OffHours(start=time(22, 0), end=time(6, 0), days=tuple(range(7)))
    settings = TransferWatch(**{**QUIET.__dict__, "off_hours": night})
    rig = Rig(SQLiteStore(tmp_path / "audit.db", KEY), tmp_path, settings, now="2026-11-23 23:00")
    rig.watcher.timezone = lambda: "Asia/Shanghai"
    rig.send()
    assert not rig.of_type("transfer.anomaly")  # 23:00 is inside a 22:00-06:00 shift
    rig.watcher.timezone = lambda: "Europe/London"  # 15:00 there
    rig.clock.now += 3601
    rig.send()
    assert rig.of_type("transfer.anomaly")[0]["anomaly"]["local_time"].endswith("+00:00")


def test_a_new_destination_after_the_learning_days(tmp_path):
    settings = TransferWatch(**{**QUIET.__dict__, "new_destination": "alert"})
    rig = Rig(SQLiteStore(tmp_path / "audit.db", KEY), tmp_path, settings)
    rig.send(destination="partner.example.com")
    rig.send(destination="files.example.org")  # still learning: the first week
    rig.clock.now += 8 * 86400
    rig.send(destination="partner.example.com")
    assert not rig.of_type("transfer.anomaly")
    rig.send(destination="drop.example.net")
    rig.send(destination="drop.example.net")
    rig.send(
        type="smtp.message",
        channel="smtp",
        destination="a***@lawfirm.example, b***@lawfirm.example",
    )
    got = rig.of_type("transfer.anomaly")
    assert [a["anomaly"]["destination"] for a in got] == ["drop.example.net", "lawfirm.example"]
    assert [a["kind"] for a in rig.sent_alerts()] == ["transfer.new_destination"] * 2


def test_volume_far_above_the_senders_own_baseline(tmp_path):
    baseline = Baseline(factor=10, min_bytes=1e6, learn_days=3)
    settings = TransferWatch(**{**QUIET.__dict__, "baseline": baseline})
    rig = Rig(SQLiteStore(tmp_path / "audit.db", KEY), tmp_path, settings)
    day = 86400
    for size in (150_000, 200_000, 250_000):  # three ordinary days: the median is 200 kB
        rig.send(size=size // 2)
        rig.send(size=size // 2)
        rig.clock.now += day
    rig.send(size=1_900_000)  # 9.5× the usual: not yet
    assert not rig.of_type("transfer.anomaly")
    rig.send(size=200_000)  # 2.1 MB today, 10.5×
    (anomaly,) = rig.of_type("transfer.anomaly")
    assert anomaly["rule"] == "transfer.baseline"
    assert anomaly["anomaly"]["usual_bytes"] == 200_000
    assert anomaly["anomaly"]["today_bytes"] == 2_100_000


def test_no_baseline_before_the_learning_days(tmp_path):
    baseline = Baseline(factor=2, min_bytes=1e6, learn_days=3)
    settings = TransferWatch(**{**QUIET.__dict__, "baseline": baseline})
    rig = Rig(SQLiteStore(tmp_path / "audit.db", KEY), tmp_path, settings)
    rig.send(size=10_000)
    rig.clock.now += 86400
    rig.send(size=10_000)
    rig.clock.now += 86400
    rig.send(size=50_000_000)  # two days of history only
    assert not rig.of_type("transfer.anomaly")


def test_a_broken_event_is_logged_not_raised(tmp_path, caplog):
    rig = Rig(SQLiteStore(tmp_path / "audit.db", KEY), tmp_path, TransferWatch())
    event = {
        "type": "http.request",
        "action": "allow",
        "destination_zone": "external",
        "user": "alice",
        "findings": "not a list",
    }
    rig.watcher(event)
    assert "transfer watch failed" in caplog.text
