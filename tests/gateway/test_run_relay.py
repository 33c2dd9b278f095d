"""`leakguard run` starts the mail relay beside the proxy: real SMTP through the subprocess."""

from __future__ import annotations

import json
import re
import smtplib
import time
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.support.gateway import running_gateway

ID = "110101199003074477"  # a valid resident ID (checksum correct), synthetic


def _relay_port(stdout: str) -> int:
    match = re.search(r"mail relay listening on 127\.0\.0\.1:(\d+)", stdout)
    assert match, stdout
    return int(match[1])


def _mail(to: str, body: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "clerk@firm.example", to, "case file"
    msg.set_content(body)
    return msg


def _sink_messages(state: Path, timeout: float = 10.0) -> list[bytes]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted((state / "sink").glob("*.eml"))
        if found:
            return [p.read_bytes() for p in found]
        time.sleep(0.1)
    return []


def test_the_relay_delivers_allowed_mail_and_refuses_pii_to_webmail(tmp_path: Path) -> None:
    state = tmp_path / "var"
    with running_gateway(state_dir=state) as gw:
        port = _relay_port(gw.stdout)
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            with pytest.raises(smtplib.SMTPDataError) as refused:
                smtp.send_message(_mail("friend@qq.com", f"身份证 {ID}"))
            assert smtp.send_message(_mail("colleague@example.org", "lunch at noon")) == {}
        delivered = _sink_messages(state)
        events = gw.events()
    assert refused.value.smtp_code == 550
    assert b"5.7.1" in refused.value.smtp_error
    assert ID.encode() not in refused.value.smtp_error
    assert len(delivered) == 1 and b"lunch at noon" in delivered[0]
    assert ID.encode() not in b"".join(delivered)
    types = [e["type"] for e in events]
    assert "smtp.message" in types and "smtp.delivery" in types
    assert ID not in json.dumps(events)
    assert ID not in gw.stdout + gw.stderr


def test_relay_only_gateway_runs_without_the_proxy(tmp_path: Path) -> None:
    with running_gateway(
        "--no-proxy", "--relay-listen", "127.0.0.1:0", state_dir=tmp_path / "var", listen=None
    ) as gw:
        port = _relay_port(gw.stdout)
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            code, _ = smtp.noop()
    assert code == 250
    assert "proxy listening" not in gw.stdout
