"""judge(): per-recipient decisions, S/MIME to a party, the zip and its password, events.

Real pieces throughout: the shipped policy (and tests/data/mail/policy),
messages built with the email package, corpus spreadsheets as attachments,
party certificates made with cryptography and imported into a state dir.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import pytest
import pyzipper

from certs.smime import decrypt_message
from mailrelay.plan import Outcome
from tests.mailrelay.test_judge_rig import (
    AUDITOR,
    COLLEAGUE,
    COURT,
    CSV,
    CSV_CARDS,
    CSV_IDS,
    CSV_MOBILES,
    GMAIL,
    ID,
    LAWFIRM,
    OTHER,
    SENDER,
    WEBMAIL,
    XLSX,
    XLSX_CARD,
    XLSX_IDS,
    XLSX_MOBILES,
    assert_nothing_raw,
    attachment,
    corpus,
    csv_attachment,
    group,
    mail,
    parse,
    xlsx_attachment,
)

RAW = (*XLSX_IDS, *XLSX_MOBILES, XLSX_CARD, *CSV_IDS, *CSV_MOBILES, *CSV_CARDS, ID)


# -- personal webmail ---------------------------------------------------------------------------


@pytest.mark.parametrize("recipient", [WEBMAIL, "x@163.com", GMAIL])
def test_ids_in_a_spreadsheet_to_personal_webmail_bounce(rig, recipient):
    plan = rig.judge(mail(to=recipient, attachments=(xlsx_attachment(),)), recipient)
    assert plan.all_refused
    (d,) = plan.deliveries
    assert d.outcome is Outcome.BOUNCE and d.action == "block"
    assert d.rule == "identifying-to-personal-channels"
    assert d.incident.startswith("LG-")
    assert d.message is None
    assert "cn_resident_id" in d.reason and "personal-webmail" in d.reason
    masked = {f["masked"] for f in d.findings}
    assert "120104********7661" in masked
    assert any(f["location"].startswith(f"attachment {XLSX} › ") for f in d.findings)
    assert "Blocked" in d.explanation
    assert_nothing_raw(plan, rig.log, *RAW)


def test_a_clean_mail_to_webmail_is_delivered_as_is(rig):
    """The To header and the envelope addresses are not 'contact data' leaving."""
    raw = mail(to=GMAIL, text=f"周末见。See you on Saturday.\n-- \n{SENDER}\n")
    plan = rig.judge(raw, GMAIL)
    (d,) = plan.deliveries
    assert (d.outcome, d.action, d.message) == (Outcome.DELIVER, "allow", None)
    assert d.findings == () and d.incident == ""


# -- approved parties ---------------------------------------------------------------------------


def test_court_with_a_certificate_gets_the_whole_message_as_smime(rig):
    issued = rig.certificate("example-court", "court.example")
    original = corpus(XLSX)
    plan = rig.judge(mail(to=COURT, attachments=(xlsx_attachment(),)), COURT)
    (d,) = plan.deliveries
    assert (d.outcome, d.action) == (Outcome.DELIVER, "encrypt")
    assert d.rule == "important-to-party-by-mail"
    assert d.transform == "smime:message"
    assert plan.notices == ()
    delivered = parse(d.message)
    assert delivered.get_content_type() == "application/pkcs7-mime"
    assert delivered["To"] == COURT and "债务清单" in delivered["Subject"]
    for value in RAW:  # nothing readable outside the envelope
        assert value.encode() not in d.message
    inner = parse(decrypt_message(d.message, issued.cert, issued.key))
    assert attachment(inner, XLSX) == original
    assert "本月清单" in inner.get_body(("plain",)).get_content()
    assert_nothing_raw(plan, rig.log, *RAW)
    (event,) = rig.log.events
    assert event["action"] == "encrypt" and event["party"] == "example-court"
    assert event["detail"].startswith("message R-0001;") and "smime:message" in event["detail"]


def test_law_firm_without_a_certificate_gets_a_zip_and_the_sender_the_password(rig):
    """The law firm has no certificate; it wants attachments encrypted and contacts masked."""
    plan = rig.judge(mail(to=LAWFIRM, attachments=(csv_attachment(),)), LAWFIRM)
    (d,) = plan.deliveries
    assert (d.outcome, d.action) == (Outcome.DELIVER, "encrypt")
    assert d.transform == "masked+zip:attachments"
    delivered = parse(d.message)
    assert [p.get_filename() for p in delivered.iter_attachments()] == ["attachments.zip"]
    assert "本月清单" in delivered.get_body(("plain",)).get_content()  # the text stays readable

    (notice,) = plan.notices
    assert notice.to == SENDER  # never to the recipient
    letter = parse(notice.message)
    assert letter["To"] == SENDER and letter["Auto-Submitted"] == "auto-generated"
    text = letter.get_body(("plain",)).get_content()
    password = text.split("Password:", 1)[1].split()[0]
    assert len(password.replace("-", "")) == 24
    assert LAWFIRM in text and "R-0001" in text and "20260601.1@firm.example" in text
    for form in (password, password.replace("-", "")):
        assert form.encode() not in d.message
        assert form not in delivered.get_body(("plain",)).get_content()

    with pyzipper.AESZipFile(io.BytesIO(attachment(delivered, "attachments.zip"))) as z:
        assert z.namelist() == ["attachment-1.csv", "index.txt"]
        info = z.getinfo("attachment-1.csv")
        assert info.flag_bits & 0x1  # encrypted
        with pytest.raises(RuntimeError):
            z.read("attachment-1.csv")  # no password, no content
        z.setpassword(password.encode())
        rows = z.read("attachment-1.csv").decode("gbk")
        index = z.read("index.txt").decode("utf-8-sig")
    assert CSV in index  # the original name travels inside, encrypted
    for value in CSV_IDS + CSV_CARDS:
        assert value in rows  # what the law firm receives
    for value in CSV_MOBILES:
        assert value not in rows  # need to know: contacts masked for the law firm
    assert "151****6064" in rows
    assert_nothing_raw(plan, rig.log, *RAW)


def test_party_with_attachment_scope_gets_smime_attachments(mail_rig):
    issued = mail_rig.certificate("example-auditor", "audit.example", n=3)
    raw = mail(to=AUDITOR, attachments=(xlsx_attachment(),))
    plan = mail_rig.judge(raw, AUDITOR)
    (d,) = plan.deliveries
    assert (d.action, d.transform) == ("encrypt", "smime:attachments")
    delivered = parse(d.message)
    assert "本月清单" in delivered.get_body(("plain",)).get_content()
    (sealed,) = delivered.iter_attachments()
    assert sealed.get_content_type() == "application/pkcs7-mime"
    assert sealed.get_filename() == "attachment-1.p7m"  # the real name is inside
    inner = parse(decrypt_message(sealed.as_bytes(), issued.cert, issued.key))
    assert inner.get_filename() == XLSX
    assert inner.get_content() == corpus(XLSX)
    for value in RAW:
        assert value.encode() not in d.message


def test_attachment_scope_encrypts_the_whole_message_when_the_text_carries_ids(mail_rig):
    issued = mail_rig.certificate("example-auditor", "audit.example", n=3)
    raw = mail(to=AUDITOR, text=f"身份证 {ID}", attachments=(xlsx_attachment(),))
    plan = mail_rig.judge(raw, AUDITOR)
    (d,) = plan.deliveries
    assert d.transform == "smime:message"
    assert ID.encode() not in d.message
    inner = parse(decrypt_message(d.message, issued.cert, issued.key))
    assert ID in inner.get_body(("plain",)).get_content()
    assert "whole message is encrypted" in mail_rig.log.events[-1]["detail"]


# -- one message, several recipients --------------------------------------------------------------


def test_mixed_recipients_split_into_groups(mail_rig):
    issued = mail_rig.certificate("example-court", "court.example")
    colleague2 = "wang.fang@firm.example"
    court2 = "judge.liu@court.example"
    recipients = (COURT, WEBMAIL, COLLEAGUE, GMAIL, LAWFIRM, OTHER, colleague2, court2)
    raw = mail(to=", ".join(recipients), attachments=(xlsx_attachment(),))
    plan = mail_rig.judge(raw, *recipients)

    assert not plan.all_refused
    by = {d.recipients: d for d in plan.deliveries}
    assert set(by) == {
        (COURT, court2),
        (WEBMAIL, GMAIL),
        (COLLEAGUE, colleague2),
        (LAWFIRM,),
        (OTHER,),
    }
    court = by[(COURT, court2)]
    assert (court.outcome, court.transform) == (Outcome.DELIVER, "smime:message")
    inner = parse(decrypt_message(court.message, issued.cert, issued.key))
    assert attachment(inner, XLSX) == corpus(XLSX)

    webmail = by[(WEBMAIL, GMAIL)]
    assert (webmail.outcome, webmail.rule) == (Outcome.BOUNCE, "identifying-to-personal-channels")
    assert "d***@qq.com" in webmail.reason and "s***@gmail.com" in webmail.reason

    internal = by[(COLLEAGUE, colleague2)]
    assert (internal.outcome, internal.action, internal.message) == (Outcome.DELIVER, "allow", None)

    # the law firm must not see mobiles, and an xlsx cannot be rewritten: bounced, saying where
    lawfirm = by[(LAWFIRM,)]
    assert (lawfirm.outcome, lawfirm.action) == (Outcome.BOUNCE, "block")
    assert "cn_mobile" in lawfirm.reason and f"attachment {XLSX}" in lawfirm.reason

    other = by[(OTHER,)]
    assert (other.outcome, other.rule) == (Outcome.BOUNCE, "important-elsewhere")

    # one event per group, each linked to the message, recipients masked
    assert len(mail_rig.log.events) == 5
    assert all(e["detail"].startswith("message R-0001;") for e in mail_rig.log.events)
    destinations = [e["destination"] for e in mail_rig.log.events]
    assert "c***@court.example, j***@court.example" in destinations
    events = json.dumps(mail_rig.log.events, ensure_ascii=False)
    for address in recipients:
        assert address not in events
    assert_nothing_raw(plan, mail_rig.log, *RAW)


def test_every_recipient_blocked_refuses_the_whole_message(rig):
    plan = rig.judge(mail(to=WEBMAIL, attachments=(xlsx_attachment(),)), WEBMAIL, OTHER)
    assert plan.all_refused
    assert {d.rule for d in plan.deliveries} == {
        "identifying-to-personal-channels",
        "important-elsewhere",
    }
    assert len({d.incident for d in plan.deliveries}) == 2


def test_expired_agreement_bounces_naming_the_date(rig):
    rig.certificate("example-court", "court.example", not_after=datetime(2029, 1, 1, tzinfo=UTC))
    rig.clock = datetime(2028, 1, 15, 9, 0, tzinfo=UTC)  # the law firm's NDA ended 2027-12-31
    plan = rig.judge(mail(to=LAWFIRM, attachments=(xlsx_attachment(),)), LAWFIRM, COURT)
    lawfirm = group(plan, LAWFIRM)
    assert (lawfirm.outcome, lawfirm.rule) == (Outcome.BOUNCE, "important-elsewhere")
    assert "agreement of party example-law-firm expired on 2027-12-31" in lawfirm.reason
    court = group(plan, COURT)  # the court's agreement runs to 2028-12-31
    assert (court.outcome, court.transform) == (Outcome.DELIVER, "smime:message")
    event = next(e for e in rig.log.events if e["rule"] == "important-elsewhere")
    assert "expired on 2027-12-31" in event["reason"]
    assert event["party"] == ""  # an expired party is not an approved party


def test_quarantine_keeps_the_original_for_review(mail_rig):
    raw = mail(to=OTHER, subject="债权转让协议 草稿", text="请审阅债权转让协议。")
    plan = mail_rig.judge(raw, OTHER, COLLEAGUE)
    held = group(plan, OTHER)
    assert (held.outcome, held.rule) == (Outcome.QUARANTINE, "agreements-held-for-review")
    assert held.message is None and held.incident
    assert group(plan, COLLEAGUE).outcome is Outcome.DELIVER
    assert plan.notices == ()  # the delivery side tells the sender (a "delayed" DSN)


def test_report_rule_delivers_and_records(rig):
    raw = mail(to=OTHER, text="请联系 13912345678 确认。")
    plan = rig.judge(raw, OTHER)
    (d,) = plan.deliveries
    assert (d.outcome, d.action) == (Outcome.DELIVER, "report")
    assert d.rule == "basic-to-external-recorded"
    (event,) = rig.log.events
    assert event["action"] == "report" and event["findings"][0]["masked"] == "139****5678"
    assert_nothing_raw(plan, rig.log, "13912345678")


def test_duplicate_recipients_are_judged_once(rig):
    plan = rig.judge(mail(to=OTHER, text="hello"), OTHER, OTHER)
    (d,) = plan.deliveries
    assert d.recipients == (OTHER,)
