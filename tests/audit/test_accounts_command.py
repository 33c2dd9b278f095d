"""`leakguard accounts list|freeze|unfreeze|unblock` against a real SQLite store in a state dir."""

from __future__ import annotations

import json
import time

import pytest

from audit.logins import LoginWatcher
from audit.open import open_store
from audit.store import Hold
from audit.watch_settings import LoginWatch
from gateway.cli import main as cli
from gateway.config import Config


@pytest.fixture
def state(tmp_path):
    """A state directory with the gateway's audit record in it (as `leakguard run` leaves)."""
    store = open_store(Config(state_dir=tmp_path), tmp_path)
    store.close()
    return tmp_path


def run(state, *args: str) -> int:
    return cli(["accounts", *args, "--state-dir", str(state)])


def _events(state) -> list[dict]:
    store = open_store(Config(state_dir=state), state)
    try:
        return list(store.events())
    finally:
        store.close()


def _holds(state, kind: str = "account") -> list[Hold]:
    store = open_store(Config(state_dir=state), state)
    try:
        return store.holds(kind)
    finally:
        store.close()


def test_freeze_list_unfreeze_each_recorded(state, capsys, monkeypatch) -> None:
    monkeypatch.setenv("SUDO_USER", "secadmin")
    assert run(state, "list") == 0
    assert "no frozen accounts" in capsys.readouterr().out
    assert run(state, "freeze", "Alice", "--reason", "phishing report INC-7") == 0
    assert "account alice frozen" in capsys.readouterr().out
    assert run(state, "freeze", "alice") == 1  # already
    capsys.readouterr()
    [hold] = _holds(state)
    assert (hold.name, hold.reason, hold.until) == ("alice", "phishing report INC-7", 0.0)
    assert hold.by.startswith("secadmin")
    assert run(state, "list", "--json") == 0
    [row] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["name"] == "alice" and row["active"] is True
    assert run(state, "list") == 0
    table = capsys.readouterr().out
    assert "alice" in table and "released by hand" in table and "phishing report" in table
    assert run(state, "unfreeze", "alice", "--json") == 0
    unfrozen = json.loads(capsys.readouterr().out)
    assert unfrozen["type"] == "account.unfrozen" and unfrozen["user"] == "alice"
    assert unfrozen["by"].startswith("secadmin") and "phishing report" in unfrozen["detail"]
    assert _holds(state) == []
    assert run(state, "unfreeze", "alice") == 1  # nothing to release
    kinds = [(e["type"], e["user"], e["action"]) for e in _events(state)]
    assert kinds == [("account.frozen", "alice", "hold"), ("account.unfrozen", "alice", "release")]
    mirror = (state / "events.jsonl").read_text().splitlines()
    assert [json.loads(line)["type"] for line in mirror] == ["account.frozen", "account.unfrozen"]


def test_an_unfreeze_reaches_a_watcher_on_the_same_store(state) -> None:
    """The gateway reads holds at each login: a release from the CLI counts at the next one."""
    store = open_store(Config(state_dir=state), state)
    events: list = []
    watcher = LoginWatcher(store, None, events.append, LoginWatch)
    for _ in range(5):
        watcher.attempt("smtp", "bob", "10.1.0.5", "office", ok=False)
    assert watcher.check("smtp", "bob", "10.1.0.5", "office").why == "account frozen"
    assert run(state, "unfreeze", "bob") == 0
    assert watcher.check("smtp", "bob", "10.1.0.5", "office") is None
    # the failure count starts over: one more wrong password does not freeze again
    watcher.attempt("smtp", "bob", "10.1.0.5", "office", ok=False)
    assert watcher.check("smtp", "bob", "10.1.0.5", "office") is None
    store.close()


def test_blocked_addresses_are_listed_and_can_be_unblocked(state, capsys) -> None:
    store = open_store(Config(state_dir=state), state)
    now = time.time()
    store.put_hold(Hold("address", "10.2.0.66", "spraying", since=now, until=now + 900, level=2))
    store.put_hold(Hold("address", "10.2.0.67", "spraying", since=now - 99, until=now - 9))
    store.close()
    assert run(state, "list") == 0
    out = capsys.readouterr().out
    assert "10.2.0.66" in out and "address ×2" in out and "10.2.0.67" not in out  # ended
    assert run(state, "list", "--all") == 0
    assert "10.2.0.67" in capsys.readouterr().out
    assert run(state, "unblock", "10.2.0.66") == 0
    assert [h.name for h in _holds(state, "address")] == ["10.2.0.67"]
    event = _events(state)[-1]
    assert (event["type"], event["source_ip"], event["user"]) == (
        "address.unblocked",
        "10.2.0.66",
        "",
    )
    assert event["action"] == "release" and event["detail"].startswith("block 2 since ")


def test_a_state_dir_without_a_record_is_an_error(tmp_path, capsys) -> None:
    assert run(tmp_path / "nowhere", "freeze", "alice") == 2
    assert "no audit record" in capsys.readouterr().err
