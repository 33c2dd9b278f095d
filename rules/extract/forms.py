"""HTML form submissions: application/x-www-form-urlencoded and multipart/form-data.

Each field is a Part "form field NAME"; each uploaded file is extracted in
turn under "form field NAME › file FILENAME".
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Iterator
from email.parser import HeaderParser
from typing import TYPE_CHECKING
from urllib.parse import unquote_to_bytes

from rules.findings import Part, Problem

from .charset import choose_codec, decode_text
from .limits import ExtractionError
from .names import names_part
from .text import charset_param

if TYPE_CHECKING:
    from .item import Item
    from .walk import Walk

_BOUNDARY_PARAM = re.compile(r"""boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))""", re.IGNORECASE)
_FIRST_DELIMITER = re.compile(rb"--([^\r\n]{1,200})\r?\n")
_HEAD_END = re.compile(rb"\r?\n\r?\n")


def _field_location(item: Item, name: str) -> str:
    return item.at(f"form field {name}")


def extract_urlencoded(data: bytes, item: Item, walk: Walk) -> Iterator[Part | Problem]:
    """name=value&…, '+' meaning space; one charset for the whole body, as browsers send it."""
    pairs: list[tuple[bytes, bytes]] = []
    for field in re.split(rb"[&;]", data):
        if not field:
            continue
        name, _, value = field.partition(b"=")
        pairs.append(
            (
                unquote_to_bytes(name.replace(b"+", b" ")),
                unquote_to_bytes(value.replace(b"+", b" ")),
            )
        )
    declared = charset_param(item.content_type)
    codec, _ = choose_codec(b"\n".join(b for pair in pairs for b in pair), declared)
    for raw_name, raw_value in pairs:
        walk.budget.count_file()
        value = raw_value.decode(codec, errors="replace")
        if value:
            yield Part(_field_location(item, raw_name.decode(codec, errors="replace")), value)


def _boundary(data: bytes, content_type: str) -> bytes:
    m = _BOUNDARY_PARAM.search(content_type)
    if m:
        return (m.group(1) or m.group(2)).encode("latin-1", errors="replace")
    first = _FIRST_DELIMITER.match(data.lstrip(b"\r\n"))
    if first:
        return first.group(1).rstrip()
    raise ExtractionError("multipart body without a boundary")


def _split_parts(data: bytes, boundary: bytes) -> list[bytes]:
    """The bodies between delimiter lines; the closing delimiter may be missing."""
    delimiter = b"--" + boundary
    start = 0 if data.startswith(delimiter) else data.find(b"\n" + delimiter)
    if start < 0:
        raise ExtractionError("multipart body without its boundary")
    chunks = re.split(rb"\r?\n" + re.escape(delimiter), b"\n" + data[start:].lstrip(b"\r\n"))
    parts = []
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):  # the closing delimiter
            break
        line_end = chunk.find(b"\n")
        parts.append(chunk[line_end + 1 :] if line_end >= 0 else b"")
    return parts


def extract_multipart(data: bytes, item: Item, walk: Walk) -> Iterator[Part | Problem]:
    form_charset = charset_param(item.content_type)
    named: list[tuple[str, str]] = []
    for part in _split_parts(data, _boundary(data, item.content_type)):
        walk.budget.count_file()
        m = _HEAD_END.search(part)
        head, body = (part[: m.start()], part[m.end() :]) if m else (part, b"")
        headers = HeaderParser().parsestr(decode_text(head, declared="utf-8"))
        raw_name = headers.get_param("name", "", header="content-disposition")
        name = email.utils.collapse_rfc2231_value(raw_name) if raw_name else ""
        filename = headers.get_filename()
        ctype = headers.get("Content-Type", "")
        if filename is None:
            text = decode_text(body, declared=charset_param(ctype) or form_charset)
            if text:
                yield Part(_field_location(item, name), text)
        elif filename or body:
            location = item.at(f"form field {name} › file {filename}")
            named.append((filename, location))
            yield from walk.nested(item, body, filename, ctype, location)
    if names := names_part(item.at("file names"), named):
        yield names
