"""The real judge inside the real relay: smtplib in, a recording sink out (tests.support.smtp).

The issue's end-to-end cases for judging: a spreadsheet of ID numbers to a
personal mailbox is refused at DATA and the sink gets nothing; the court
gets S/MIME its key opens; the law firm gets a zip and the sender, in a
separate mail, its password; mixed recipients are split; content that
cannot be inspected is refused with a clear reply and the relay goes on.
"""

from __future__ import annotations

import functools
import io
import smtplib
import time

import pytest
import pyzipper

from certs.smime import decrypt_message
from mailrelay.judge import judge
from mailrelay.server import RelaySettings
from tests.mailrelay.test_judge_rig import (
    COURT,
    LAWFIRM,
    OTHER,
    SENDER,
    WEBMAIL,
    XLSX,
    XLSX_IDS,
    attachment,
    corpus,
    csv_attachment,
    mail,
    parse,
    xlsx_attachment,
)
from tests.support.smtp import RecordingSink, RelayThread


@pytest.fixture
def sink():
    with RecordingSink() as s:
        yield s


@pytest.fixture
def rig(shared, tmp_path):
    return shared.rig(tmp_path / "judge")


@pytest.fixture
def relay(rig, sink, tmp_path):
    settings = RelaySettings(
        listen=("127.0.0.1", 0),
        hostname="relay.test",
        smarthost=sink.address,
        smarthost_verify=False,
        retry_initial=0.2,
        retry_max=0.5,
        workers=2,
    )
    judging = functools.partial(judge, services=rig.services)  # how the gateway wires it
    running = RelayThread(settings, judging, tmp_path).start()
    yield running
    running.stop()


def send(relay: RelayThread, recipients: tuple[str, ...], data: bytes):
    with smtplib.SMTP(*relay.address, timeout=60) as client:
        client.ehlo("client.firm.example")
        client.mail(SENDER)
        for r in recipients:
            assert client.rcpt(r)[0] == 250
        return client.data(data)


def test_ids_to_personal_webmail_are_refused_at_data_and_nothing_is_sent(relay, sink, rig):
    code, text = send(relay, (WEBMAIL,), mail(to=WEBMAIL, attachments=(xlsx_attachment(),)))
    assert code == 550
    reply = text.decode()
    assert reply.startswith("5.7.1") and "identifying-to-personal-channels" in reply
    assert "LG-" in reply  # the incident the sender can quote
    for value in XLSX_IDS:
        assert value not in reply
    time.sleep(0.5)
    assert sink.messages == []
    assert rig.log.events[-1]["rule"] == "identifying-to-personal-channels"


def test_the_court_receives_smime_its_key_opens(relay, sink, rig):
    issued = rig.certificate("example-court", "court.example")
    code, _ = send(relay, (COURT,), mail(to=COURT, attachments=(xlsx_attachment(),)))
    assert code == 250
    (got,) = sink.wait_for(1)
    assert got.rcpt_tos == (COURT,)
    assert got.message.get_content_type() == "application/pkcs7-mime"
    inner = parse(decrypt_message(got.data, issued.cert, issued.key))
    assert attachment(inner, XLSX) == corpus(XLSX)


def test_the_law_firm_gets_a_zip_and_the_sender_its_password(relay, sink):
    code, _ = send(relay, (LAWFIRM,), mail(to=LAWFIRM, attachments=(csv_attachment(),)))
    assert code == 250
    got = sink.wait_for(2)
    (delivered,) = [m for m in got if m.rcpt_tos == (LAWFIRM,)]
    (notice,) = [m for m in got if m.rcpt_tos == (SENDER,)]
    text = parse(notice.data).get_body(("plain",)).get_content()
    password = text.split("Password:", 1)[1].split()[0]
    assert password.encode() not in delivered.data
    zipped = attachment(parse(delivered.data), "attachments.zip")
    with pyzipper.AESZipFile(io.BytesIO(zipped)) as z:
        z.setpassword(password.encode())
        assert "110102195907064157" in z.read("attachment-1.csv").decode("gbk")


def test_mixed_recipients_deliver_to_the_court_and_bounce_the_rest(relay, sink, rig):
    rig.certificate("example-court", "court.example")
    raw = mail(to=f"{COURT}, {WEBMAIL}", attachments=(xlsx_attachment(),))
    code, _ = send(relay, (COURT, WEBMAIL), raw)
    assert code == 250
    got = sink.wait_for(2)
    (court,) = [m for m in got if m.rcpt_tos == (COURT,)]
    assert court.message.get_content_type() == "application/pkcs7-mime"
    (dsn,) = [m for m in got if m.mail_from == ""]
    assert dsn.rcpt_tos == (SENDER,)
    assert b"identifying-to-personal-channels" in dsn.data
    assert not any(m.rcpt_tos == (WEBMAIL,) for m in got)
    for value in XLSX_IDS:
        assert value.encode() not in dsn.data


def test_a_zip_bomb_is_refused_clearly_and_the_relay_goes_on(relay, sink):
    bomb = mail(to=OTHER, attachments=(("z.zip", corpus("zeros_50MiB.zip"), "application/zip"),))
    code, text = send(relay, (OTHER,), bomb)
    assert code == 550 and b"uninspectable-to-external" in text
    code, _ = send(relay, (OTHER,), mail(to=OTHER, text="周五开会。Meeting on Friday."))
    assert code == 250
    (got,) = sink.wait_for(1)
    assert got.rcpt_tos == (OTHER,)
