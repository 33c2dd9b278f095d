"""Masking: the law firm may receive client files but not their contact details (need to know).

The shipped policy lets contact data go to the law firm masked (its `mask:
[contact]`), so a mail with mobiles and e-mail addresses but no ID numbers
is delivered rewritten: Subject, text and HTML parts and CSV attachments,
each in its own charset and transfer encoding. What cannot be rewritten (an
xlsx, a zip, the From header) turns the delivery into a bounce.
"""

from __future__ import annotations

import io
import zipfile
from email.message import EmailMessage

import openpyxl
import pytest

from mailrelay.plan import Outcome
from tests.mailrelay.test_judge_rig import (
    CSV_MOBILES,
    LAWFIRM,
    MOBILE,
    SENDER,
    assert_nothing_raw,
    attachment,
    corpus,
    mail,
    parse,
    text_of,
)

MOBILE_MASKED = "139****5678"
EMAIL = "hutao17@outlook.com"
EMAIL_MASKED = "h***@outlook.com"
RAW = (MOBILE, EMAIL, *CSV_MOBILES)
CSV_TEXT = "姓名,手机,备注\r\n" + "".join(
    f"债务人{i},{m},第{i}期\r\n" for i, m in enumerate(CSV_MOBILES, 1)
)


def delivered(plan) -> EmailMessage:
    (d,) = plan.deliveries
    assert (d.outcome, d.action, d.transform) == (Outcome.DELIVER, "mask", "masked"), d.reason
    return parse(d.message)


def test_text_html_csv_and_subject_are_masked(rig):
    html = (
        "<html><body><p>联系电话：&#49;&#51;&#57;12345678</p>"
        f"<p>邮箱 <a href='mailto:{EMAIL}'>{EMAIL}</a></p></body></html>"
    )
    pdf = corpus("receipt_negative.pdf")
    raw = mail(
        subject=f"请回电 {MOBILE}",
        text=f"您好，请联系债务人，手机 {MOBILE}，邮箱 {EMAIL}。",
        html=html,
        attachments=(
            ("联系人.csv", CSV_TEXT.encode("gbk"), "text/csv"),
            ("receipt.pdf", pdf, "application/pdf"),
        ),
    )
    plan = rig.judge(raw, LAWFIRM)
    out = delivered(plan)
    assert out["Subject"] == f"请回电 {MOBILE_MASKED}"
    text = text_of(out)
    assert text == f"您好，请联系债务人，手机 {MOBILE_MASKED}，邮箱 {EMAIL_MASKED}。\n"
    page = text_of(out, "html")
    assert MOBILE_MASKED in page and EMAIL_MASKED in page and "&#49;" not in page
    rows = attachment(out, "联系人.csv").decode("gbk")
    assert rows == CSV_TEXT.replace("15152866064", "151****6064").replace(
        "15859935967", "158****5967"
    ).replace("15912276240", "159****6240")
    assert attachment(out, "receipt.pdf") == pdf  # untouched parts go out byte for byte
    assert out["From"] == f"张伟 <{SENDER}>" and out["Message-ID"] == "<20260601.1@firm.example>"
    (d,) = plan.deliveries
    for value in RAW:
        assert value.encode() not in d.message
    assert_nothing_raw(plan, rig.log, *RAW)
    (event,) = rig.log.events
    assert event["action"] == "mask" and "sent as masked" in event["detail"]


@pytest.mark.parametrize("charset", ["utf-8", "gb18030"])
@pytest.mark.parametrize("cte", ["base64", "quoted-printable", "8bit"])
def test_a_part_keeps_its_charset_and_transfer_encoding(rig, charset, cte):
    raw = mail(text=f"债务人手机 {MOBILE}，请尽快联系。\n" * 3, charset=charset, cte=cte)
    out = delivered(rig.judge(raw, LAWFIRM))
    body = out.get_body(("plain",))
    assert body.get_content_charset() == charset
    assert body["Content-Transfer-Encoding"] == cte
    expected = f"债务人手机 {MOBILE_MASKED}，请尽快联系。\n" * 3
    assert body.get_content().replace("\r\n", "\n") == expected


def test_a_csv_without_charset_keeps_its_bytes_and_bom(rig):
    data = b"\xef\xbb\xbf" + CSV_TEXT.encode("utf-8")
    out = delivered(rig.judge(mail(attachments=(("list.csv", data, "text/csv"),)), LAWFIRM))
    new = attachment(out, "list.csv")
    assert new.startswith(b"\xef\xbb\xbf") and b"151****6064" in new
    assert len(new) == len(data)  # same length: digits became stars, nothing else moved


def test_a_forwarded_message_is_masked_inside(rig):
    inner = mail(to="old@firm.example", subject="原邮件", text=f"手机 {MOBILE}")
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = SENDER, LAWFIRM, "Fwd: 原邮件"
    m.set_content("见转发。")
    m.add_attachment(parse(inner), filename="forwarded.eml")
    out = delivered(rig.judge(m.as_bytes(), LAWFIRM))
    (fwd,) = [p for p in out.walk() if p.get_content_type() == "message/rfc822"]
    forwarded = fwd.get_payload()[0]
    assert MOBILE_MASKED in text_of(forwarded)
    assert forwarded["To"] == "o***@firm.example"  # a third party's address, masked too


def workbook(*values: str) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["姓名", "手机"])
    for i, value in enumerate(values, 1):
        sheet.append([f"债务人{i}", value])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def test_an_xlsx_with_values_to_mask_bounces(rig):
    raw = mail(
        text=f"手机 {MOBILE}",  # the text could be masked, the sheet cannot
        attachments=(("联系人.xlsx", workbook(*CSV_MOBILES), XLSX_TYPE),),
    )
    plan = rig.judge(raw, LAWFIRM)
    (d,) = plan.deliveries
    assert (d.outcome, d.action) == (Outcome.BOUNCE, "block")
    assert d.message is None and d.incident
    assert d.rule == "basic-to-external-recorded"  # the rule that decided, blocked on the way
    assert "attachment 联系人.xlsx" in d.reason and "cannot be rewritten" in d.reason
    assert "could not be masked safely" in d.explanation
    assert {f["masked"] for f in d.findings} >= {"151****6064", MOBILE_MASKED}
    assert_nothing_raw(plan, rig.log, *RAW)
    assert rig.log.events[-1]["action"] == "block"


def test_a_zip_with_values_to_mask_bounces(rig):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("contacts.csv", CSV_TEXT.encode("utf-8"))
    raw = mail(attachments=(("contacts.zip", buffer.getvalue(), "application/zip"),))
    (d,) = rig.judge(raw, LAWFIRM).deliveries
    assert d.outcome is Outcome.BOUNCE
    assert "attachment contacts.zip › contacts.csv" in d.reason


def test_a_value_in_the_from_header_cannot_be_masked(rig):
    m = EmailMessage()
    m["From"] = f"张伟 {MOBILE} <{SENDER}>"
    m["To"], m["Subject"] = LAWFIRM, "hello"
    m.set_content("没有别的内容。")
    (d,) = rig.judge(m.as_bytes(), LAWFIRM).deliveries
    assert d.outcome is Outcome.BOUNCE
    assert "mail headers › From" in d.reason
