"""The relay end to end on loopback: real smtplib clients, a real recording sink, real spool.

The judge here is a test double of our own judge (tests.support.smtp.by_domain):
recipients at qq.com are blocked, at hold.example held, the rest delivered.
"""

from __future__ import annotations

import dataclasses
import email
import json
import smtplib
import time
from pathlib import Path

import pytest

from audit.events import EVENT_FIELDS
from mailrelay import handler as replies
from mailrelay.plan import Delivery, Envelope, Notice, Outcome, Plan
from mailrelay.server import RelaySettings
from mailrelay.spool import QUARANTINE, QUEUE, STATE_SUFFIX, TMP, Spool, new_message_id
from tests.support.smtp import (
    FINDING,
    RAW_ID,
    RecordingSink,
    RelayThread,
    by_domain,
    deliver_all,
    mixed_judge,
)

SENDER = "alice@firm.example"
COURT = "clerk@court.example"
WEBMAIL = "someone@qq.com"
HELD = "partner@hold.example"


def message(tag: str = "1", body: str = "hello") -> bytes:
    return (
        f"From: Alice <{SENDER}>\r\nTo: {COURT}\r\nSubject: case {tag}\r\n"
        f"Message-ID: <{tag}@firm.example>\r\nX-Test-Id: {tag}\r\n\r\n{body}\r\n"
    ).encode()


def settings(sink: RecordingSink, **overrides) -> RelaySettings:
    base = RelaySettings(
        listen=("127.0.0.1", 0),
        hostname="relay.test",
        smarthost=sink.address,
        smarthost_verify=False,
        retry_initial=0.2,
        retry_max=0.5,
        workers=4,
    )
    return dataclasses.replace(base, **overrides)


@pytest.fixture
def sink():
    with RecordingSink() as s:
        yield s


@pytest.fixture
def start(tmp_path: Path, sink: RecordingSink):
    running: list[RelayThread] = []

    def start_relay(judge=mixed_judge, **overrides) -> RelayThread:
        relay = RelayThread(settings(sink, **overrides), judge, tmp_path / "state").start()
        running.append(relay)
        return relay

    yield start_relay
    for relay in running:
        relay.stop()


def send(relay: RelayThread, rcpts, data: bytes, mail_from: str = SENDER):
    with smtplib.SMTP(*relay.address, timeout=30) as client:
        client.ehlo("client.firm.example")
        client.mail(mail_from)
        for r in rcpts:
            code, text = client.rcpt(r)
            assert code == 250, (code, text)
        return client.data(data)


def wait_until(predicate, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def spool_of(relay: RelayThread) -> Spool:
    return relay.relay.spool


def dsn_parts(data: bytes) -> tuple[str, str, email.message.Message]:
    msg = email.message_from_bytes(data)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    text, status, _headers = msg.get_payload()
    return (
        text.get_payload(decode=True).decode(),
        status.as_string() if status.is_multipart() else str(status.get_payload()),
        msg,
    )


def no_raw_values(relay: RelayThread, sink: RecordingSink) -> None:
    dumped = json.dumps(relay.events, ensure_ascii=False)
    assert RAW_ID not in dumped
    for m in sink.messages:
        if m.mail_from == "":  # everything the relay wrote itself
            assert RAW_ID.encode() not in m.data


# -- delivering ------------------------------------------------------------------------------


def test_accepted_mail_reaches_the_sink_with_a_received_line(start, sink):
    relay = start()
    code, text = send(relay, [COURT], message("a"))
    assert code == 250 and text.startswith(b"2.0.0 Ok: queued as ")
    message_id = text.split()[-1].decode()
    (got,) = sink.wait_for(1)
    assert got.mail_from == SENDER and got.rcpt_tos == (COURT,)
    assert got.data.startswith(b"Received: from client.firm.example ([127.0.0.1])\r\n")
    assert f"by relay.test (leakguard) with ESMTP id {message_id}".encode() in got.data
    assert got.data.endswith(message("a"))
    wait_until(lambda: spool_of(relay).names(QUEUE) == [], what="the spool to empty")
    (delivered,) = relay.events_of("smtp.delivery")
    assert delivered["destination"] == "c***@court.example"
    assert message_id in delivered["detail"]
    for event in relay.events:
        assert tuple(event) == EVENT_FIELDS


def test_the_message_is_on_disk_before_the_250(start, sink):
    sink.stop()  # nothing can be delivered: what was acknowledged must be in the spool
    relay = start()
    code, text = send(relay, [COURT], message("disk"))
    assert code == 250
    name = text.split()[-1].decode()
    entry = Spool(spool_of(relay).root).load(name)
    assert entry is not None and entry.raw.endswith(message("disk"))
    assert entry.envelope.rcpt_tos == (COURT,) and entry.envelope.message_id == name


def test_every_recipient_refused_is_550_and_nothing_is_stored(start, sink):
    relay = start()
    code, reply = send(relay, [WEBMAIL, "other@qq.com"], message("b"))
    assert code == 550
    text = reply.decode()
    assert text.startswith("5.7.1 Blocked: client information cannot go to personal mail.")
    assert "rule identifying-to-personal-channels" in text
    assert "incident LG-20260101-TEST01" in text
    time.sleep(0.3)
    assert sink.messages == []
    assert spool_of(relay).names(QUEUE) == [] and spool_of(relay).names(QUARANTINE) == []
    assert [e["destination"] for e in relay.events_of("smtp.refused")] == [
        "s***@qq.com, o***@qq.com"
    ]
    no_raw_values(relay, sink)


def test_refusal_text_keeps_the_chinese_reason_for_smtputf8_clients(start, sink):
    relay = start()
    with smtplib.SMTP(*relay.address) as client:
        client.ehlo("c")
        assert client.has_extn("smtputf8")
        client.mail(SENDER, ["SMTPUTF8"])
        client.rcpt(WEBMAIL)
        code, text = client.data(message("u"))
    assert code == 550
    assert "已阻止：客户信息不得发送至个人邮箱。".encode() in text


def test_mixed_recipients_split_deliver_bounce_and_hold(start, sink):
    relay = start()
    code, _ = send(relay, [COURT, WEBMAIL, HELD], message("c"))
    assert code == 250
    sink.wait_for(3)
    delivered = [m for m in sink.messages if m.mail_from == SENDER]
    assert [m.rcpt_tos for m in delivered] == [(COURT,)]
    reports = [m for m in sink.messages if m.mail_from == ""]
    assert all(m.rcpt_tos == (SENDER,) for m in reports)
    kinds = {}
    for m in reports:
        text, status, msg = dsn_parts(m.data)
        kinds["failed" if "Action: failed" in status else "delayed"] = (text, status, msg)
    assert set(kinds) == {"failed", "delayed"}

    text, status, msg = kinds["failed"]
    assert "Final-Recipient: rfc822; someone@qq.com" in status
    assert "Status: 5.7.1" in status and COURT not in status and HELD not in status
    assert "identifying-to-personal-channels" in text
    assert "110105********002X" in text and "债务清单.xlsx" in text
    assert "LG-20260101-TEST01" in text
    assert msg["In-Reply-To"] == "<c@firm.example>"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert b"hello" not in m.data  # the original body never goes back

    text, status, _ = kinds["delayed"]
    assert "Final-Recipient: rfc822; partner@hold.example" in status
    assert "Action: delayed" in status and "held for review" in text

    wait_until(lambda: spool_of(relay).names(QUEUE) == [], what="the queue to empty")
    (held,) = spool_of(relay).names(QUARANTINE)
    assert [d.recipients for d in spool_of(relay).load(held, QUARANTINE).plan.deliveries] == [
        (HELD,)
    ]
    types = sorted(e["type"] for e in relay.events)
    assert types == [
        "smtp.accepted", "smtp.bounce", "smtp.delivery", "smtp.quarantine"
    ]  # fmt: skip
    (bounce,) = relay.events_of("smtp.bounce")
    assert bounce["rule"] == "identifying-to-personal-channels"
    assert bounce["findings"][0]["masked"] == "110105********002X"
    no_raw_values(relay, sink)


def test_no_dsn_to_the_null_sender(start, sink):
    relay = start()
    assert send(relay, [COURT, WEBMAIL], message("n"), mail_from="<>")[0] == 250
    (got,) = sink.wait_for(1)
    assert got.mail_from == "" and got.rcpt_tos == (COURT,)
    wait_until(lambda: relay.events_of("smtp.bounce"), what="the bounce event")
    time.sleep(0.3)
    assert len(sink.messages) == 1
    assert "null sender: no DSN" in relay.events_of("smtp.bounce")[0]["detail"]


def test_transformed_messages_and_notices(start, sink):
    def judge(raw: bytes, env: Envelope) -> Plan:
        return Plan(
            deliveries=(
                Delivery(env.rcpt_tos, Outcome.DELIVER, "encrypt", "enc", "zip", (FINDING,),
                         message=b"Subject: encrypted\r\n\r\n(zip)\r\n"),
            ),
            notices=(Notice(env.mail_from, b"Subject: your zip password\r\n\r\nS3cret\r\n"),),
        )  # fmt: skip

    relay = start(judge)
    send(relay, [COURT], message("t"))
    sink.wait_for(2)
    (sent,) = sink.to(COURT)
    assert sent.data == b"Subject: encrypted\r\n\r\n(zip)\r\n" and sent.mail_from == SENDER
    (notice,) = sink.to(SENDER)
    assert notice.data.endswith(b"S3cret\r\n") and notice.mail_from == ""
    wait_until(lambda: relay.events_of("smtp.notice"), what="the notice event")
    assert "S3cret" not in json.dumps(relay.events)


# -- retrying, expiring ----------------------------------------------------------------------


def test_sink_down_queued_retried_and_delivered_when_it_returns(start, sink):
    sink.stop()
    relay = start()
    for i in range(3):
        assert send(relay, [COURT], message(f"down{i}"))[0] == 250
    wait_until(
        lambda: len(relay.events_of("smtp.delivery.deferred")) >= 6,
        what="two failed attempts per message",
    )
    assert len(spool_of(relay).names(QUEUE)) == 3
    state = json.loads(next((spool_of(relay).root / QUEUE).glob(f"*{STATE_SUFFIX}")).read_text())
    assert state["attempts"] >= 1 and state["last_error"]
    sink.start()
    sink.wait_for(3)
    assert sorted(m.header("X-Test-Id") for m in sink.messages) == ["down0", "down1", "down2"]
    wait_until(lambda: spool_of(relay).names(QUEUE) == [], what="the queue to empty")


def test_max_queue_age_sends_a_dsn_and_the_entry_leaves(start, sink):
    sink.refuse["slow@court.example"] = "451 4.3.0 mailbox busy, try later"
    relay = start(max_queue_age=0.6)
    assert send(relay, ["slow@court.example", COURT], message("old"))[0] == 250
    sink.wait_for(2, timeout=15)
    wait_until(lambda: spool_of(relay).names(QUEUE) == [], what="the queue to empty")
    assert [m.rcpt_tos for m in sink.messages if m.mail_from == SENDER] == [(COURT,)]
    (report,) = [m for m in sink.messages if m.mail_from == ""]
    text, status, _ = dsn_parts(report.data)
    assert "Final-Recipient: rfc822; slow@court.example" in status
    assert "Action: failed" in status and "Status: 5.4.7" in status
    assert "mailbox busy" in status and "maximum queue time" in text
    failed = relay.events_of("smtp.delivery.failed")
    assert [e["detail"].rsplit(": ", 1)[1] for e in failed] == ["expired in the queue"]


def test_a_permanent_refusal_downstream_is_reported_to_the_sender(start, sink):
    sink.refuse["gone@court.example"] = "550 5.1.1 no such user"
    relay = start()
    assert send(relay, ["gone@court.example", COURT], message("p"))[0] == 250
    sink.wait_for(2)
    wait_until(lambda: spool_of(relay).names(QUEUE) == [], what="the queue to empty")
    (report,) = [m for m in sink.messages if m.mail_from == ""]
    _, status, _ = dsn_parts(report.data)
    assert "Final-Recipient: rfc822; gone@court.example" in status
    assert "Status: 5.1.1" in status and "no such user" in status
    assert [m.rcpt_tos for m in sink.messages if m.mail_from == SENDER] == [(COURT,)]


# -- the judge failing -----------------------------------------------------------------------


def with_attachment(tag: str) -> bytes:
    """A mail with a zip attachment: judged on the judge lane, under its timeout."""
    return (
        f"From: Alice <{SENDER}>\r\nTo: {COURT}\r\nSubject: case {tag}\r\n"
        f"Message-ID: <{tag}@firm.example>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
        "--b\r\nContent-Type: application/zip; name=a.zip\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\nUEsFBgAAAAAAAAAAAAAAAAAAAAAAAA==\r\n--b--\r\n"
    ).encode()


def test_a_slow_judge_fails_closed_with_451(start, sink):
    def slow(raw, env):
        time.sleep(1.5)
        return deliver_all(raw, env)

    relay = start(slow, judge_timeout=0.3)
    code, text = send(relay, [COURT], with_attachment("slow"))
    assert code == 451 and text.startswith(b"4.7.0")
    time.sleep(1.5)
    assert sink.messages == [] and spool_of(relay).names(QUEUE) == []


@pytest.mark.parametrize(
    ("raw", "inline"),
    [
        pytest.param(message("plain"), True, id="no-type-is-text"),
        pytest.param(b"Content-Type: TEXT/plain\r\n\r\nhi\r\n", True, id="text-any-case"),
        pytest.param(b"Content-Type:\r\n text/plain\r\n\r\nhi\r\n", True, id="folded-text"),
        pytest.param(with_attachment("zip"), False, id="an-archive"),
        pytest.param(b"Content-Type: application/pdf\r\n\r\n%PDF", False, id="pdf"),
        pytest.param(message("big", "x" * 40_000), False, id="over-32-KiB"),
        # what the extractor would open as a file, whatever the declared type says
        pytest.param(
            b"Content-Type: text/plain; name=x.zip\r\nContent-Transfer-Encoding: base64\r\n"
            b"\r\nUEsFBgAAAAAAAAAAAAAAAAAAAAAAAA==\r\n",
            False,
            id="text-named-zip",
        ),
        pytest.param(b"Content-Disposition: attachment\r\n\r\nhi\r\n", False, id="an-attachment"),
        pytest.param(
            b"Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nhi\r\n",
            False,
            id="nested-message",
        ),
        # bare CRs end lines for the parser: a type behind one is still seen
        pytest.param(with_attachment("cr").replace(b"\r\n", b"\r"), False, id="cr-only-zip"),
        pytest.param(b"X-A: 1\rContent-Type: application/pdf\r\n\r\n%PDF", False, id="cr-pdf"),
    ],
)
def test_only_small_text_mail_is_judged_on_the_event_loop(raw, inline):
    """What is judged inline has no timeout: only mail whose judging its size bounds (text
    bodies only, as the parser reads them: nothing the extractor would open as a file)."""
    assert replies.judged_inline(raw) is inline


@pytest.mark.parametrize(
    "judge",
    [
        pytest.param(lambda raw, env: 1 / 0, id="raises"),
        pytest.param(lambda raw, env: Plan(()), id="empty"),
        pytest.param(
            lambda raw, env: Plan((Delivery(env.rcpt_tos[:1], Outcome.DELIVER, "allow", "", ""),)),
            id="forgets-a-recipient",
        ),
        pytest.param(
            lambda raw, env: Plan(
                (Delivery((*env.rcpt_tos, "bcc@evil.example"), Outcome.DELIVER, "allow", "", ""),)
            ),
            id="adds-a-recipient",
        ),
    ],
)
def test_a_broken_judge_fails_closed(start, sink, judge):
    relay = start(judge)
    code, text = send(relay, [COURT, "b@court.example"], message("x"))
    assert code == 451 and text.startswith(b"4.7.0")
    time.sleep(0.3)
    assert sink.messages == [] and spool_of(relay).names(QUEUE) == []


# -- restarts --------------------------------------------------------------------------------


def test_the_spool_is_recovered_at_start(tmp_path, start, sink):
    spool = Spool(tmp_path / "state" / "spool")
    env = Envelope(SENDER, (COURT,), "127.0.0.1", "", new_message_id())
    spool.store(message("r"), env, deliver_all(b"", env))
    half = spool.root / TMP / "20260101T000000000-0badf00d.1-1"
    half.write_bytes(message("never-acknowledged"))
    relay = start()
    (got,) = sink.wait_for(1)
    assert got.data == message("r")
    time.sleep(0.3)
    assert len(sink.messages) == 1
    assert not half.exists()
    wait_until(lambda: spool_of(relay).names(QUEUE) == [], what="the queue to empty")


def test_finished_groups_are_not_delivered_again_after_a_restart(tmp_path, start, sink):
    spool = Spool(tmp_path / "state" / "spool")
    rcpts = ("a@court.example", "b@lawfirm.example", "c@lawfirm.example", WEBMAIL)
    env = Envelope(SENDER, rcpts, "127.0.0.1", "", new_message_id())
    plan = Plan(
        (
            Delivery(rcpts[:1], Outcome.DELIVER, "allow", "", ""),
            Delivery(rcpts[1:3], Outcome.DELIVER, "allow", "", ""),
            Delivery(rcpts[3:], Outcome.BOUNCE, "block", "r", "no"),
        )
    )
    entry = spool.store(message("g"), env, plan)
    # the relay died after group 0, one recipient of group 1, and the bounce report
    spool.save_state(
        entry,
        {
            "attempts": 0,
            "done": ["bounce"],
            "delivered": {"0": ["a@court.example"], "1": ["b@lawfirm.example"]},
            "failed": [],
            "last_error": "",
        },
    )
    relay = start()
    (got,) = sink.wait_for(1)
    assert got.rcpt_tos == ("c@lawfirm.example",)
    wait_until(lambda: spool_of(relay).names(QUEUE) == [], what="the queue to empty")
    time.sleep(0.3)
    assert len(sink.messages) == 1


def test_flush_retries_now(start, sink):
    sink.stop()
    relay = start(retry_initial=30, retry_max=60)
    send(relay, [COURT], message("f"))
    wait_until(lambda: relay.events_of("smtp.delivery.deferred"), what="a failed attempt")
    sink.start()
    time.sleep(0.5)
    assert sink.messages == []  # next retry is 30 s away
    relay.call(relay.relay.flush)
    sink.wait_for(1, timeout=5)


def test_the_embedded_sink_when_no_smarthost_is_configured(tmp_path, sink):
    from mailrelay.sink import read_messages

    relay = RelayThread(settings(sink, smarthost=None), deliver_all, tmp_path / "state").start()
    try:
        send(relay, [COURT], message("e"))
        got = wait_until(lambda: read_messages(tmp_path / "state" / "sink"), what="the sink")
        assert got[0].rcpt_tos == (COURT,) and got[0].data.endswith(message("e"))
    finally:
        relay.stop()


def test_reply_codes_are_named_constants():
    assert replies.TOO_MANY_RECIPIENTS.startswith("452 4.5.3")
    assert replies.REFUSED.startswith("550 5.7.1")
    assert replies.INSPECTION_FAILED.startswith("451 4.7.0")
    assert replies.AUTH_REQUIRED.startswith("530")
    assert replies.AUTH_INVALID.startswith("535")


def test_by_domain_is_a_real_plan():
    env = Envelope(SENDER, (COURT, WEBMAIL), message_id="x")
    plan = by_domain()(b"", env)
    assert not plan.all_refused
    assert by_domain()(b"", Envelope(SENDER, (WEBMAIL,))).all_refused


def test_a_port_in_use_is_a_clear_start_error(start, tmp_path, sink):
    from mailrelay.server import RelayError

    first = start()
    second = RelayThread(
        settings(sink, listen=first.address), deliver_all, tmp_path / "other-state"
    )
    with pytest.raises(RelayError, match=r"cannot listen on 127\.0\.0\.1:"):
        second.start()


def tls_sink(tmp_path: Path, **kwargs) -> tuple[RecordingSink, Path]:
    """A sink offering STARTTLS with a certificate from a CA of its own, and requiring AUTH."""
    import ssl

    from certs.ca import create_ca, issue_server_certificate

    ca = create_ca(tmp_path / "sink-ca")
    cert, key = issue_server_certificate(ca, ["127.0.0.1"])
    (tmp_path / "sink-cert.pem").write_bytes(cert)
    (tmp_path / "sink-key.pem").write_bytes(key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "sink-cert.pem", tmp_path / "sink-key.pem")
    return RecordingSink(tls_context=context, users={"relay": "s3cret pass"}, **kwargs), (
        ca.cert_path
    )


def test_delivery_over_starttls_with_auth_to_a_verified_smarthost(tmp_path):
    sink, ca_file = tls_sink(tmp_path)
    with sink:
        s = settings(
            sink,
            smarthost_tls="required",
            smarthost_verify=True,
            smarthost_ca=ca_file,
            smarthost_user="relay",
            smarthost_password="s3cret pass",
        )
        with RelayThread(s, deliver_all, tmp_path / "state") as relay:
            for i in range(3):  # one pooled connection carries them all
                send(relay, [COURT], message(f"tls{i}"))
            got = sink.wait_for(3)
    assert all(m.tls and m.login == "relay" for m in got)


def test_an_unverifiable_smarthost_gets_nothing(tmp_path):
    sink, _ = tls_sink(tmp_path)
    with sink:
        s = settings(sink, smarthost_verify=True, smarthost_user="relay",
                     smarthost_password="s3cret pass")  # fmt: skip
        with RelayThread(s, deliver_all, tmp_path / "state") as relay:
            send(relay, [COURT], message("mitm"))
            deferred = wait_until(
                lambda: relay.events_of("smtp.delivery.deferred"), what="a deferral"
            )
            assert "certificate verify failed" in deferred[0]["detail"].lower()
            assert sink.messages == [] and spool_of(relay).names(QUEUE)


def test_a_backlog_is_read_back_from_the_spool_not_held_in_memory(start, sink, monkeypatch):
    monkeypatch.setattr("mailrelay.delivery.FRESH_BYTES", 0)
    relay = start()
    for i in range(5):
        send(relay, [COURT], message(f"disk{i}"))
    sink.wait_for(5)
    assert relay.relay.deliverer._fresh == {}
    assert sorted(m.header("X-Test-Id") for m in sink.messages) == [f"disk{i}" for i in range(5)]
