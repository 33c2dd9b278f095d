"""A held sender at the real relay: external recipients refused (550, "held for review"),
colleagues still reached; the decision events carry the message size."""

from __future__ import annotations

import functools
import smtplib
import time

import pytest

from audit.events import MemoryLog
from audit.sqlite_store import SQLiteStore
from audit.store import Hold
from audit.transfers import hold_lookup
from mailrelay.judge import judge
from mailrelay.server import RelaySettings
from mailrelay.services import Services
from rules.policy.holder import PolicyHolder
from tests.audit.conftest import KEY
from tests.mailrelay.test_judge_rig import COLLEAGUE, MAIL_POLICY, OTHER, SENDER, mail
from tests.support.smtp import RecordingSink, RelayThread

NOTE = mail(to=OTHER, subject="会议纪要", text="周五的会议改到下午三点。")


@pytest.fixture
def rig(tmp_path):
    store = SQLiteStore(tmp_path / "audit.db", KEY)
    log = MemoryLog()
    services = Services(
        policy=PolicyHolder(MAIL_POLICY),
        hash_key=KEY,
        record=log.record,
        state_dir=tmp_path / "state",
        sender_hold=hold_lookup(store),
    )
    with RecordingSink() as sink:
        settings = RelaySettings(
            listen=("127.0.0.1", 0), hostname="relay.test", smarthost=sink.address, workers=1
        )
        relay = RelayThread(settings, functools.partial(judge, services=services), tmp_path)
        relay.start()
        try:
            yield store, log, relay, sink
        finally:
            relay.stop()
            store.close()


def _send(relay, *recipients: str) -> tuple[int, bytes]:
    with smtplib.SMTP(*relay.address, timeout=60) as client:
        client.ehlo("client.firm.example")
        client.mail(SENDER)
        for r in recipients:
            assert client.rcpt(r)[0] == 250
        return client.data(NOTE)


def test_a_held_sender_cannot_mail_out_but_reaches_colleagues(rig):
    store, log, relay, sink = rig
    assert _send(relay, OTHER)[0] == 250  # not held yet
    sink.wait_for(1)
    reason = "127.0.0.1 sent 6 distinct sensitive values to external destinations within 1 h"
    store.put_hold(Hold("sender", "127.0.0.1", reason, since=time.time()))
    code, text = _send(relay, OTHER)
    assert code == 550
    assert b"held for review: 127.0.0.1 sent 6 distinct" in text
    refused = [e for e in log.events if e["type"] == "smtp.message" and e["action"] == "block"]
    assert refused[-1]["rule"] == "sender-held"
    assert refused[-1]["size"] >= len(NOTE)
    assert _send(relay, COLLEAGUE)[0] == 250  # the office is not "external sending"
    assert [m.rcpt_tos for m in sink.wait_for(2)] == [(OTHER,), (COLLEAGUE,)]
    store.drop_hold("sender", "127.0.0.1")
    assert _send(relay, OTHER)[0] == 250
