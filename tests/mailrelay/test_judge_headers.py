"""Every header field a person or a script may write is content; what mail software
writes (routing, signatures, ids, spam verdicts) is not, so it raises no findings."""

from __future__ import annotations

import pytest

from mailrelay.plan import Outcome
from rules.extract import extract
from tests.mailrelay.test_judge_rig import (
    GMAIL,
    ID,
    MOBILE,
    ROOT,
    WEBMAIL,
    assert_nothing_raw,
    mail,
)

# Headers as Gmail, Exchange Online, QQ Mail and Postfix write them (ids, verdicts,
# signatures with digit runs in them), none written by a person.
MACHINE_HEADERS = (ROOT / "tests" / "data" / "mail" / "machine_headers.txt").read_bytes()


def with_headers(raw: bytes, *lines: bytes) -> bytes:
    return b"".join(line.rstrip(b"\r\n") + b"\r\n" for line in lines) + raw


@pytest.mark.parametrize(
    "field",
    [
        f"X-Debtor-Id: {ID}",
        f"Comments: 证件号 {ID}",
        f"Keywords: 催收, {ID}",
        "X-Note: =?UTF-8?B?" + "5a6i5oi36K+B5Lu2IDExMDEwNTE5NDkxMjMxMDAyWA==" + "?=",
        f"Thread-Topic: 客户 {ID}",
    ],
    ids=["x-header", "comments", "keywords", "encoded-word", "thread-topic"],
)
def test_an_id_in_any_written_header_to_webmail_bounces(rig, field):
    raw = with_headers(mail(to=WEBMAIL, text="周末见。"), field.encode())
    plan = rig.judge(raw, WEBMAIL)
    (d,) = plan.deliveries
    assert (d.outcome, d.rule) == (Outcome.BOUNCE, "identifying-to-personal-channels")
    name = field.split(":", 1)[0]
    assert [f["location"] for f in d.findings] == [f"mail headers › {name}"]
    assert_nothing_raw(plan, rig.log, ID)


def test_machine_written_headers_raise_no_findings(rig):
    raw = with_headers(mail(to=GMAIL, text="周末见。See you on Saturday."), MACHINE_HEADERS)
    plan = rig.judge(raw, GMAIL)
    (d,) = plan.deliveries
    assert (d.outcome, d.action) == (Outcome.DELIVER, "allow")
    assert d.findings == ()


def test_machine_headers_are_left_out_and_written_ones_kept_in_order():
    raw = with_headers(mail(to=GMAIL), MACHINE_HEADERS, b"X-Case: 42")
    (headers,) = [p for p in extract(raw, name="m.eml") if p.location == "m.eml › mail headers"]
    names = [line.split(":", 1)[0] for line in headers.text.splitlines()]
    assert names == ["Subject", "From", "To", "X-Mailer", "X-Priority", "Thread-Topic", "X-Case"]


@pytest.mark.parametrize("field", ["Bcc", "Sender", "Disposition-Notification-To", "BCC"])
def test_the_messages_own_address_fields_are_not_contact_data(rig, field):
    raw = with_headers(mail(to=GMAIL, text="周末见。"), f"{field}: li.na@firm.example".encode())
    (d,) = rig.judge(raw, GMAIL).deliveries
    assert (d.outcome, d.action, d.findings) == (Outcome.DELIVER, "allow", ())


def test_a_value_to_mask_in_a_written_field_other_than_the_subject_bounces(rig):
    """Only the Subject can be rewritten: a value to mask in another field bounces."""
    raw = with_headers(mail(to="cases@lawfirm.example", text="附件。"), f"X-Tel: {MOBILE}".encode())
    plan = rig.judge(raw, "cases@lawfirm.example")
    (d,) = plan.deliveries
    assert d.outcome is Outcome.BOUNCE, (d.outcome, d.action, d.reason)
    assert "mail headers › X-Tel" in d.reason
    assert_nothing_raw(plan, rig.log, MOBILE)
