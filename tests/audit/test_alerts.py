"""Alerts: dedup and rate limit with an injected clock, the JSON-lines sink, the "alert" event."""

from __future__ import annotations

import json
import time

from audit.alert import Alert
from audit.alerts import Alerts, FileSink
from audit.events import MemoryLog


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _alert(key: str = "login.bruteforce:alice", **kw) -> Alert:
    return Alert(kind=key.split(":")[0], key=key, summary="5 failed logins for alice", **kw)


def _lines(path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_burst_is_one_alert_then_one_summary_with_the_count(tmp_path):
    clock = Clock()
    log = MemoryLog()
    path = tmp_path / "alerts.jsonl"
    alerts = Alerts([FileSink(path)], record=log.record, dedup_window=60, clock=clock, tick=None)
    for _ in range(7):
        alerts.send(_alert())
        clock.now += 1
    alerts.send(_alert("login.bruteforce:bob"))  # another key is not held back
    assert alerts.close_due() == 0  # the window is still open
    clock.now += 60
    assert alerts.close_due() == 1
    clock.now += 60
    assert alerts.close_due() == 0  # nothing counted in the next window: forgotten
    alerts.send(_alert())  # a new burst goes out at once
    alerts.close()
    got = _lines(path)
    assert [(a["key"], a["count"]) for a in got] == [
        ("login.bruteforce:alice", 1),
        ("login.bruteforce:bob", 1),
        ("login.bruteforce:alice", 6),
        ("login.bruteforce:alice", 1),
    ]
    assert got[2]["detail"]["window_seconds"] == 60
    recorded = [e for e in log.events if e["type"] == "alert"]
    assert [e["alert"]["count"] for e in recorded] == [1, 1, 6, 1]
    assert recorded[0]["rule"] == "login.bruteforce"
    assert recorded[0]["reason"] == "5 failed logins for alice"


def test_close_sends_the_summaries_still_open(tmp_path):
    clock = Clock()
    path = tmp_path / "alerts.jsonl"
    alerts = Alerts([FileSink(path)], dedup_window=600, clock=clock, tick=None)
    for _ in range(3):
        alerts.send(_alert())
    alerts.close()
    assert [a["count"] for a in _lines(path)] == [1, 2]


def test_send_never_raises_and_a_broken_sink_does_not_stop_the_others(tmp_path, caplog):
    class Broken:
        name = "broken"
        retries = 1

        def deliver(self, alert):
            raise OSError("disk on fire")

        def close(self):
            pass

    path = tmp_path / "alerts.jsonl"
    alerts = Alerts([Broken(), FileSink(path)], tick=None)
    alerts.send(_alert())
    alerts.send("not an alert")  # type: ignore[arg-type]
    alerts.close()
    assert len(_lines(path)) == 1
    failures = [r for r in caplog.records if "broken" in r.getMessage()]
    assert len(failures) == 2  # the attempt and its retry, each logged
    assert all(
        "alice" not in r.getMessage() for r in caplog.records if r.name == "leakguard.alerts"
    )


def test_the_file_sink_reopens_its_file_after_a_rotation(tmp_path):
    path = tmp_path / "alerts.jsonl"
    alerts = Alerts([FileSink(path)], tick=None)
    alerts.send(_alert("login.bruteforce:alice"))
    alerts.close_due(everything=True)
    deadline = 50
    while not _lines(path) and deadline:  # the sink's own thread writes it
        time.sleep(0.02)
        deadline -= 1
    path.rename(tmp_path / "alerts.jsonl.1")
    alerts.reopen()
    alerts.send(_alert("login.bruteforce:bob"))
    alerts.close()  # drains the sink
    assert [a["key"] for a in _lines(tmp_path / "alerts.jsonl.1")] == ["login.bruteforce:alice"]
    assert [a["key"] for a in _lines(path)] == ["login.bruteforce:bob"]
