"""7z archives via py7zr, decompressed into bounded in-memory writers.

A solid 7z is one compressed stream for all members, so the whole archive is
held to the single-stream limits: at most max_member_bytes unpacked and the
ratio against the archive's size.
"""

from __future__ import annotations

import io
import lzma
import zlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import py7zr
import py7zr.exceptions
from py7zr.io import Py7zIO, WriterFactory

from rules.findings import ENCRYPTED_ARCHIVE, Part, Problem

from .limits import ExtractionError, Sink
from .names import names_part

if TYPE_CHECKING:
    from .item import Item
    from .walk import Walk


class _Member(Py7zIO):
    """One member's bytes; every write is metered against the archive's Sink first."""

    def __init__(self, meter: Sink) -> None:
        self._meter = meter
        self._buffer = io.BytesIO()

    def write(self, s: bytes | bytearray) -> int:
        self._meter.write(s)
        return self._buffer.write(s)

    def read(self, size: int | None = None) -> bytes:
        return self._buffer.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._buffer.seek(offset, whence)

    def flush(self) -> None:
        pass

    def size(self) -> int:
        return self._buffer.getbuffer().nbytes

    def value(self) -> bytes:
        return self._buffer.getvalue()


class _Collector(WriterFactory):
    def __init__(self, meter: Sink) -> None:
        self._meter = meter
        self.members: dict[str, _Member] = {}

    def create(self, filename: str) -> Py7zIO:
        self.members[filename] = member = _Member(self._meter)
        return member


_ERRORS = (
    py7zr.exceptions.ArchiveError,
    lzma.LZMAError,
    zlib.error,
    EOFError,
    OSError,
    ValueError,
    KeyError,
    IndexError,
)


def extract_7z(data: bytes, item: Item, walk: Walk) -> Iterator[Part | Problem]:
    meter = Sink("7z archive", len(data), walk.budget, keep=False)
    collector = _Collector(meter)
    try:
        with py7zr.SevenZipFile(io.BytesIO(data)) as archive:
            if archive.needs_password():
                yield Problem(ENCRYPTED_ARCHIVE, item.location, "encrypted 7z archive")
                return
            entries = archive.list()
            walk.budget.expect_files(len(entries))
            archive.extract(factory=collector)
    except py7zr.exceptions.PasswordRequired:  # headers encrypted too
        yield Problem(ENCRYPTED_ARCHIVE, item.location, "encrypted 7z archive")
        return
    except _ERRORS as exc:
        raise ExtractionError(f"corrupt 7z archive ({type(exc).__name__})") from None
    named = [(e.filename, item.at(e.filename)) for e in entries]
    if names := names_part(item.at("member names"), named):
        yield names
    for name, member in collector.members.items():
        walk.budget.count_file()
        yield from walk.nested(item, member.value(), name)
