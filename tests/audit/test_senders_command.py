"""`leakguard senders list|release` as a subprocess, on a real SQLite record."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from audit.open import open_store
from audit.store import Hold
from gateway.config import Config


def leakguard(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _state(tmp_path):
    state = tmp_path / "state"
    store = open_store(Config(state_dir=state), state)
    return state, store


def test_list_and_release_a_held_sender(tmp_path):
    state, store = _state(tmp_path)
    now = time.time()
    reason = "alice sent 10 distinct sensitive values to external destinations within 1 h"
    store.put_hold(Hold("sender", "alice", reason, since=now - 60))
    store.put_hold(Hold("sender", "10.1.2.3", "old", since=now - 7200, until=now - 3600))
    store.put_hold(Hold("account", "bob", "frozen", since=now))  # not a sender
    for who in ("alice", "10.1.2.3"):
        store.distinct(f"transfer.pii:{who}", "cn_resident_id:abc", now, 3600)
    store.close()

    listed = leakguard("senders", "list", "--state-dir", str(state))
    assert listed.returncode == 0, listed.stderr
    assert "alice" in listed.stdout and reason in listed.stdout
    assert "10.1.2.3" not in listed.stdout and "bob" not in listed.stdout
    as_json = leakguard("senders", "list", "--all", "--json", "--state-dir", str(state))
    rows = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [(r["name"], r["active"]) for r in rows] == [("10.1.2.3", False), ("alice", True)]

    released = leakguard(
        "senders", "release", "alice", "--reason", "reviewed: a client's own files",
        "--json", "--state-dir", str(state),
    )  # fmt: skip
    assert released.returncode == 0, released.stderr
    event = json.loads(released.stdout)
    assert event["type"] == "sender.released" and event["user"] == "alice"
    assert event["reason"] == "reviewed: a client's own files" and event["by"]
    assert event["seq"] >= 1 and reason in event["detail"]

    store = open_store(Config(state_dir=state), state)
    try:
        assert store.get_hold("sender", "alice") is None
        assert store.get_hold("account", "bob") is not None
        # the window the hold was judged on starts over; another sender's does not
        assert store.distinct("transfer.pii:alice", "cn_resident_id:def", now, 3600) == 1
        assert store.distinct("transfer.pii:10.1.2.3", "cn_resident_id:def", now, 3600) == 2
        (stored,) = [e for e in store.events() if e["type"] == "sender.released"]
        assert stored["user"] == "alice"
    finally:
        store.close()
    mirrored = (state / "events.jsonl").read_text()
    assert '"sender.released"' in mirrored

    again = leakguard("senders", "release", "alice", "--state-dir", str(state))
    assert again.returncode == 1 and "not held" in again.stderr
    assert leakguard("senders", "list", "--state-dir", str(state)).stdout.strip() == (
        "no senders held"
    )


def test_a_wrong_state_directory_is_an_error_not_an_empty_list(tmp_path):
    got = leakguard("senders", "list", "--state-dir", str(tmp_path / "nowhere"))
    assert got.returncode == 2
    assert "no audit record" in got.stderr and "Traceback" not in got.stderr


def test_a_bad_config_file_is_reported_with_its_line(tmp_path):
    config = tmp_path / "leakguard.yaml"
    config.write_text("version: 1\nalerts:\n  dedup_window: soon\n")
    got = leakguard("senders", "list", "--config", str(config))
    assert got.returncode == 2
    assert f"{config}:3" in got.stderr and "dedup_window" in got.stderr
