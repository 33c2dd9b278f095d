"""Body rewriting: only the values asked for change, re-encoded as they came, else refused."""

from __future__ import annotations

import json
import re

import pytest

from proxy.masking import CannotMask, mask_body, mask_query, replace_spans
from rules.findings import Finding

PHONE = "13912345678"
MASKED = "139****5678"


def find_phone(text: str) -> list[Finding]:
    """Stands in for the engine: every PHONE is a finding to mask."""
    return [
        Finding("cn_mobile", 0.9, "", m.start(), m.end(), MASKED, "h")
        for m in re.finditer(PHONE, text)
    ]


def test_replace_spans_keeps_the_rest():
    text = f"a {PHONE} b {PHONE}"
    assert replace_spans(text, find_phone(text)) == f"a {MASKED} b {MASKED}"


def test_value_inside_base64_is_refused():
    f = Finding("cn_mobile", 0.9, "", 0, 4, MASKED, "h", why=("inside base64",))
    with pytest.raises(CannotMask, match="base64"):
        replace_spans("QUJDRA==", [f])


def test_urlencoded_only_changed_fields_are_reencoded():
    body = f"a=%E5%BC%A0+%E4%B8%89&tel={PHONE}&b=x%2By".encode()
    out = mask_body(body, "application/x-www-form-urlencoded", find_phone)
    assert out == b"a=%E5%BC%A0+%E4%B8%89&tel=139****5678&b=x%2By"


def test_urlencoded_value_with_encoded_separators():
    query = "tel=139-1234-5678"
    hit = [Finding("cn_mobile", 0.9, "", 0, 13, MASKED, "h")]
    assert mask_query(query, lambda t: hit if t.startswith("139") else []) == "tel=139****5678"


def test_gbk_form_is_reencoded_in_gbk():
    body = "备注=电话".encode("gbk") + f"{PHONE}".encode()
    out = mask_body(body, "application/x-www-form-urlencoded; charset=gbk", find_phone)
    assert out.decode("gbk").endswith(MASKED)


def test_json_string_masked_and_still_parses():
    body = json.dumps({"tel": PHONE, "n": 1}).encode()
    assert json.loads(mask_body(body, "application/json", find_phone)) == {"tel": MASKED, "n": 1}


def test_json_number_cannot_be_masked():
    with pytest.raises(CannotMask, match="JSON"):
        mask_body(f'{{"tel": {PHONE}}}'.encode(), "application/json", find_phone)


def test_plain_text_and_untouched_body_is_the_same_object():
    body = b"nothing here"
    assert mask_body(body, "text/plain", find_phone) is body
    assert mask_body(f"x{PHONE}".encode(), "text/plain", find_phone) == f"x{MASKED}".encode()


def multipart(file_ctype: str, data: bytes) -> tuple[bytes, str]:
    b = "XyZ"
    body = (
        (
            f'--{b}\r\nContent-Disposition: form-data; name="tel"\r\n\r\n{PHONE}\r\n'
            f'--{b}\r\nContent-Disposition: form-data; name="f"; filename="a.bin"\r\n'
            f"Content-Type: {file_ctype}\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{b}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={b}"


def test_multipart_text_parts_masked_binary_parts_left_alone():
    binary = b"\x00\x01" + PHONE.encode() + b"\xff"
    body, ctype = multipart("application/octet-stream", binary)
    out = mask_body(body, ctype, find_phone)
    assert f"\r\n\r\n{MASKED}\r\n".encode() in out
    assert binary in out  # the caller's re-scan refuses to send it


def test_multipart_text_file_masked():
    body, ctype = multipart("text/csv", f"name,tel\nzhang,{PHONE}\n".encode())
    out = mask_body(body, ctype, find_phone)
    assert PHONE.encode() not in out and out.endswith(b"--XyZ--\r\n")


@pytest.mark.parametrize("ctype", ["application/octet-stream", "", "application/zip"])
def test_unknown_or_binary_body_refused(ctype):
    with pytest.raises(CannotMask, match="cannot be rewritten"):
        mask_body(PHONE.encode(), ctype, find_phone)


def test_text_in_the_wrong_charset_refused():
    with pytest.raises(CannotMask, match="not text"):
        mask_body(b"\xff\xfe" + PHONE.encode(), "text/plain; charset=utf-8", find_phone)
