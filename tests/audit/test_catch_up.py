"""Events left in the mirror only (a crash between the mirror line and the store's commit)
are added to the store at the next start, in order, and the chain still verifies."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from audit.appendfile import AppendFile
from audit.catch_up import RECOVERED, catch_up, missing_events
from audit.chain import verify
from audit.events import Event
from audit.log import AuditLog
from audit.open import open_store
from gateway.config import Config
from tests.audit.conftest import KEY
from tests.support.gateway import ROOT, running_gateway


def at(seconds_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds_ago)).isoformat(timespec="milliseconds")


def event(n: int, seconds_ago: float = 0.0) -> dict:
    made = Event(type="http.request", user=f"user{n}", action="allow", time=at(seconds_ago))
    return json.loads(json.dumps(made.to_dict()))  # as a mirror line reads back


def mirror_only(mirror: Path, *events: dict, torn: bytes = b"") -> None:
    """What a kill -9 leaves: lines in the mirror that never reached the store."""
    with mirror.open("ab") as f:
        for e in events:
            f.write(json.dumps(e, ensure_ascii=False).encode() + b"\n")
        f.write(torn)


def test_mirror_only_events_are_appended_in_order_once(store, tmp_path):
    mirror = tmp_path / "events.jsonl"
    log = AuditLog(store, mirror)
    for n in range(3):
        log.record(event(n, seconds_ago=10 - n))
    log.close()
    lost = [event(3, 2), event(4, 1)]
    mirror_only(mirror, *lost, torn=b'{"id": "torn-by-the-cr')

    assert [e["id"] for e in catch_up(store, mirror)] == [e["id"] for e in lost]
    stored = list(store.events())
    assert [e["user"] for e in stored] == [f"user{n}" for n in range(5)]
    assert {k: stored[-1][k] for k in lost[-1]} == lost[-1]
    assert verify(store.events(), KEY, head=store.head()) == (5, [])
    assert catch_up(store, mirror) == []  # the next start finds nothing missing


def test_an_old_mirror_beside_an_empty_store_imports_nothing(store, tmp_path):
    mirror = tmp_path / "events.jsonl"
    mirror_only(mirror, event(1), event(2))
    assert missing_events(store, mirror) == []
    assert catch_up(store, mirror) == [] and list(store.events()) == []


def test_lines_older_than_the_stores_recent_events_are_history_not_losses(store, tmp_path):
    """The mirror kept its old lines when the store was replaced: only what is newer than
    the store's recent events counts as missing."""
    mirror = tmp_path / "events.jsonl"
    old = [event(1, seconds_ago=3600), event(2, seconds_ago=3500)]
    mirror_only(mirror, *old)
    store.append(event(3, seconds_ago=60))
    lost = event(4, seconds_ago=1)
    mirror_only(mirror, lost)
    assert [e["id"] for e in missing_events(store, mirror)] == [lost["id"]]


def test_no_mirror_no_trouble(store, tmp_path):
    store.append(event(1))
    assert catch_up(store, tmp_path / "absent.jsonl") == []


def test_the_gateway_catches_its_store_up_at_start(tmp_path):
    state = tmp_path / "var"
    store = open_store(Config(), state)
    for n in range(3):
        store.append(event(n, seconds_ago=30 - n))
    mirror = state / "events.jsonl"
    mirror_only(mirror, *[{k: v for k, v in e.items() if k not in ("seq", "prev", "hash")}
                          for e in store.events()])  # fmt: skip
    store.close()
    lost = event(3, seconds_ago=5)
    mirror_only(mirror, lost)

    with running_gateway("--no-relay", state_dir=state) as gw:
        notice = gw.wait_for_event(lambda e: e.get("type") == RECOVERED)
    assert notice["reason"] == "1 events were in the events mirror only (unclean stop)"
    listed = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "audit", "events", "--state-dir", str(state),
         "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    events = [json.loads(line) for line in listed.stdout.splitlines()]
    ids = [e["id"] for e in events]
    assert ids.index(lost["id"]) == 3 and ids.index(notice["id"]) > 3
    checked = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "audit", "verify", "--state-dir", str(state)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert checked.returncode == 0 and "intact" in checked.stdout, checked.stdout


def test_a_line_torn_by_a_crash_is_ended_before_the_next_one(tmp_path):
    mirror = tmp_path / "events.jsonl"
    mirror_only(mirror, event(1), torn=b'{"id": "torn-by-the-cr')
    out = AppendFile(mirror)
    out.write(json.dumps(event(2)).encode() + b"\n")
    out.close()
    lines = mirror.read_bytes().splitlines()
    assert lines[1] == b'{"id": "torn-by-the-cr'
    assert [json.loads(line)["user"] for line in (lines[0], lines[2])] == ["user1", "user2"]
    AppendFile(mirror).close()  # a whole last line is left as it is
    assert mirror.read_bytes().count(b"\n") == 3
