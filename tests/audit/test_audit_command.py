"""`leakguard audit verify|export|events` through the real CLI, in subprocesses.

Most cases fill a real store in a state directory (audit.open, as the
gateway does); the first runs a real `leakguard run`, proxies a request
through it and verifies the record while the gateway still runs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from audit.chain import verify
from audit.events import Event
from audit.open import DB_FILE, open_store
from gateway.config import AuditConfig, Config
from tests.support.gateway import ROOT, run_gateway_once, running_gateway
from tests.support.origin import Origin
from tests.support.redis import free_port


def leakguard(*argv: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *map(str, argv)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def at(hours_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(hours=hours_ago)).isoformat(timespec="milliseconds")


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """A state directory whose store holds ten events, one an hour from 10 h ago."""
    directory = tmp_path / "var"
    store = open_store(Config(), directory)
    for i in range(10):
        kind = "login.failure" if i % 3 == 0 else "http.request"
        store.append(Event(type=kind, user=f"user{i}", time=at(10 - i), action="allow").to_dict())
    store.close()
    return directory


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


# -- through a real gateway -------------------------------------------------------------------


def test_a_proxied_request_is_in_the_store_and_the_chain_verifies_beside_the_gateway(tmp_path):
    state = tmp_path / "var"
    with (
        Origin("127.0.0.1", name="intranet") as origin,
        running_gateway("--resolve", "intranet.example=127.0.0.1", state_dir=state) as gw,
        httpx.Client(proxy=gw.proxy_url, trust_env=False, timeout=15) as client,
    ):
        resp = client.get(f"http://intranet.example:{origin.port}/hello")
        mirrored = gw.wait_for_event(lambda e: e.get("destination") == "intranet.example")
        # the running gateway's events reach the store too (within milliseconds); the
        # admin commands read and verify it while the gateway runs
        listed = leakguard("audit", "events", "--state-dir", str(state), "--json")
        assert listed.returncode == 0, listed.stderr
        events = [json.loads(line) for line in listed.stdout.splitlines()]
        (stored,) = [e for e in events if e["id"] == mirrored["id"]]
        assert stored["type"] == mirrored["type"] and stored["seq"] >= 1
        assert {k: stored[k] for k in mirrored} == mirrored  # the mirror: the same event
        checked = leakguard("audit", "verify", "--state-dir", str(state))
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "intact" in checked.stdout
    assert resp.status_code in (200, 403)
    # after shutdown: the record holds everything, the verify run among it, still intact
    out = tmp_path / "export.jsonl"
    exported = leakguard("audit", "export", "--state-dir", str(state), "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    events = [json.loads(line) for line in _lines(out)]
    assert any(e["id"] == mirrored["id"] for e in events)
    assert any(e["type"] == "audit.verify" and e["action"] == "intact" for e in events)
    assert events[-1]["type"] == "audit.export"
    again = leakguard("audit", "verify", "--state-dir", str(state), "--export", str(out))
    assert again.returncode == 0, again.stdout + again.stderr
    assert (state / DB_FILE).stat().st_mode & 0o077 == 0  # the record is the owner's only


# -- verify -----------------------------------------------------------------------------------


def test_verify_an_intact_store_and_record_that_it_ran(state):
    result = leakguard("audit", "verify", "--state-dir", str(state))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("intact (10 events, chain and head checkpoint verified)")
    listed = leakguard("audit", "events", "--state-dir", str(state), "--type", "audit.", "--json")
    (event,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert event["type"] == "audit.verify" and event["action"] == "intact"
    assert event["seq"] == 11 and event["user"]
    mirror = (state / "events.jsonl").read_text().splitlines()
    assert json.loads(mirror[-1])["id"] == event["id"]


def test_verify_finds_an_edit_in_the_sqlite_file_and_says_where(state):
    import sqlite3

    db = sqlite3.connect(state / DB_FILE)
    db.execute("UPDATE events SET body = json_set(body, '$.user', 'mallory') WHERE seq = 7")
    db.execute("DELETE FROM events WHERE seq = 9")
    db.commit()
    db.close()
    (ident,) = [e["id"] for e in _store_events(state) if e["seq"] == 7]
    result = leakguard("audit", "verify", "--state-dir", str(state), "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["intact"] is False
    assert [(p["seq"], p["id"], p["what"]) for p in report["problems"]] == [
        (7, ident, "content does not match its hash: edited (or forged)"),
        (9, "", "missing: deleted"),
    ]
    text = leakguard("audit", "verify", "--state-dir", str(state))
    assert text.returncode == 1
    assert "TAMPERED — 2 problem(s)" in text.stdout
    assert f"seq 7 (id {ident}): content does not match its hash" in text.stdout


def _store_events(state: Path) -> list[dict]:
    store = open_store(Config(), state)
    try:
        return list(store.events())
    finally:
        store.close()


def test_verify_errors_are_status_2(tmp_path, state):
    missing = leakguard("audit", "verify", "--state-dir", str(tmp_path / "nowhere"))
    assert missing.returncode == 2
    assert "no installation key in" in missing.stderr
    assert not (tmp_path / "nowhere").exists()  # nothing created by looking
    no_file = leakguard("audit", "verify", "--state-dir", str(state), "--export", "/no/such")
    assert no_file.returncode == 2 and "/no/such" in no_file.stderr
    bad = tmp_path / "leakguard.yaml"
    bad.write_text("version: 1\naudit:\n  store: mysql\n")
    config = leakguard("audit", "verify", "--config", str(bad))
    assert config.returncode == 2
    assert f"{bad}:3" in config.stderr and "audit.store" in config.stderr
    when = leakguard("audit", "export", "--state-dir", str(state), "--since", "yesterday")
    assert when.returncode == 2 and "is not a time" in when.stderr


# -- export -----------------------------------------------------------------------------------


@pytest.fixture
def export(state, tmp_path) -> Path:
    out = tmp_path / "export.jsonl"
    result = leakguard("audit", "export", "--state-dir", str(state), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "10 events (seq 1-10) written to" in result.stderr
    return out


def _verify_export(state: Path, path: Path) -> tuple[int, dict]:
    result = leakguard(
        "audit", "verify", "--state-dir", str(state), "--export", str(path), "--json"
    )
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


def test_an_export_is_json_lines_with_the_chain_and_a_closing_record(state, export):
    events = [json.loads(line) for line in _lines(export)]
    assert [e["seq"] for e in events[:-1]] == list(range(1, 11))
    assert all({"seq", "prev", "hash", "id", "time", "type"} <= set(e) for e in events)
    closing = events[-1]
    assert closing["type"] == "audit.export"
    assert closing["export"] == {"first": 1, "last": 10, "count": 10}
    assert _verify_export(state, export) == (
        0,
        {
            "intact": True,
            "verified": f"export {export}",
            "events": 10,
            "problems": [],
            "notes": [],
        },
    )


def _problems(state, path) -> list[tuple]:
    status, report = _verify_export(state, path)
    assert status == 1
    return [(p["line"], p["seq"], p["what"]) for p in report["problems"]]


def test_an_edited_export_line_is_found(state, export):
    lines = _lines(export)
    event = json.loads(lines[4])
    event["action"] = "block"
    lines[4] = json.dumps(event, ensure_ascii=False) + "\n"
    export.write_text("".join(lines))
    assert _problems(state, export) == [
        (5, 5, "content does not match its hash: edited (or forged)")
    ]


def test_a_deleted_export_line_is_found(state, export):
    lines = _lines(export)
    del lines[3]
    export.write_text("".join(lines))
    assert _problems(state, export) == [
        (4, 4, "missing: deleted"),
        (10, 11, "the export closes 10 events but holds 9: events removed or added"),
    ]


def test_an_inserted_export_line_is_found(state, export):
    lines = _lines(export)
    forged = json.loads(lines[2]) | {"id": "forged", "user": "mallory"}
    lines.insert(3, json.dumps(forged) + "\n")
    export.write_text("".join(lines))
    problems = _problems(state, export)
    assert (4, 3, "seq 3 where seq 4 belongs: inserted") in problems
    assert any("closes 10 events but holds 11" in p[2] for p in problems)


def test_a_cut_export_is_found_by_its_closing_record(state, export):
    lines = _lines(export)
    export.write_text("".join(lines[:7] + lines[-1:]))  # events 8-10 gone, the closing kept
    assert _problems(state, export) == [
        (8, 11, "the export closes 10 events but holds 7: events removed or added"),
        (8, 11, "the export's last event should be seq 10, is 7: cut or extended"),
    ]


def test_an_export_without_its_closing_record_verifies_with_a_note(state, export):
    lines = _lines(export)
    export.write_text("".join(lines[:-1]))
    status, report = _verify_export(state, export)
    assert status == 0 and report["events"] == 10
    assert "a cut end cannot be detected" in report["notes"][0]


def test_a_line_that_is_not_json_is_found(state, export):
    lines = _lines(export)
    lines[1] = lines[1][:40] + "\n"
    export.write_text("".join(lines))
    problems = _problems(state, export)
    assert (2, None, "not a JSON object: edited or cut") in problems


def test_an_export_checked_with_another_installations_key_fails(tmp_path, export):
    other = tmp_path / "other"
    open_store(Config(), other).close()
    result = leakguard("audit", "verify", "--state-dir", str(other), "--export", str(export))
    assert result.returncode == 1
    assert "content does not match its hash" in result.stdout


def test_an_export_of_a_period_is_contiguous_and_verifies_alone(state, tmp_path):
    out = tmp_path / "period.jsonl"
    since = (datetime.now(UTC) - timedelta(hours=6, minutes=30)).isoformat()
    until = (datetime.now(UTC) - timedelta(hours=2, minutes=30)).isoformat()
    result = leakguard(
        "audit", "export", "--state-dir", str(state), "--since", since, "--until", until,
        "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in _lines(out)]
    assert [e["seq"] for e in events[:-1]] == [5, 6, 7, 8]  # 6, 5, 4 and 3 hours ago
    assert _verify_export(state, out)[0] == 0


def test_export_to_standard_output(state):
    result = leakguard("audit", "export", "--state-dir", str(state), "--since", "3h")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["seq"] for e in events] == [9, 10, 11]  # 2 and 1 hour ago, then the closing


# -- events -----------------------------------------------------------------------------------


def test_events_by_type_family_and_limit(state):
    result = leakguard("audit", "events", "--state-dir", str(state), "--type", "login.")
    assert result.returncode == 0, result.stderr
    rows = result.stdout.splitlines()
    assert rows[0].split() == ["SEQ", "TIME", "TYPE", "USER", "FROM", "ACTION", "RULE", "TO"]
    assert [r.split()[0] for r in rows[1:]] == ["1", "4", "7", "10"]
    last = leakguard("audit", "events", "--state-dir", str(state), "--limit", "2", "--json")
    assert [json.loads(line)["seq"] for line in last.stdout.splitlines()] == [9, 10]


# -- Redis, by the config file ---------------------------------------------------------------


def test_the_commands_use_the_redis_store_the_config_names(tmp_path, redis_server, redis_prefix):
    state = tmp_path / "var"
    config = tmp_path / "leakguard.yaml"
    config.write_text(
        f"version: 1\nstate_dir: var\naudit:\n  store: redis\n"
        f"  redis_url: {redis_server.url}\n  redis_prefix: '{redis_prefix}'\n"
    )
    audit = AuditConfig(store="redis", redis_url=redis_server.url, redis_prefix=redis_prefix)
    store = open_store(Config(audit=audit), state)
    store.append_many([Event(type="login.success", user="alice").to_dict() for _ in range(3)])
    store.close()
    assert not (state / DB_FILE).exists()
    result = leakguard("audit", "verify", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "audit record in Redis" in result.stdout and "intact (3 events" in result.stdout


def test_two_gateways_on_one_redis_write_one_chain(tmp_path, redis_server, redis_prefix):
    """Two real `leakguard run` processes, one Redis, one installation key (copied, as the
    deployment notes say): requests through both land in one chain that verifies; a third
    gateway with its own key is refused at start-up instead of forking the chain."""
    config = tmp_path / "leakguard.yaml"
    config.write_text(
        f"version: 1\naudit:\n  store: redis\n  redis_url: {redis_server.url}\n"
        f"  redis_prefix: '{redis_prefix}'\n"
    )
    first, second = tmp_path / "gw1", tmp_path / "gw2"
    open_store(Config(), first).close()  # creates gw1's installation key
    second.mkdir(mode=0o700)
    shutil.copy2(first / "installation.key", second / "installation.key")
    ids = []
    with (
        Origin("127.0.0.1", name="intranet") as origin,
        running_gateway(
            "--config", str(config), "--resolve", "intranet.example=127.0.0.1", state_dir=first
        ) as gw1,
        running_gateway(
            "--config", str(config), "--resolve", "intranet.example=127.0.0.1", state_dir=second
        ) as gw2,
    ):
        for gw in (gw1, gw2, gw1):
            with httpx.Client(proxy=gw.proxy_url, trust_env=False, timeout=15) as client:
                client.get(f"http://intranet.example:{origin.port}/x")
            event = gw.wait_for_event(
                lambda e: e.get("destination") == "intranet.example" and e["id"] not in ids
            )
            ids.append(event["id"])
        stranger = run_gateway_once("--config", str(config), state_dir=tmp_path / "gw3")
        assert stranger.returncode == 2
        assert "another installation key" in stranger.stderr
    audit = AuditConfig("redis", redis_server.url, redis_prefix)
    store = open_store(Config(audit=audit), first)
    try:
        events = list(store.events())
        assert verify(events, store.chain_key, head=store.head()) == (len(events), [])
        assert {e["id"] for e in events} >= set(ids)
    finally:
        store.close()
    checked = leakguard("audit", "verify", "--config", config, "--state-dir", second)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_gateway_whose_redis_is_unreachable_does_not_start(tmp_path):
    config = tmp_path / "leakguard.yaml"
    port = free_port()
    config.write_text(
        f"version: 1\naudit:\n  store: redis\n  redis_url: redis://:pw@127.0.0.1:{port}/0\n"
    )
    result = run_gateway_once("--config", str(config), state_dir=tmp_path / "var")
    assert result.returncode == 2
    assert f"leakguard run: audit store redis://127.0.0.1:{port}/0:" in result.stderr
    assert ":pw@" not in result.stderr
