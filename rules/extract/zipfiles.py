"""Reading zip archives safely: entry count before parsing, names, comments, bounded reads."""

from __future__ import annotations

import io
import lzma
import zipfile
import zlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from rules.findings import ENCRYPTED_ARCHIVE, UNINSPECTABLE, Part, Problem

from .charset import decode_name
from .limits import Budget, BudgetExhausted, ExtractionError, Sink, size_text
from .names import names_part

if TYPE_CHECKING:
    from .item import Item
    from .walk import Walk

CHUNK = 256 * 1024
_UTF8_NAME_FLAG = 0x800
_ENCRYPTED_FLAG = 0x1
_AES_METHOD = 99
_EOCD = b"PK\x05\x06"
_CENTRAL_ENTRY = b"PK\x01\x02"
_READ_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    OSError,
    NotImplementedError,
    ValueError,
)


def declared_entries(data: bytes) -> int:
    """Entries the end-of-central-directory record announces (a Zip64 count is bounded
    by counting central-directory headers); 0 if there is no such record."""
    pos = data.rfind(_EOCD, max(0, len(data) - 22 - 65535))
    if pos < 0 or pos + 22 > len(data):
        return 0
    total = int.from_bytes(data[pos + 10 : pos + 12], "little")
    return data.count(_CENTRAL_ENTRY) if total == 0xFFFF else total


class SizedZipFile(zipfile.ZipFile):
    """A ZipFile that knows the size of the archive, the most any member's data can take."""

    archive_size: int


def open_zip(data: bytes, budget: Budget) -> SizedZipFile:
    """Open after checking the entry count: zipfile builds every entry in memory up front."""
    entries = declared_entries(data)
    budget.expect_files(entries)
    try:
        zf = SizedZipFile(io.BytesIO(data))
        zf.archive_size = len(data)
        return zf
    except (zipfile.BadZipFile, NotImplementedError, OSError, ValueError, EOFError) as exc:
        raise ExtractionError(f"corrupt zip archive ({type(exc).__name__})") from None


def member_name(info: zipfile.ZipInfo) -> str:
    """Without the UTF-8 flag, names are in the writer's local charset: Chinese
    Windows writes GBK, which zipfile has misread as CP437."""
    if info.flag_bits & _UTF8_NAME_FLAG:
        return info.filename
    try:
        raw = info.orig_filename.encode("cp437")
    except UnicodeEncodeError:  # decoded from a Unicode-path extra field already
        return info.filename
    return decode_name(raw).replace("\\", "/")


def comments_part(zf: zipfile.ZipFile, item: Item) -> Part | None:
    """The archive's comment and its members' comments, one Part with a Segment each.

    File managers hide comments, so they are a way to carry data out unseen. Like
    names, they have no declared charset: Chinese Windows tools write GBK.
    """
    named = [(_comment_text(zf.comment), item.at("archive comment"))]
    named += [
        (_comment_text(info.comment), item.at(f"{member_name(info)} (comment)"))
        for info in zf.infolist()
    ]
    return names_part(item.at("comments"), named)


def _comment_text(raw: bytes) -> str:
    return decode_name(raw) if raw.strip(b"\x00 \t\r\n") else ""


def is_encrypted(info: zipfile.ZipInfo) -> bool:
    return bool(info.flag_bits & _ENCRYPTED_FLAG) or info.compress_type == _AES_METHOD


def read_member(zf: SizedZipFile, info: zipfile.ZipInfo, what: str, budget: Budget) -> bytes:
    """The member's bytes, in chunks, stopping at the limits whatever the header says.

    zipfile stops at the declared size and then checks the CRC, so a header that
    lies low ends in an error; a compressed size that lies high is capped at
    the archive's size, so the ratio still bites.
    """
    limits = budget.limits
    compressed = min(info.compress_size, zf.archive_size)
    # The header may lie low, never usefully high: refuse what it declares too big.
    if info.file_size > limits.max_member_bytes:
        raise ExtractionError(
            f"{what} declares {size_text(info.file_size)}, "
            f"over the {size_text(limits.max_member_bytes)} limit"
        )
    ratio = info.file_size / max(compressed, 1)
    if info.file_size > limits.ratio_floor_bytes and ratio > limits.max_ratio:
        raise ExtractionError(
            f"{what} expands beyond {limits.max_ratio}:1 "
            f"({size_text(info.file_size)} from {size_text(compressed)})"
        )
    budget.check()
    sink = Sink(what, compressed, budget)
    try:
        with zf.open(info) as stream:
            while chunk := stream.read(CHUNK):
                sink.write(chunk)
    except _READ_ERRORS as exc:
        raise ExtractionError(f"{what} is corrupt or unsupported ({type(exc).__name__})") from None
    return sink.value()


def walk_member(
    zf: SizedZipFile,
    info: zipfile.ZipInfo,
    name: str,
    item: Item,
    walk: Walk,
    *,
    what: str,
    short: str = "",
) -> Iterator[Part | Problem]:
    """One member's content, extracted in turn; encrypted or unreadable → a Problem.

    `what` names the member in the encryption message ("zip member"), `short`
    (default: the same) in limit and corruption messages ("member").
    """
    if is_encrypted(info):
        yield Problem(ENCRYPTED_ARCHIVE, item.location, f"encrypted {what} {name}")
        return
    try:
        content = read_member(zf, info, f"{short or what} {name}", walk.budget)
    except BudgetExhausted:
        raise
    except ExtractionError as exc:
        yield Problem(UNINSPECTABLE, item.at(name), exc.reason)
        return
    yield from walk.nested(item, content, name)
