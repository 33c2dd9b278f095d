"""Rewriting a request body with some values masked, for the formats where that is safe.

    mask_body(body, content_type, find)  -> bytes      (raises CannotMask)
    mask_query(query, find)              -> str
    replace_spans(text, findings)        -> str

`find(text)` returns the findings to mask in one piece of text (the caller
scans with the engine and keeps the values the Verdict names). Each format is
split into pieces of text whose re-encoding is known — a form value, a JSON
document, a text file — and only the pieces that change are re-encoded, so
the rest of the body goes out byte for byte. Anything else (binary files,
base64, unknown types) raises CannotMask with a reason in words: the caller
blocks instead of sending a value it was asked to mask.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from urllib.parse import quote_plus, unquote_plus

from rules.extract.text import charset_param
from rules.findings import Finding
from rules.masking import CannotMask, replace_spans

Find = Callable[[str], Sequence[Finding]]

_BOUNDARY = re.compile(r"""boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))""", re.IGNORECASE)
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/csv")


def mask_text(text: str, find: Find) -> str:
    return replace_spans(text, find(text))


def mask_body(body: bytes, content_type: str, find: Find) -> bytes:
    """The body with the values `find` names masked; CannotMask if the format forbids it."""
    media = content_type.split(";", 1)[0].strip().lower()
    charset = charset_param(content_type) or "utf-8"
    if media == "application/x-www-form-urlencoded":
        try:
            query = body.decode(charset)
        except (UnicodeDecodeError, LookupError) as err:
            raise CannotMask(f"the form body is not text in {charset}") from err
        return mask_query(query, find, charset).encode(charset)
    if media == "multipart/form-data":
        return _mask_multipart(body, content_type, find)
    if media.endswith("json") or media.endswith("+json"):
        return _mask_json(body, charset, find)
    if media.startswith(_TEXT_TYPES) or media.endswith("+xml"):
        return _mask_plain(body, charset, find, "body")
    raise CannotMask(f"a {media or 'untyped'} body cannot be rewritten safely")


def mask_query(query: str, find: Find, charset: str = "utf-8") -> str:
    """name=value&…: values (and names) that change are re-encoded, the rest kept as sent."""
    fields = re.split(r"([&;])", query)
    for i in range(0, len(fields), 2):  # odd indexes are the separators
        name, eq, value = fields[i].partition("=")
        new_name, new_value = (_mask_quoted(x, find, charset) for x in (name, value))
        fields[i] = f"{new_name}{eq}{new_value}"
    return "".join(fields)


def _mask_quoted(raw: str, find: Find, charset: str) -> str:
    try:
        text = unquote_plus(raw, encoding=charset, errors="strict")
    except (UnicodeDecodeError, LookupError) as err:
        raise CannotMask(f"a form field is not text in {charset}") from err
    masked = mask_text(text, find)
    return raw if masked == text else quote_plus(masked, safe="*", encoding=charset)


def _mask_plain(body: bytes, charset: str, find: Find, where: str) -> bytes:
    try:
        text = body.decode(charset)
    except (UnicodeDecodeError, LookupError) as err:
        raise CannotMask(f"the {where} is not text in {charset}") from err
    masked = mask_text(text, find)
    return body if masked == text else masked.encode(charset)


def _mask_json(body: bytes, charset: str, find: Find) -> bytes:
    """Masks in the JSON text itself; the result must still parse (a number cannot be masked)."""
    out = _mask_plain(body, charset, find, "JSON body")
    if out is not body:
        try:
            json.loads(out.decode(charset))
        except ValueError as err:
            raise CannotMask("masking would break the JSON body (a number, not a string)") from err
    return out


def _mask_multipart(body: bytes, content_type: str, find: Find) -> bytes:
    m = _BOUNDARY.search(content_type)
    if not m:
        raise CannotMask("a multipart body without a boundary cannot be rewritten")
    delimiter = b"--" + (m.group(1) or m.group(2)).encode("latin-1")
    pieces = body.split(delimiter)
    for i in range(1, len(pieces)):
        piece = pieces[i]
        if piece.startswith(b"--"):
            break  # the closing delimiter
        head_end = _HEAD_END.search(piece)
        if head_end is None:
            continue
        head, content = piece[: head_end.end()], piece[head_end.end() :]
        tail = b"\r\n" if content.endswith(b"\r\n") else b"\n" if content.endswith(b"\n") else b""
        content = content[: len(content) - len(tail)]
        headers = head.decode("utf-8", "replace").lower()
        ctype = _header(headers, "content-type")
        is_file = "filename" in _header(headers, "content-disposition")
        if is_file and not ctype.startswith(_TEXT_TYPES):
            continue  # binary files are left alone; the caller's re-check refuses if needed
        if "content-transfer-encoding" in headers:
            raise CannotMask("an encoded multipart part cannot be rewritten safely")
        charset = charset_param(ctype) or charset_param(content_type) or "utf-8"
        if ctype.endswith("json"):
            new = _mask_json(content, charset, find)
        else:
            new = _mask_plain(content, charset, find, "form part")
        if delimiter in new:
            raise CannotMask("masked text would contain the multipart boundary")
        pieces[i] = head + new + tail
    return delimiter.join(pieces)


def _header(headers: str, name: str) -> str:
    m = re.search(rf"^{name}:(.*)$", headers, re.MULTILINE)
    return m.group(1).strip() if m else ""
