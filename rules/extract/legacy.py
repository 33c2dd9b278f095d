"""Legacy Office files (.doc, .xls, .ppt and other OLE containers), best effort.

No parsing of the binary formats: the text streams are scanned for runs of
UTF-16LE text (how Word 97+ and Excel store most strings) and of 8-bit
ASCII/GBK text (older Chinese files). Good enough to find numbers and names.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

import olefile

from rules.findings import ENCRYPTED_ARCHIVE, Part, Problem

from .limits import ExtractionError, size_text

if TYPE_CHECKING:
    from .item import Item
    from .walk import Walk

# Office 2007+ files saved with a password are OLE containers holding these.
_ENCRYPTED_PACKAGE = ("EncryptionInfo", "EncryptedPackage")
_TEXT_STREAMS = ("WordDocument", "Workbook", "Book", "PowerPoint Document")
_WORD_ENCRYPTED = 0x0100  # FIB flag fEncrypted (offset 0x0A of WordDocument)
_XLS_FILEPASS, _XLS_BOUNDSHEET, _XLS_EOF = 0x002F, 0x0085, 0x000A
# Printable ASCII and Latin-1, punctuation, CJK punctuation and ideographs, full-width forms.
_UTF16_RUN = re.compile(
    r"[\t\n\r\x20-\x7e\u00a0-\u00ff\u2010-\u2027\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]{4,}"
)
_BYTE_RUN = re.compile(rb"(?:[\t\n\r\x20-\x7e]|[\x81-\xfe][\x40-\x7e\x80-\xfe]){6,}")


def _word_encrypted(stream: bytes) -> bool:
    return len(stream) >= 12 and bool(int.from_bytes(stream[10:12], "little") & _WORD_ENCRYPTED)


def _excel_encrypted(stream: bytes) -> bool:
    """A FILEPASS record among the first records of the workbook globals."""
    pos = 0
    for _ in range(64):
        if pos + 4 > len(stream):
            return False
        kind = int.from_bytes(stream[pos : pos + 2], "little")
        size = int.from_bytes(stream[pos + 2 : pos + 4], "little")
        if kind == _XLS_FILEPASS:
            return True
        if kind in (_XLS_BOUNDSHEET, _XLS_EOF):
            return False
        pos += 4 + size
    return False


def text_runs(stream: bytes) -> list[str]:
    """Readable runs: UTF-16LE at both byte alignments, then 8-bit text outside those."""
    runs: list[str] = []
    for align in (0, 1):
        body = stream[align : len(stream) - (len(stream) - align) % 2]
        runs += _UTF16_RUN.findall(body.decode("utf-16-le", errors="replace"))
    runs += [m.decode("gb18030", errors="replace") for m in _BYTE_RUN.findall(stream)]
    return [run for run in runs if run.strip()]


_OLE_ERRORS = (OSError, ValueError, IndexError, KeyError, TypeError)


def _streams(data: bytes, walk: Walk) -> tuple[bool, list[tuple[str, bytes]]]:
    """(encrypted?, [(stream name, bytes)]) of the streams that hold the text."""
    limits = walk.limits
    with olefile.OleFileIO(io.BytesIO(data)) as ole:
        if all(ole.exists(name) for name in _ENCRYPTED_PACKAGE):
            return True, []
        names = [n for n in _TEXT_STREAMS if ole.exists(n)] or [
            "/".join(path) for path in ole.listdir(streams=True, storages=False)
        ]
        streams = []
        for name in names:
            walk.budget.check()
            if ole.get_size(name) > limits.max_member_bytes:
                raise ExtractionError(
                    f"stream {name} is over the {size_text(limits.max_member_bytes)} limit"
                )
            streams.append((name, ole.openstream(name).read()))
    return False, streams


def _encrypted_stream(name: str, stream: bytes) -> bool:
    if name == "WordDocument":
        return _word_encrypted(stream)
    return name in ("Workbook", "Book") and _excel_encrypted(stream)


def extract_ole(data: bytes, item: Item, walk: Walk) -> Iterator[Part | Problem]:
    try:
        encrypted, streams = _streams(data, walk)
    except _OLE_ERRORS as exc:
        raise ExtractionError(f"corrupt OLE file ({type(exc).__name__})") from None
    if encrypted or any(_encrypted_stream(name, stream) for name, stream in streams):
        yield Problem(ENCRYPTED_ARCHIVE, item.location, "password-protected Office document")
        return
    runs = [run for _, stream in streams for run in text_runs(stream)]
    if runs:
        yield Part(item.at("legacy doc text"), "\n".join(runs))
