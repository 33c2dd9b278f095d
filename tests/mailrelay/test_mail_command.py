"""`leakguard mail queue|flush|quarantine …` against a running relay's spool."""

from __future__ import annotations

import argparse
import dataclasses
import email
import json
import smtplib
import time
from pathlib import Path

import pytest

from gateway import mail_command
from mailrelay.server import RelaySettings
from mailrelay.spool import QUARANTINE, QUEUE
from tests.support.smtp import RAW_ID, RecordingSink, RelayThread, mixed_judge

SENDER = "alice@firm.example"
HELD = "partner@hold.example"
COURT = "clerk@court.example"
BODY = f"身份证 {RAW_ID}"


@pytest.fixture
def sink():
    with RecordingSink() as s:
        yield s


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def start(state: Path, sink: RecordingSink):
    running: list[RelayThread] = []

    def start_relay(**overrides) -> RelayThread:
        base = RelaySettings(
            listen=("127.0.0.1", 0),
            hostname="relay.test",
            smarthost=sink.address,
            smarthost_verify=False,
            retry_initial=0.2,
            retry_max=0.5,
            workers=2,
        )
        relay = RelayThread(dataclasses.replace(base, **overrides), mixed_judge, state).start()
        running.append(relay)
        return relay

    yield start_relay
    for relay in running:
        relay.stop()


def send(relay: RelayThread, rcpts: list[str], tag: str = "q") -> str:
    data = (
        f"From: {SENDER}\r\nSubject: list\r\nMessage-ID: <{tag}@firm.example>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        f"{BODY}\r\n--b\r\nContent-Type: text/csv\r\n"
        'Content-Disposition: attachment; filename="debts.csv"\r\n\r\n'
        f"id\r\n{RAW_ID}\r\n--b--\r\n"
    ).encode()
    with smtplib.SMTP(*relay.address) as client:
        client.ehlo("c")
        client.mail(SENDER)
        for r in rcpts:
            client.rcpt(r)
        code, text = client.data(data)
    assert code == 250
    return text.split()[-1].decode()


def wait_until(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.02)
    raise AssertionError("timed out")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = mail_command.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def held(state: Path, relay: RelayThread, rcpts=(HELD,)) -> str:
    message_id = send(relay, list(rcpts))
    wait_until(lambda: relay.relay.spool.names(QUEUE) == [])
    assert message_id in relay.relay.spool.names(QUARANTINE)
    return message_id


def test_quarantine_list_and_show(capsys, state, start, sink):
    relay = start()
    message_id = held(state, relay, (HELD, COURT))

    code, out, _ = run(capsys, "quarantine", "list", "--state-dir", str(state), "--json")
    assert code == 0
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert row["id"] == message_id and row["sender"] == SENDER
    (group,) = row["groups"]
    assert group["recipients"] == [HELD] and group["rule"] == "hold-for-review"
    assert group["findings"][0]["masked"] == "110105********002X"

    code, out, _ = run(capsys, "quarantine", "list", "--state-dir", str(state))
    assert code == 0 and message_id in out and "hold-for-review" in out
    assert "cn_resident_id" in out

    code, out, _ = run(capsys, "quarantine", "show", message_id, "--state-dir", str(state))
    assert code == 0
    assert "110105********002X" in out and "hold-for-review" in out
    assert "text/csv debts.csv" in out and "--raw" in out
    assert RAW_ID not in out  # content is never printed, only its shape

    code = mail_command.main(["quarantine", "show", message_id, "--raw", "--state-dir", str(state)])
    raw = capsys.readouterr().out
    assert code == 0 and raw.startswith("Received: from c ") and RAW_ID in raw

    code, out, _ = run(
        capsys, "quarantine", "show", message_id, "--json", "--state-dir", str(state)
    )
    shown = json.loads(out)
    assert [p["type"] for p in shown["parts"]] == ["text/plain", "text/csv"]


def test_release_delivers_the_held_recipients(capsys, state, start, sink):
    relay = start()
    message_id = held(state, relay, (HELD, COURT))
    sink.wait_for(2)  # COURT's copy and the held notice
    before = len(sink.messages)

    code, out, _ = run(
        capsys, "quarantine", "release", message_id, "--state-dir", str(state), "--note", "ok'd"
    )
    assert code == 0
    assert f"{message_id} released (queued as {message_id}.released)" in out
    assert "the relay is retrying the queue now" in out
    sink.wait_for(before + 1)
    (released,) = sink.to(HELD)
    assert released.mail_from == SENDER and RAW_ID.encode() in released.data
    wait_until(lambda: relay.relay.spool.names(QUEUE) == [])
    assert relay.relay.spool.names(QUARANTINE) == []
    (event,) = relay.events_of("smtp.quarantine.release")
    assert "released by " in event["detail"] and "ok'd" in event["detail"]
    assert event["rule"] == "hold-for-review" and event["destination"] == "p***@hold.example"

    code, _, err = run(capsys, "quarantine", "release", message_id, "--state-dir", str(state))
    assert code == 2 and "no quarantined message" in err


def test_reject_sends_the_sender_a_dsn(capsys, state, start, sink):
    relay = start()
    message_id = held(state, relay)
    sink.wait_for(1)  # the held notice

    code, out, _ = run(
        capsys,
        "quarantine", "reject", message_id,
        "--note", "no agreement with this party",
        "--state-dir", str(state),
    )  # fmt: skip
    assert code == 0 and "rejected" in out
    sink.wait_for(2)
    assert sink.to(HELD) == []
    report = email.message_from_bytes(sink.messages[-1].data)
    text, status, _ = report.get_payload()
    body = text.get_payload(decode=True).decode()
    assert "rejected by the security team after review" in body
    assert "no agreement with this party" in body
    assert "Action: failed" in status.as_string()
    wait_until(lambda: relay.events_of("smtp.quarantine.reject"))
    wait_until(lambda: relay.events_of("smtp.bounce"))
    wait_until(lambda: relay.relay.spool.names(QUEUE) == [])


def test_a_decision_without_a_running_relay_waits_for_it(capsys, state, start, sink):
    relay = start()
    message_id = held(state, relay)
    sink.wait_for(1)
    relay.stop()
    code, out, _ = run(capsys, "quarantine", "release", message_id, "--state-dir", str(state))
    assert code == 0 and "no running relay took it yet" in out
    start()
    (got,) = wait_until(lambda: sink.to(HELD))
    assert got.mail_from == SENDER


def test_queue_and_flush(capsys, state, start, sink):
    sink.stop()
    relay = start(retry_initial=30, retry_max=60)
    message_id = send(relay, [COURT, "b@court.example"])
    wait_until(lambda: relay.events_of("smtp.delivery.deferred"))
    time.sleep(0.2)

    code, out, _ = run(capsys, "queue", "--state-dir", str(state), "--json")
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert row["id"] == message_id and row["waiting"] == [COURT, "b@court.example"]
    assert row["attempts"] == 1 and row["next_attempt"] > time.time() + 20
    assert "Connect" in row["last_error"] or "connect" in row["last_error"]

    code, out, _ = run(capsys, "queue", "--state-dir", str(state))
    assert message_id in out and "0/2" not in out and "2/2" in out

    sink.start()
    code, out, _ = run(capsys, "flush", "--state-dir", str(state))
    assert code == 0 and "retrying the queue now" in out
    sink.wait_for(1, timeout=5)
    wait_until(lambda: relay.relay.spool.names(QUEUE) == [])
    code, out, _ = run(capsys, "queue", "--state-dir", str(state))
    assert "the queue is empty" in out


def test_the_state_directory_from_the_config_file(capsys, tmp_path, state, start):
    start()
    config = tmp_path / "leakguard.yaml"
    config.write_text("version: 1\nstate_dir: state\n")
    code, out, _ = run(capsys, "queue", "--config", str(config))
    assert code == 0 and "the queue is empty" in out


def test_no_spool_is_a_clear_error(capsys, tmp_path):
    code, _, err = run(capsys, "queue", "--state-dir", str(tmp_path / "nowhere"))
    assert code == 2 and "no mail spool" in err


def test_bad_ids_are_refused(capsys, state, start):
    start()
    for bad in ("../../etc", "x/y", "nope"):
        code, _, err = run(capsys, "quarantine", "show", bad, "--state-dir", str(state))
        assert code == 2 and "no quarantined message" in err
        code, _, err = run(capsys, "quarantine", "reject", bad, "--state-dir", str(state))
        assert code == 2


def test_add_parser_registers_the_mail_command():
    parser = argparse.ArgumentParser(prog="leakguard")
    sub = parser.add_subparsers(dest="command", required=True)
    mail_command.add_parser(sub)
    args = parser.parse_args(["mail", "quarantine", "release", "ID", "--note", "x"])
    assert args.func.__name__ == "wrapped" and args.decision == "release"
    assert parser.parse_args(["mail", "queue", "--json", "--state-dir", "v"]).json
