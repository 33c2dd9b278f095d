"""The real judge (mailrelay.judge) in the relay, through the quarantine and `leakguard mail`.

The policy is the judging tests' mail policy (tests/data/mail/policy): business
agreements to an outside address without an agreement are held for review.
"""

from __future__ import annotations

import email
import functools
import smtplib
import time

import pytest

from gateway import mail_command
from mailrelay.judge import judge
from mailrelay.server import RelaySettings
from mailrelay.spool import QUARANTINE, QUEUE
from tests.mailrelay.test_judge_rig import COLLEAGUE, MAIL_POLICY, OTHER, SENDER, mail
from tests.support.smtp import RecordingSink, RelayThread

AGREEMENT = mail(to=OTHER, subject="债权转让协议 草稿", text="请审阅债权转让协议。")
HELD_RULE = "agreements-held-for-review"


@pytest.fixture
def sink():
    with RecordingSink() as s:
        yield s


@pytest.fixture
def state(tmp_path):
    return tmp_path / "state"


@pytest.fixture
def rig(shared, state):
    return shared.rig(state, MAIL_POLICY)


@pytest.fixture
def relay(rig, sink, state):
    settings = RelaySettings(
        listen=("127.0.0.1", 0),
        hostname="relay.test",
        smarthost=sink.address,
        smarthost_verify=False,
        retry_initial=0.2,
        retry_max=0.5,
        workers=2,
    )
    running = RelayThread(settings, functools.partial(judge, services=rig.services), state)
    running.start()
    yield running
    running.stop()


def send(relay: RelayThread, recipients, data: bytes) -> str:
    with smtplib.SMTP(*relay.address, timeout=60) as client:
        client.ehlo("client.firm.example")
        client.mail(SENDER)
        for r in recipients:
            assert client.rcpt(r)[0] == 250
        code, text = client.data(data)
    assert code == 250, text
    return text.split()[-1].decode()


def wait_until(predicate, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.02)
    raise AssertionError("timed out")


def held_message(relay: RelayThread) -> str:
    message_id = send(relay, (OTHER, COLLEAGUE), AGREEMENT)
    wait_until(lambda: relay.relay.spool.names(QUEUE) == [])
    assert relay.relay.spool.names(QUARANTINE) == [message_id]
    return message_id


def test_a_held_group_is_quarantined_the_rest_delivered_and_the_sender_told(relay, sink):
    message_id = held_message(relay)
    sink.wait_for(2)
    (delivered,) = sink.to(COLLEAGUE)
    assert delivered.mail_from == SENDER and sink.to(OTHER) == []
    (notice,) = sink.to(SENDER)
    report = email.message_from_bytes(notice.data)
    text, status, _ = report.get_payload()
    assert "Action: delayed" in status.as_string() and OTHER in status.as_string()
    assert HELD_RULE in text.get_payload(decode=True).decode()
    (event,) = relay.events_of("smtp.quarantine")
    assert event["rule"] == HELD_RULE and message_id in event["detail"]


def test_release_through_the_command(relay, sink, state, capsys):
    message_id = held_message(relay)
    sink.wait_for(2)
    assert mail_command.main(["quarantine", "show", message_id, "--state-dir", str(state)]) == 0
    assert HELD_RULE in capsys.readouterr().out
    code = mail_command.main(["quarantine", "release", message_id, "--state-dir", str(state)])
    assert code == 0
    (released,) = wait_until(lambda: sink.to(OTHER))
    assert released.data.endswith(AGREEMENT)  # the original, as held
    wait_until(lambda: relay.events_of("smtp.quarantine.release"))
    assert relay.relay.spool.names(QUARANTINE) == []


def test_reject_through_the_command(relay, sink, state):
    message_id = held_message(relay)
    sink.wait_for(2)
    code = mail_command.main(
        ["quarantine", "reject", message_id, "--note", "no NDA", "--state-dir", str(state)]
    )
    assert code == 0
    wait_until(lambda: len(sink.to(SENDER)) == 2)
    assert sink.to(OTHER) == []
    report = email.message_from_bytes(sink.to(SENDER)[-1].data)
    text = report.get_payload()[0].get_payload(decode=True).decode()
    assert "rejected by the security team after review: no NDA" in text
    assert HELD_RULE in text
    wait_until(lambda: relay.events_of("smtp.quarantine.reject"))


def test_events_of_both_halves_carry_the_relay_message_id(relay, sink, rig):
    message_id = held_message(relay)
    sink.wait_for(2)
    judged = [e for e in rig.log.events if e["type"] == "smtp.message"]
    assert judged and all(message_id in e["detail"] for e in judged)
    relayed = {e["type"] for e in relay.events if message_id in e["detail"]}
    assert relayed == {"smtp.accepted", "smtp.delivery", "smtp.quarantine"}
