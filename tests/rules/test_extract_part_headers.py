"""The header fields of a mail's body parts: what a person or script wrote there is scanned,
what mail software writes (structure, ids) is not. Mails built with the email package."""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP

from rules.engine import Engine
from rules.extract import extract
from rules.findings import Finding, Part, Problem
from tests.rules import strategies as s

ID = "11010519491231002X"
ID2 = "110101199003074477"
ENGINE = Engine(hash_key=s.KEY)


def run(raw: bytes) -> tuple[list[Part], list[Problem], list[Finding]]:
    items = list(extract(raw, name="m.eml"))
    parts = [p for p in items if isinstance(p, Part)]
    problems = [p for p in items if isinstance(p, Problem)]
    return parts, problems, ENGINE.scan_parts(parts)


def ids_at(findings: list[Finding]) -> list[str]:
    return sorted(f.location for f in findings if f.detector == "cn_resident_id")


def mail() -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = "季度报告"
    msg["From"] = "a@example.com"
    msg["To"] = "b@example.com"
    msg.set_content("请查收附件。\n")
    return msg


def attach(msg: EmailMessage, **fields: str) -> EmailMessage:
    """A CSV attachment (part 2) carrying extra header fields."""
    msg.add_attachment(b"quarter,total\nQ1,1200\n", maintype="text", subtype="csv",
                       filename="report.csv")  # fmt: skip
    part = msg.get_payload()[-1]
    for name, value in fields.items():
        part[name.replace("_", "-")] = value
    return msg


def test_id_in_a_parts_content_description_is_found() -> None:
    raw = attach(mail(), Content_Description=f"客户 {ID} 的报告").as_bytes(policy=SMTP)
    parts, problems, findings = run(raw)
    assert problems == []
    by = {p.location: p for p in parts}
    headers = by["m.eml › part 2 › headers"]
    assert headers.text == f"Content-Description: 客户 {ID} 的报告"
    assert [s.location for s in headers.segments] == [
        "m.eml › part 2 › headers › Content-Description"
    ]
    assert ids_at(findings) == ["m.eml › part 2 › headers › Content-Description"]


def test_id_in_an_x_field_a_script_added_to_an_attachment_is_found() -> None:
    raw = attach(mail(), X_Customer_Id=ID2, X_Batch="7").as_bytes(policy=SMTP)
    _, _, findings = run(raw)
    assert ids_at(findings) == ["m.eml › part 2 › headers › X-Customer-Id"]


def test_rfc2047_encoded_part_field_is_decoded() -> None:
    msg = attach(mail())
    msg.get_payload()[-1]["Content-Description"] = "=?UTF-8?B?5a6i5oi3?= " + ID
    _, _, findings = run(msg.as_bytes(policy=SMTP))
    assert ids_at(findings) == ["m.eml › part 2 › headers › Content-Description"]


def test_clean_multipart_mail_with_ordinary_part_headers_has_no_finding() -> None:
    msg = mail()
    msg.add_alternative("<p>请查收附件。</p>", subtype="html")
    for body in msg.get_payload():
        body["Content-Disposition"] = "inline"
    msg.get_payload()[1]["Content-ID"] = "<part2.13800138000.20240506@example.com>"
    msg.make_mixed()
    attach(msg, Content_Description="Quarterly report", Content_ID="<f_13912345678>")
    attachment = msg.get_payload()[-1]
    attachment["X-Attachment-Id"] = "f_13912345678"  # Gmail's: an id, not content
    attachment["Content-MD5"] = "Q2hlY2sgSW50ZWdyaXR5IQ=="
    raw = msg.as_bytes(policy=SMTP)
    for field in (b"Content-Type:", b"Content-Transfer-Encoding:", b"Content-Disposition:"):
        assert raw.count(field) >= 3
    parts, problems, findings = run(raw)
    assert problems == []
    # The message's own addresses only (the relay drops those); nothing from a part.
    assert [f.location for f in findings] == [
        "m.eml › mail headers › From",
        "m.eml › mail headers › To",
    ]
    # Only the part with a written field gets a Part; structural-only parts cost nothing.
    assert [p.location for p in parts if p.location.endswith("› headers")] == [
        "m.eml › part 2 › headers"
    ]
    assert {p.location: p.text for p in parts}["m.eml › part 2 › headers"] == (
        "Content-Description: Quarterly report"
    )


def test_nested_parts_are_numbered_as_imap_numbers_them() -> None:
    msg = mail()
    msg.add_alternative("<p>html</p>", subtype="html")
    msg.get_payload()[1]["X-Note"] = f"备注 {ID}"
    msg.make_mixed()
    attach(msg)
    _, _, findings = run(msg.as_bytes(policy=SMTP))
    assert ids_at(findings) == ["m.eml › part 1.2 › headers › X-Note"]


def test_field_of_a_part_in_a_forwarded_message_is_found() -> None:
    inner = attach(mail(), X_Customer_Id=ID)
    outer = mail()
    outer.add_attachment(inner)
    outer.get_payload()[-1]["Content-Description"] = f"转发 {ID2}"
    _, _, findings = run(outer.as_bytes(policy=SMTP))
    assert ids_at(findings) == [
        "m.eml › attachment message › part 2 › headers › X-Customer-Id",
        "m.eml › part 2 › headers › Content-Description",
    ]


def test_description_repeating_the_file_name_is_reported_once_as_the_name() -> None:
    """Outlook writes the file name into Content-Description too."""
    msg = mail()
    name = f"张三_{ID}.csv"
    msg.add_attachment(b"a,b\n", maintype="text", subtype="csv", filename=name)
    msg.get_payload()[-1]["Content-Description"] = name
    parts, _, findings = run(msg.as_bytes(policy=SMTP))
    assert not any(p.location.endswith("› headers") for p in parts)
    assert ids_at(findings) == ["m.eml › attachment 张三_110105********002X.csv"]  # masked


def test_single_part_message_header_is_read_once() -> None:
    msg = mail()
    msg["X-Case"] = ID
    parts, _, findings = run(msg.as_bytes(policy=SMTP))
    assert [p.location for p in parts] == ["m.eml › mail headers", "m.eml › mail body text/plain"]
    assert ids_at(findings) == ["m.eml › mail headers › X-Case"]


def test_a_forwarded_messages_file_name_is_scanned() -> None:
    """`张三_<ID>.eml`, described by the same words (as Outlook does): the name is read
    once, with the attachment names, located at the attachment. Before, the description
    was skipped as a copy of a name that was itself never scanned."""
    inner = mail()
    msg = mail()
    msg.add_attachment(inner, filename=f"张三_{ID}.eml")
    part = msg.get_payload()[-1]
    part["Content-Description"] = f"张三_{ID}.eml"
    _, problems, findings = run(msg.as_bytes(policy=SMTP))
    assert problems == []
    assert ids_at(findings) == ["m.eml › attachment 张三_110105********002X.eml"]  # redacted


def test_a_content_type_name_differing_from_the_file_name_is_scanned() -> None:
    """Content-Disposition says report.csv, Content-Type's name= carries an ID: a client
    shows one of the two, both travel, both are read."""
    msg = attach(mail())
    msg.get_payload()[-1].set_param("name", f"张三_{ID}.csv")
    _, problems, findings = run(msg.as_bytes(policy=SMTP))
    assert problems == []
    assert ids_at(findings) == ["m.eml › attachment report.csv"]


def test_a_parameter_nobody_s_software_sets_is_scanned() -> None:
    msg = attach(mail())
    msg.get_payload()[-1].set_param("x-debtor", f"张三 {ID}")
    msg.set_param("x-case", f"案件 {ID2}")  # the message's own Content-Type
    _, problems, findings = run(msg.as_bytes(policy=SMTP))
    assert problems == []
    assert ids_at(findings) == [
        "m.eml › mail headers › Content-Type; x-case",
        "m.eml › part 2 › headers › Content-Type; x-debtor",
    ]


def test_an_rfc2231_parameter_is_decoded_before_it_is_scanned() -> None:
    msg = attach(mail())
    msg.get_payload()[-1].set_param(
        "x-note", f"客户{ID}", header="Content-Disposition", charset="utf-8"
    )
    raw = msg.as_bytes(policy=SMTP)
    assert b"x-note*=utf-8''" in raw
    _, problems, findings = run(raw)
    assert problems == []
    assert ids_at(findings) == ["m.eml › part 2 › headers › Content-Disposition; x-note"]


def test_the_parameters_mail_software_sets_build_nothing() -> None:
    msg = attach(mail())
    part = msg.get_payload()[-1]
    part.set_param("creation-date", "Mon, 23 Nov 2026 10:00:00 +0800", header="Content-Disposition")
    part.set_param("size", "13800138000", header="Content-Disposition")
    msg.get_payload()[0].set_param("format", "flowed")
    msg.add_attachment(b"a,b\n", maintype="text", subtype="csv", filename="债务清单.csv")
    raw = msg.as_bytes(policy=SMTP)
    assert b"filename*=utf-8''" in raw  # an RFC 2231 name is a name, not a parameter
    parts, problems, findings = run(raw)
    assert problems == []
    assert [p.location for p in parts if "part" in p.location] == []
    assert [f for f in findings if "part" in f.location] == []
