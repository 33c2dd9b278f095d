"""Failing closed: hostile or broken mail, encryption that cannot happen, and judge bugs.

Whatever arrives, judge() returns a Plan that covers every recipient exactly
once and never raises; content it cannot read does not leave the firm (the
policy's `uninspectable-to-external`), and encryption that cannot be done
bounces — never plaintext.
"""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mailrelay.judge as judge_module
from mailrelay.plan import Outcome, Plan
from tests.mailrelay.test_judge_rig import (
    COLLEAGUE,
    COURT,
    ID,
    LAWFIRM,
    MAIL_POLICY,
    OTHER,
    SENDER,
    WEBMAIL,
    XLSX_IDS,
    assert_nothing_raw,
    corpus,
    group,
    mail,
    xlsx_attachment,
)

XLSX_B64 = base64.encodebytes(corpus("debtors.xlsx")).replace(b"\n", b"\r\n")
HEAD = (
    f"From: {SENDER}\r\nTo: {OTHER}, {COLLEAGUE}\r\nSubject: list\r\n"
    "Message-ID: <broken.1@firm.example>\r\nMIME-Version: 1.0\r\n"
).encode()


@pytest.fixture
def rig(shared, tmp_path):
    return shared.rig(tmp_path, MAIL_POLICY)


def covers(plan: Plan, *recipients: str) -> None:
    seen = [r for d in plan.deliveries for r in d.recipients]
    assert sorted(seen) == sorted(set(recipients))


def assert_uninspectable(plan: Plan, log, words: str) -> None:
    """External recipient refused with the reason; the colleague inside still gets it."""
    covers(plan, OTHER, COLLEAGUE)
    out = group(plan, OTHER)
    assert (out.outcome, out.rule) == (Outcome.BOUNCE, "uninspectable-to-external")
    assert "could not be inspected" in out.reason
    whys = " ".join(w for f in out.findings for w in f["why"])
    assert words in whys, whys
    assert group(plan, COLLEAGUE).outcome is Outcome.DELIVER  # the policy allows it inside
    event = next(e for e in log.events if e["rule"] == "uninspectable-to-external")
    assert words in event["detail"] or words in str(event["findings"])
    assert_nothing_raw(plan, log, *XLSX_IDS)


# -- malformed MIME, broken charsets ---------------------------------------------------------


def part(ctype: str, body: bytes, *, cte: str = "base64", name: str = "") -> bytes:
    disposition = f'Content-Disposition: attachment; filename="{name}"\r\n' if name else ""
    head = f"Content-Type: {ctype}\r\nContent-Transfer-Encoding: {cte}\r\n{disposition}"
    return head.encode() + b"\r\n" + body


MALFORMED = {
    "a multipart part whose boundary never appears": HEAD
    + b'Content-Type: multipart/mixed; boundary="declared"\r\n\r\n'
    + b"--other\r\n"
    + part("application/octet-stream", XLSX_B64, name="a.xlsx")
    + b"\r\n--other--\r\n",
    "a multipart part without a boundary": HEAD
    + b"Content-Type: multipart/mixed\r\n\r\n--x\r\n"
    + part("application/octet-stream", XLSX_B64, name="a.xlsx")
    + b"\r\n--x--\r\n",
    "a header section not ended by an empty line": HEAD
    + b"this line is no header\r\nbody text\r\n",
    "broken base64 (characters outside the alphabet)": HEAD
    + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
    + part("text/plain", b"5L2g5aW9\r\n!!*&^%$\r\nAAA\r\n")
    + b"\r\n--b--\r\n",
    "a multipart part with a transfer encoding": HEAD
    + b'Content-Type: multipart/mixed; boundary="b"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
    + b"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b--\r\n",
}


@pytest.mark.parametrize("words", list(MALFORMED))
def test_malformed_mime_does_not_leave(rig, words):
    plan = rig.judge(MALFORMED[words], OTHER, COLLEAGUE)
    assert_uninspectable(plan, rig.log, f"malformed MIME: {words}")


@pytest.mark.parametrize(
    ("charset", "body", "words"),
    [
        ("x-no-such-charset", b"hello", "unknown charset (x-no-such-charset)"),
        ("utf-8", b"\xff\xfe\xfd not utf-8 \xc3", "not valid utf-8 text (broken charset)"),
        ("us-ascii", "债务".encode("gbk"), "not valid us-ascii text"),
    ],
)
def test_a_broken_charset_does_not_leave(rig, charset, body, words):
    raw = HEAD + part(f"text/plain; charset={charset}", body, cte="8bit")
    assert_uninspectable(rig.judge(raw, OTHER, COLLEAGUE), rig.log, words)


def test_a_value_in_a_charset_label_is_not_repeated_in_clear(rig):
    raw = HEAD + part(f"text/plain; charset=x-{ID}", b"hello", cte="8bit")
    plan = rig.judge(raw, OTHER, COLLEAGUE)
    assert group(plan, OTHER).rule == "uninspectable-to-external"
    assert_nothing_raw(plan, rig.log, ID)


# -- limits: huge headers, zip bombs ------------------------------------------------------------


HUGE = {
    "a header field of 100.0 KiB": HEAD.replace(b"Subject: list", b"Subject: " + b"x" * 102_400)
    + b"\r\nbody\r\n",
    "2001 header fields": HEAD + b"X-Filler: 1\r\n" * 1996 + b"\r\nbody\r\n",
    "Content-* header field of": HEAD
    + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain; '
    + b"; ".join(b"p%d=v" % i for i in range(20_000))
    + b"\r\n\r\nhi\r\n--b--\r\n",
}


@pytest.mark.parametrize("words", list(HUGE))
def test_huge_headers_are_refused_unparsed_and_fast(rig, words):
    started = time.monotonic()
    plan = rig.judge(HUGE[words], OTHER, COLLEAGUE)
    assert time.monotonic() - started < 2  # a 100 KiB Content-Type costs Python's parser seconds
    assert_uninspectable(plan, rig.log, words)


def test_huge_headers_cannot_be_rewritten_for_anyone(rig):
    """Inside the firm the policy lets it through; anything needing a rewrite bounces."""
    plan = rig.judge(HUGE["2001 header fields"], COLLEAGUE, LAWFIRM, OTHER)
    covers(plan, COLLEAGUE, LAWFIRM, OTHER)
    assert group(plan, LAWFIRM).outcome is Outcome.BOUNCE


def test_a_zip_bomb_attachment_does_not_leave(rig):
    raw = mail(to=OTHER, attachments=(("zeros.zip", corpus("zeros_50MiB.zip"), "application/zip"),))
    started = time.monotonic()
    plan = rig.judge(raw, OTHER, COLLEAGUE)
    assert time.monotonic() - started < 10
    assert_uninspectable(plan, rig.log, "expands beyond")


def test_an_encrypted_archive_is_not_sent_even_to_a_party(rig):
    rig.certificate("example-court", "court.example")
    raw = mail(to=COURT, attachments=(("a.zip", corpus("encrypted_aes.zip"), "application/zip"),))
    (d,) = rig.judge(raw, COURT).deliveries
    assert (d.outcome, d.rule) == (Outcome.BOUNCE, "uninspectable-to-external")


# -- encryption that cannot happen ----------------------------------------------------------------


def test_an_expired_certificate_bounces_with_its_date(rig):
    rig.certificate("example-court", "court.example")  # valid until 2027-06-01
    rig.clock = datetime(2027, 8, 1, tzinfo=UTC)  # the court's agreement still runs
    plan = rig.judge(mail(to=COURT, attachments=(xlsx_attachment(),)), COURT)
    (d,) = plan.deliveries
    assert (d.outcome, d.action, d.rule) == (Outcome.BOUNCE, "block", "important-to-party-by-mail")
    assert "certificate of party 'example-court' expired on 2027-06-01" in d.reason
    assert "must be sent encrypted" in d.explanation
    assert d.message is None and plan.notices == ()
    assert_nothing_raw(plan, rig.log, *XLSX_IDS)


def test_no_certificate_and_nothing_to_zip_bounces(rig):
    plan = rig.judge(mail(to=COURT, text=f"身份证号 {ID}"), COURT)
    (d,) = plan.deliveries
    assert d.outcome is Outcome.BOUNCE
    assert "party example-court has no certificate" in d.reason
    assert "no attachments to put in an encrypted zip" in d.reason
    assert_nothing_raw(plan, rig.log, ID)


def test_no_certificate_and_ids_in_the_text_bounces(rig):
    raw = mail(to=COURT, text=f"身份证号 {ID}", attachments=(xlsx_attachment(),))
    (d,) = rig.judge(raw, COURT).deliveries
    assert d.outcome is Outcome.BOUNCE
    assert "cannot be sent in clear" in d.reason and "mail body text/plain" in d.reason


def test_a_zip_needs_a_sender_for_its_password(rig):
    raw = mail(to=COURT, attachments=(xlsx_attachment(),))
    plan = rig.judge(raw, COURT, sender="")
    (d,) = plan.deliveries
    assert d.outcome is Outcome.BOUNCE and "no sender" in d.reason
    assert plan.notices == ()


def test_an_id_in_the_subject_is_not_left_outside_the_smime_envelope(rig):
    rig.certificate("example-court", "court.example")
    raw = mail(to=COURT, subject=f"材料 {ID}", attachments=(xlsx_attachment(),))
    (d,) = rig.judge(raw, COURT).deliveries
    assert d.outcome is Outcome.BOUNCE
    assert "mail headers › Subject" in d.reason and "S/MIME leaves the headers" in d.reason


def test_an_unreadable_certificate_file_bounces(rig):
    rig.certificate("example-court", "court.example")
    path = rig.services.certificates.path("example-court")
    path.write_bytes(b"-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n")
    (d,) = rig.judge(mail(to=COURT, attachments=(xlsx_attachment(),)), COURT).deliveries
    assert d.outcome is Outcome.BOUNCE
    assert "certificate of party example-court cannot be used" in d.reason


# -- judge bugs and broken services --------------------------------------------------------------


def test_a_failing_engine_bounces_everyone_and_is_recorded(rig, monkeypatch):
    def broken(policy):
        raise RuntimeError("hyperscan database lost")

    monkeypatch.setattr(rig.services, "engine", broken)
    plan = rig.judge(mail(to=COLLEAGUE), COLLEAGUE, OTHER)
    (d,) = plan.deliveries
    assert d.recipients == (COLLEAGUE, OTHER) and plan.all_refused
    assert (d.rule, d.reason) == ("fail-closed", "inspection failed (RuntimeError)")
    assert d.incident
    (event,) = rig.log.events
    assert event["rule"] == "fail-closed" and event["incident"] == d.incident
    assert event["detail"].startswith("message R-0001")


def test_a_failing_encryption_bounces_only_its_group(rig, monkeypatch):
    rig.certificate("example-court", "court.example")

    def broken(raw, cert):
        raise ValueError("OpenSSL said no")

    monkeypatch.setattr(judge_module, "smime_message", broken)
    plan = rig.judge(mail(to=COURT, attachments=(xlsx_attachment(),)), COURT, COLLEAGUE)
    court = group(plan, COURT)
    assert court.outcome is Outcome.BOUNCE
    assert "encryption failed (ValueError)" in court.reason
    assert group(plan, COLLEAGUE).outcome is Outcome.DELIVER


def test_a_failing_event_record_does_not_lose_the_decision(rig):
    def broken(event):
        raise OSError("disk full")

    rig.services.record = broken
    plan = rig.judge(mail(to=WEBMAIL, attachments=(xlsx_attachment(),)), WEBMAIL)
    assert plan.all_refused and plan.deliveries[0].rule == "identifying-to-personal-channels"


def test_no_recipients_no_deliveries(rig):
    assert rig.judge(
        mail(),
    ) == Plan(())


def test_an_unknown_client_address_cannot_reach_outside(rig):
    (d,) = rig.judge(mail(to=OTHER, text="hello"), OTHER, ip="").deliveries
    assert (d.outcome, d.rule) == (Outcome.BOUNCE, "reach:external->external")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.one_of(
        st.binary(max_size=2000),
        st.builds(
            lambda cut, junk: (
                MALFORMED["a multipart part whose boundary never appears"][:cut] + junk
            ),
            st.integers(0, 4000),
            st.binary(max_size=200),
        ),
    )
)
def test_any_bytes_give_a_plan_covering_every_recipient(rig, raw):
    plan = rig.judge(raw, OTHER, COLLEAGUE, LAWFIRM)
    covers(plan, OTHER, COLLEAGUE, LAWFIRM)
    for d in plan.deliveries:
        assert d.outcome in Outcome
        assert d.outcome is not Outcome.DELIVER or d.rule != "fail-closed"
