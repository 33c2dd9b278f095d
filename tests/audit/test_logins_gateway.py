"""Anomalous logins end to end: `leakguard run` as a subprocess, real SMTP AUTH after STARTTLS,
the real `leakguard accounts` CLI beside it, events and alerts read from the state directory.

Loopback is the shipped policy's office zone; 127.0.0.0/8 lets a client pick its source
address, so "another subnet" and "another address" are real TCP connections from there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import smtplib
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mailrelay import auth
from tests.support.gateway import ROOT, running_gateway

PASSWORD = "correct horse battery staple"
WATCH = """\
version: 1
logins:
  failures: {count: 3, within: 10m}
  spraying: {accounts: 3, within: 10m, block_for: 15m}
  unusual: {new_subnet: alert, external: hold, odd_hour: off}
"""


@pytest.fixture
def gateway_files(tmp_path: Path) -> Path:
    """A config naming a users file (alice, bob, carol, dave) and a policy with watch.yaml."""
    policy = tmp_path / "policy"
    shutil.copytree(ROOT / "rules" / "default", policy)
    (policy / "watch.yaml").write_text(WATCH)
    users = tmp_path / "users"
    for name in ("alice", "bob", "carol", "dave"):
        auth.set_user(users, name, PASSWORD)
    config = tmp_path / "leakguard.yaml"
    config.write_text(
        "version: 1\n"
        f"policy: {policy}\n"
        "contact: security@firm.example\n"
        f"relay:\n  users_file: {users}\n  hostname: localhost\n"
    )
    return config


def _relay_port(stdout: str) -> int:
    match = re.search(r"mail relay listening on 127\.0\.0\.1:(\d+)", stdout)
    assert match, stdout
    return int(match[1])


def smtp_login(gw, account: str, password: str, source: str = "127.0.0.1") -> int:
    """One connection, STARTTLS, AUTH PLAIN: the reply code (235 in, 535 refused)."""
    context = ssl.create_default_context(cafile=str(gw.ca_path))
    context.check_hostname = False  # the relay's certificate names the relay's host name
    with smtplib.SMTP(
        "127.0.0.1", _relay_port(gw.stdout), timeout=30, source_address=(source, 0)
    ) as client:
        client.starttls(context=context)
        client.ehlo()
        client.user, client.password = account, password
        try:  # one AUTH PLAIN (login() would go on to try AUTH LOGIN after a 535)
            code, _ = client.auth("PLAIN", client.auth_plain)
        except smtplib.SMTPAuthenticationError as err:
            code = err.smtp_code
    return code


def leakguard(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args, "--state-dir", str(state)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "SUDO_USER": "secadmin"},
    )


def alerts(state: Path, kind: str, timeout: float = 10.0) -> list[dict]:
    """The JSON-lines alert sink's alerts of one kind, once there is one."""
    deadline = time.monotonic() + timeout
    while True:
        path = state / "alerts.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        found = [a for a in map(json.loads, lines) if a["kind"] == kind]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_brute_force_freezes_then_the_cli_unfreezes(tmp_path, gateway_files) -> None:
    state = tmp_path / "var"
    with running_gateway("--config", str(gateway_files), state_dir=state) as gw:
        assert smtp_login(gw, "alice", PASSWORD) == 235
        assert [smtp_login(gw, "alice", f"guess {i}") for i in range(3)] == [535] * 3
        frozen = gw.wait_for_event(lambda e: e["type"] == "account.frozen")
        assert smtp_login(gw, "alice", PASSWORD) == 535  # the right password, refused
        refused = gw.wait_for_event(
            lambda e: e["type"] == "login.failure" and e["reason"] == "account frozen"
        )
        [alert] = alerts(state, "login.bruteforce")
        listed = leakguard(state, "accounts", "list", "--json")
        unfrozen = leakguard(state, "accounts", "unfreeze", "alice", "--reason", "user called")
        recorded = gw.wait_for_event(lambda e: e["type"] == "account.unfrozen")
        assert smtp_login(gw, "alice", PASSWORD) == 235
        events = gw.events()
    assert frozen["user"] == "alice" and frozen["channel"] == "smtp"
    assert frozen["source_ip"] == "127.0.0.1" and frozen["source_zone"] == "office"
    assert refused["user"] == "alice"
    assert alert["severity"] == "critical" and alert["user"] == "alice"
    assert listed.returncode == 0, listed.stderr
    assert [json.loads(line)["name"] for line in listed.stdout.splitlines()] == ["alice"]
    assert unfrozen.returncode == 0, unfrozen.stderr
    assert recorded["user"] == "alice" and recorded["reason"] == "user called"
    assert recorded["by"].startswith("secadmin")
    types = [e["type"] for e in events if e["type"].startswith(("login.", "account."))]
    assert types == [  # one event per attempt
        "login.success",
        *["login.failure"] * 3,
        "account.frozen",
        "login.failure",  # the right password while frozen
        "account.unfrozen",
        "login.success",
    ]
    everything = json.dumps(events) + (state / "alerts.jsonl").read_text() + gw.stderr
    assert PASSWORD not in everything and "guess 1" not in everything


def test_spraying_from_one_address_blocks_it(tmp_path, gateway_files) -> None:
    state = tmp_path / "var"
    sprayer = "127.0.9.9"
    with running_gateway("--config", str(gateway_files), state_dir=state) as gw:
        codes = [smtp_login(gw, name, "Spring2026!", sprayer) for name in ("bob", "carol", "dave")]
        blocked = gw.wait_for_event(lambda e: e["type"] == "address.blocked")
        assert smtp_login(gw, "bob", PASSWORD, sprayer) == 535  # blocked: not even checked
        assert smtp_login(gw, "bob", PASSWORD, "127.0.0.1") == 235  # bob is not frozen
        [alert] = alerts(state, "login.spraying")
        listed = leakguard(state, "accounts", "list")
    assert codes == [535, 535, 535]
    assert blocked["source_ip"] == sprayer and "password spraying" in blocked["reason"]
    assert alert["source_ip"] == sprayer and alert["detail"]["level"] == 1
    assert sprayer in listed.stdout and "address" in listed.stdout


def test_a_login_from_a_new_subnet_alerts(tmp_path, gateway_files) -> None:
    state = tmp_path / "var"
    with running_gateway("--config", str(gateway_files), state_dir=state) as gw:
        assert smtp_login(gw, "carol", PASSWORD, "127.0.0.1") == 235  # learns 127.0.0.0/24
        assert smtp_login(gw, "carol", PASSWORD, "127.0.0.7") == 235  # the same /24
        assert smtp_login(gw, "carol", PASSWORD, "127.0.5.1") == 235  # a new one: alert only
        anomaly = gw.wait_for_event(lambda e: e["type"] == "login.anomaly")
        [alert] = alerts(state, "login.new_subnet")
        anomalies = [e for e in gw.events() if e["type"] == "login.anomaly"]
    assert len(anomalies) == 1
    assert anomaly["user"] == "carol" and anomaly["source_ip"] == "127.0.5.1"
    assert anomaly["reason"] == "login from a new subnet 127.0.5.0/24"
    assert alert["user"] == "carol" and alert["severity"] == "warning"


def test_a_session_open_before_the_freeze_sends_nothing_after_it(tmp_path, gateway_files) -> None:
    state = tmp_path / "var"
    message = "From: alice@firm.example\r\nTo: bob@firm.example\r\nSubject: hi\r\n\r\nhello\r\n"
    with running_gateway("--config", str(gateway_files), state_dir=state) as gw:
        context = ssl.create_default_context(cafile=str(gw.ca_path))
        context.check_hostname = False
        with smtplib.SMTP("127.0.0.1", _relay_port(gw.stdout), timeout=30) as client:
            client.starttls(context=context)
            client.login("alice", PASSWORD)
            assert client.sendmail("alice@firm.example", ["bob@firm.example"], message) == {}
            froze = leakguard(state, "accounts", "freeze", "alice", "--reason", "phished")
            assert froze.returncode == 0, froze.stderr
            with pytest.raises(smtplib.SMTPSenderRefused) as refused:
                client.sendmail("alice@firm.example", ["bob@firm.example"], message)
        event = gw.wait_for_event(
            lambda e: e["type"] == "smtp.refused" and "account frozen" in e.get("detail", "")
        )
    assert refused.value.smtp_code == 535
    assert event["user"] == "alice"
