"""Legacy Office files (.doc, .xls, .ppt and other OLE containers), best effort.

No parsing of the binary formats: the text streams are scanned for runs of
UTF-16LE text (how Word 97+ and Excel store most strings) and of 8-bit
ASCII/GBK text (older Chinese files). Good enough to find numbers and names.
The property set streams (title, author, comments, custom properties) are
parsed ([MS-OLEPS]): Word does not show them in the document.
"""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import olefile

from rules.findings import ENCRYPTED_ARCHIVE, Part, Problem

from .charset import codec_for, decode_text
from .item import join_location
from .limits import ExtractionError, size_text
from .names import names_part

if TYPE_CHECKING:
    from .item import Item
    from .walk import Walk

# Office 2007+ files saved with a password are OLE containers holding these.
_ENCRYPTED_PACKAGE = ("EncryptionInfo", "EncryptedPackage")
_TEXT_STREAMS = ("WordDocument", "Workbook", "Book", "PowerPoint Document")
_PROPERTY_STREAMS = ("\x05SummaryInformation", "\x05DocumentSummaryInformation")
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


def _read(ole: olefile.OleFileIO, name: str, walk: Walk) -> bytes:
    walk.budget.check()
    if ole.get_size(name) > walk.limits.max_member_bytes:
        raise ExtractionError(
            f"stream {name} is over the {size_text(walk.limits.max_member_bytes)} limit"
        )
    return ole.openstream(name).read()


def _streams(data: bytes, walk: Walk) -> tuple[bool, list[tuple[str, bytes]], list[bytes]]:
    """(encrypted?, [(stream name, bytes)] of the streams that hold the text,
    [bytes] of the property set streams)."""
    with olefile.OleFileIO(io.BytesIO(data)) as ole:
        if all(ole.exists(name) for name in _ENCRYPTED_PACKAGE):
            return True, [], []
        names = [n for n in _TEXT_STREAMS if ole.exists(n)] or [
            name
            for path in ole.listdir(streams=True, storages=False)
            if (name := "/".join(path)) not in _PROPERTY_STREAMS
        ]
        streams = [(name, _read(ole, name, walk)) for name in names]
        properties = [_read(ole, name, walk) for name in _PROPERTY_STREAMS if ole.exists(name)]
    return False, streams, properties


def _encrypted_stream(name: str, stream: bytes) -> bool:
    if name == "WordDocument":
        return _word_encrypted(stream)
    return name in ("Workbook", "Book") and _excel_encrypted(stream)


def extract_ole(data: bytes, item: Item, walk: Walk) -> Iterator[Part | Problem]:
    try:
        encrypted, streams, properties = _streams(data, walk)
    except _OLE_ERRORS as exc:
        raise ExtractionError(f"corrupt OLE file ({type(exc).__name__})") from None
    if encrypted or any(_encrypted_stream(name, stream) for name, stream in streams):
        yield Problem(ENCRYPTED_ARCHIVE, item.location, "password-protected Office document")
        return
    runs = [run for _, stream in streams for run in text_runs(stream)]
    if runs:
        yield Part(item.at("legacy doc text"), "\n".join(runs))
    location = item.at("document properties")
    lines = [
        (f"{name}: {text}", join_location(location, name))
        for stream in properties
        for name, text in property_strings(stream)
    ]
    if part := names_part(location, lines):
        yield part


# --- property set streams ([MS-OLEPS]) ----------------------------------------------

_VT_BSTR, _VT_VARIANT, _VT_LPSTR, _VT_LPWSTR, _VT_VECTOR = 8, 12, 30, 31, 0x1000
_CP_UNICODE = 1200
# Sizes of the fixed-size types met in variant vectors (heading pairs: string, count).
_FIXED = {2: 4, 3: 4, 4: 4, 5: 8, 6: 8, 7: 8, 10: 4, 11: 4, 18: 4, 19: 4, 20: 8, 21: 8, 64: 8}
# Names of the standard properties, by format id of the section; index = property id - 1.
_STANDARD = {
    uuid.UUID("f29f85e0-4ff9-1068-ab91-08002b27b3d9"): olefile.OleMetadata.SUMMARY_ATTRIBS,
    uuid.UUID("d5cdd502-2e9c-101b-9397-08002b2cf9ae"): olefile.OleMetadata.DOCSUM_ATTRIBS,
}


def _u32(data: bytes, at: int) -> int:
    """Little-endian; a read past the end (a lying offset) gives 0, never an error."""
    return int.from_bytes(data[at : at + 4], "little")


def property_strings(stream: bytes) -> list[tuple[str, str]]:
    """(name, text) of the string properties of every section of a property set
    stream: the standard ones and the user-defined (custom) ones with their names."""
    out = []
    for n in range(min(_u32(stream, 24), 2)):  # one section, or two (then custom)
        fmtid = uuid.UUID(bytes_le=stream[28 + 20 * n : 44 + 20 * n].ljust(16, b"\0"))
        start = _u32(stream, 44 + 20 * n)
        section = _Section(stream[start : start + _u32(stream, start)])
        out += section.strings(_STANDARD.get(fmtid, []))
    return out


class _Section:
    """One section: (id, offset) pairs, then the values they point at."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        # Every value takes 4 bytes or more: more reads than that means offsets that
        # overlap on purpose, which would cost quadratic time.
        self.steps = len(data) // 4
        count = min(_u32(data, 4), len(data) // 8)
        self.offsets = {_u32(data, 8 + 8 * i): _u32(data, 12 + 8 * i) for i in range(count)}
        at = self.offsets.get(1)  # the codepage, a VT_I2
        self.codepage = int.from_bytes(data[at + 4 : at + 6], "little") if at else 0

    def strings(self, standard: list[str]) -> list[tuple[str, str]]:
        names = self._dictionary(self.offsets[0]) if 0 in self.offsets else {}
        out = []
        for pid, at in self.offsets.items():
            if pid < 2:  # the dictionary and the codepage
                continue
            texts = self._value(at)
            name = names.get(pid) or (
                standard[pid - 1] if pid <= len(standard) else f"property {pid}"
            )
            if texts or pid in names:  # a custom property's name is data too
                out.append((name, "\n".join(texts)))
        return out

    def _dictionary(self, at: int) -> dict[int, str]:
        """Custom property id -> its name."""
        data, unicode, names, pos = self.data, self.codepage == _CP_UNICODE, {}, at + 4
        for _ in range(min(_u32(data, at), self.steps)):
            self.steps -= 1
            pid, size = _u32(data, pos), _u32(data, pos + 4) * (2 if unicode else 1)
            names[pid] = self._decode(data[pos + 8 : pos + 8 + size], self.codepage)
            pos += 8 + (-(-size // 4) * 4 if unicode else size)  # only Unicode names are padded
        return names

    def _value(self, at: int) -> list[str]:
        kind = int.from_bytes(self.data[at : at + 2], "little")
        if not kind & _VT_VECTOR:
            return self._scalar(at + 4, kind)[0]
        texts, pos = [], at + 8
        for _ in range(min(_u32(self.data, at + 4), self.steps)):
            if kind == _VT_VECTOR | _VT_VARIANT:  # each element typed, never a vector itself
                element = int.from_bytes(self.data[pos : pos + 2], "little")
                if element & _VT_VECTOR:
                    break
                found, pos = self._scalar(pos + 4, element)
            else:
                found, pos = self._scalar(pos, kind & ~_VT_VECTOR)
            if not pos:
                break
            texts += found
        return texts

    def _scalar(self, at: int, kind: int) -> tuple[list[str], int]:
        """(texts, end offset) of a value of type `kind` at `at`; end 0 if not understood."""
        if self.steps <= 0:
            return [], 0
        self.steps -= 1
        size = _u32(self.data, at)
        if kind in (_VT_LPSTR, _VT_BSTR):  # bytes in the section's codepage, null included
            text = self._decode(self.data[at + 4 : at + 4 + size], self.codepage)
        elif kind == _VT_LPWSTR:  # size in UTF-16 code units
            size *= 2
            text = self._decode(self.data[at + 4 : at + 4 + size], _CP_UNICODE)
        else:
            return [], (at + _FIXED[kind] if kind in _FIXED else 0)
        end = at + 4 + size
        # Strings are padded to 4 bytes, except 8-bit ones in vectors as Office writes
        # them ([MS-OSHARED] UnalignedLpstr): skip zeros only, as Apache POI does.
        while end % 4 and self.data[end : end + 1] == b"\0":
            end += 1
        return ([text] if text.strip() else []), end

    @staticmethod
    def _decode(raw: bytes, codepage: int) -> str:
        codec = "utf-16-le" if codepage == _CP_UNICODE else codec_for(f"cp{codepage}")
        text = raw.decode(codec, errors="replace") if codec else decode_text(raw)
        return "\n".join(part for part in text.split("\x00") if part.strip())
