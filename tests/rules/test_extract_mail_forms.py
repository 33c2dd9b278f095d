"""Mail messages built with the stdlib email package, and HTML form bodies."""

from __future__ import annotations

import io
import zipfile
from email.message import EmailMessage
from email.policy import SMTP

from rules.extract import extract
from rules.findings import UNINSPECTABLE, Part, Problem

ID = "11010519491231002X"
MOBILE = "13800138000"
CSV_GBK = f"姓名,身份证号\n张三,{ID}\n".encode("gbk")


def run(data: bytes, **kw) -> tuple[list[Part], list[Problem]]:
    items = list(extract(data, **kw))
    return [p for p in items if isinstance(p, Part)], [p for p in items if isinstance(p, Problem)]


def texts(parts: list[Part]) -> dict[str, str]:
    return {p.location: p.text for p in parts}


# --- mail ----------------------------------------------------------------------


def make_mail() -> bytes:
    msg = EmailMessage()
    msg["Subject"] = f"债务清单 {MOBILE}"
    msg["From"] = "张三 <zhangsan@example.com>"
    msg["To"] = "李四 <lisi@example.com>, wangwu@example.com"
    msg["Cc"] = "催收 <collect@example.com>"
    msg["Reply-To"] = "reply@example.com"
    msg.set_content(f"您好，身份证号 {ID}，请核对。\n" + "长行" * 60 + "\n", cte="quoted-printable")
    msg.add_alternative(f"<p>手机 {MOBILE}</p>", subtype="html")
    msg.add_attachment(CSV_GBK, maintype="text", subtype="csv", filename="债务清单.csv")
    forwarded = EmailMessage()
    forwarded["Subject"] = "转发的邮件"
    forwarded["From"] = "old@example.com"
    forwarded.set_content(f"旧邮件 {MOBILE}\n", charset="gb18030", cte="base64")
    msg.add_attachment(forwarded)
    return msg.as_bytes(policy=SMTP)


def test_mail_headers_bodies_and_attachments() -> None:
    raw = make_mail()
    assert b"quoted-printable" in raw and b"filename*=" in raw and b"message/rfc822" in raw
    parts, problems = run(raw, name="notice.eml", location="mail notice.eml")
    assert problems == []
    by = texts(parts)
    headers = by["mail notice.eml › mail headers"]
    assert headers.split("\n") == [
        f"Subject: 债务清单 {MOBILE}",
        "From: 张三 <zhangsan@example.com>",
        "To: 李四 <lisi@example.com>, wangwu@example.com",
        "Cc: 催收 <collect@example.com>",
        "Reply-To: reply@example.com",
    ]
    assert f"身份证号 {ID}" in by["mail notice.eml › mail body text/plain"]
    assert "长行" * 60 in by["mail notice.eml › mail body text/plain"]  # QP soft breaks undone
    assert f"手机 {MOBILE}" in by["mail notice.eml › mail body text/html"]
    assert by["mail notice.eml › attachment 债务清单.csv"] == CSV_GBK.decode("gbk")
    nested = "mail notice.eml › attachment message"
    assert by[f"{nested} › mail headers"].startswith("Subject: 转发的邮件")
    assert by[f"{nested} › mail body text/plain"] == f"旧邮件 {MOBILE}\n"
    names = next(p for p in parts if p.location == "mail notice.eml › attachment names")
    assert names.text == "债务清单.csv"
    assert names.segments[0].location == "mail notice.eml › attachment 债务清单.csv"


def test_mail_header_segments() -> None:
    parts, _ = run(make_mail(), name="n.eml")
    headers = parts[0]
    assert [s.location for s in headers.segments] == [
        f"n.eml › mail headers › {name}" for name in ("Subject", "From", "To", "Cc", "Reply-To")
    ]
    for segment in headers.segments:
        name = segment.location.rsplit(" › ", 1)[1]
        assert headers.text[segment.offset :].startswith(f"{name}: ")


def test_mail_sniffed_without_a_name() -> None:
    parts, _ = run(make_mail())
    assert parts[0].location == "mail headers"


def test_rfc2047_attachment_filename_and_zip_attachment() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("debtor.txt", f"身份证号 {ID}")
    raw = (
        b"From: a@example.com\r\nSubject: =?GBK?B?1cXI/Q==?=\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="XX"\r\n\r\n'
        b"--XX\r\nContent-Type: application/zip\r\nContent-Transfer-Encoding: base64\r\n"
        b'Content-Disposition: attachment; filename="=?UTF-8?B?5qGI5Lu2LnppcA==?="\r\n\r\n'
        + __import__("base64").encodebytes(buf.getvalue())
        + b"--XX--\r\n"
    )
    parts, problems = run(raw, name="m.eml")
    assert problems == []
    by = texts(parts)
    assert by["m.eml › mail headers"] == "Subject: 张三\nFrom: a@example.com"
    assert by["m.eml › attachment 案件.zip › debtor.txt"] == f"身份证号 {ID}"


def test_broken_mime_does_not_raise() -> None:
    raw = (
        b"From: a@example.com\r\nSubject: =?UTF-8?B?broken?=\r\nTo: <<<@@@\r\n"
        b'Content-Type: multipart/mixed; boundary="never"\r\n\r\n'
        b"--never\r\nContent-Type: text/plain; charset=no-such-charset\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n"
    )
    items = list(extract(raw, name="broken.eml"))
    assert all(isinstance(i, Part | Problem) for i in items)
    assert any(i.location == "broken.eml › mail headers" for i in items)


def test_deeply_nested_multipart_is_bounded() -> None:
    depth = 60
    head = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
        for i in range(depth)
    )
    raw = b"From: a@example.com\r\nDate: x\r\n" + head + b"Content-Type: text/plain\r\n\r\nhi\r\n"
    items = list(extract(raw, name="deep.eml"))
    problems = [i for i in items if isinstance(i, Problem)]
    assert problems and problems[0].detector == UNINSPECTABLE


# --- forms -----------------------------------------------------------------------


def test_urlencoded_utf8_plus_is_space() -> None:
    body = b"name=%E5%BC%A0%E4%B8%89&id_no=" + ID.encode() + b"&note=a+b%2Bc&empty="
    parts, problems = run(body, content_type="application/x-www-form-urlencoded")
    assert problems == []
    assert [(p.location, p.text) for p in parts] == [
        ("form field name", "张三"),
        ("form field id_no", ID),
        ("form field note", "a b+c"),
    ]


def test_urlencoded_gbk_declared_and_detected() -> None:
    from urllib.parse import quote

    body = f"name={quote('张三丰', encoding='gbk')}&addr={quote('北京市朝阳区', encoding='gbk')}"
    for content_type in (
        "application/x-www-form-urlencoded; charset=GBK",
        "application/x-www-form-urlencoded",
    ):
        parts, _ = run(body.encode(), content_type=content_type, location="POST https://x/save")
        assert texts(parts) == {
            "POST https://x/save › form field name": "张三丰",
            "POST https://x/save › form field addr": "北京市朝阳区",
        }


def make_form(boundary: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("清单.csv", CSV_GBK)
    b = boundary.encode()
    return (
        b"--" + b + b'\r\nContent-Disposition: form-data; name="id_no"\r\n\r\n' + ID.encode()
        + b"\r\n--" + b + b'\r\nContent-Disposition: form-data; name="memo"\r\n\r\n'
        + "第一行\r\n第二行".encode() + b"\r\n--" + b
        + '\r\nContent-Disposition: form-data; name="upload"; filename="债务.csv"\r\n'.encode()
        + b"Content-Type: text/csv\r\n\r\n" + CSV_GBK + b"\r\n--" + b
        + b'\r\nContent-Disposition: form-data; name="bundle"; filename="a.zip"\r\n'
        + b"Content-Type: application/zip\r\n\r\n" + buf.getvalue() + b"\r\n--" + b
        + b'\r\nContent-Disposition: form-data; name="nothing"; filename=""\r\n'
        + b"Content-Type: application/octet-stream\r\n\r\n\r\n--" + b + b"--\r\n"
    )  # fmt: skip


def test_multipart_form_data() -> None:
    boundary = "----WebKitFormBoundary7MA4YWxkTrZu0gW"
    content_type = f"multipart/form-data; boundary={boundary}"
    parts, problems = run(make_form(boundary), content_type=content_type)
    assert problems == []
    assert texts(parts) == {
        "form field id_no": ID,
        "form field memo": "第一行\r\n第二行",
        "form field upload › file 债务.csv": CSV_GBK.decode("gbk"),
        "form field bundle › file a.zip › 清单.csv": CSV_GBK.decode("gbk"),
        "form field bundle › file a.zip › member names": "清单.csv",
        "file names": "债务.csv\na.zip",
    }


def test_multipart_boundary_sniffed_from_the_body() -> None:
    parts, _ = run(make_form("xyz"), content_type="application/octet-stream")
    assert texts(parts)["form field id_no"] == ID


def test_multipart_without_its_boundary() -> None:
    parts, problems = run(b"no delimiters here", content_type="multipart/form-data; boundary=zz")
    assert parts == []
    assert problems[0].reason == "multipart body without its boundary"


def test_multipart_without_closing_delimiter() -> None:
    body = b'--q\r\nContent-Disposition: form-data; name="a"\r\n\r\n' + ID.encode()
    parts, _ = run(body, content_type="multipart/form-data; boundary=q")
    assert texts(parts) == {"form field a": ID}
