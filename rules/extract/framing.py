"""Bytes a decompressor skips: gzip header fields and zstd skippable frames.

zlib reads past a gzip member's file name, comment and extra field, and
zstandard past skippable frames, without a word. They travel with the data
all the same (a receiving script reads them as easily as the content), so
they are handed to the scan beside the decompressed content.

Brotli metadata blocks are skipped too; finding them needs a brotli
bitstream parser, which no maintained Python package offers.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

MAX_GZIP_HEADER = 64 * 1024  # a real header holds a file name; more is refused, not guessed at
MAX_STREAMED_SKIPPABLE = 64 * 1024  # a skippable frame judged in a streamed body

_FTEXT, _FHCRC, _FEXTRA, _FNAME, _FCOMMENT = 1, 2, 4, 8, 16
_FIXED = 10  # magic, method, flags, mtime, extra flags, OS
ZSTD_SKIPPABLE = range(0x184D2A50, 0x184D2A60)


class FramingError(ValueError):
    """The framing is not what the format allows (a decoder's error, to the caller)."""


@dataclass(frozen=True, slots=True)
class Hidden:
    """Bytes carried beside the content: where they sit, and the bytes."""

    place: str  # "gzip file name", "zstd skippable frame", …
    data: bytes


def gzip_header(data: bytes | bytearray) -> tuple[int, list[Hidden]] | None:
    """(header length, its non-empty name/comment/extra fields) of the gzip member
    `data` starts with; None while the header is not all there.

    Raises FramingError if `data` is not a gzip member or its header is over
    MAX_GZIP_HEADER.
    """
    if len(data) >= 2 and data[:2] != b"\x1f\x8b":
        raise FramingError("not a gzip member")
    if len(data) < _FIXED:
        return None
    flags, pos, hidden = data[3], _FIXED, []
    if flags & _FEXTRA:
        if len(data) < pos + 2:
            return _incomplete(data)
        (size,) = struct.unpack_from("<H", data, pos)
        pos += 2
        if len(data) < pos + size:
            return _incomplete(data)
        hidden.append(Hidden("gzip extra field", bytes(data[pos : pos + size])))
        pos += size
    for flag, place in ((_FNAME, "gzip file name"), (_FCOMMENT, "gzip comment")):
        if flags & flag:
            end = data.find(b"\x00", pos)
            if end < 0:
                return _incomplete(data)
            hidden.append(Hidden(place, bytes(data[pos:end])))
            pos = end + 1
    if flags & _FHCRC:
        pos += 2
        if len(data) < pos:
            return _incomplete(data)
    if pos > MAX_GZIP_HEADER:
        raise _too_long()
    return pos, [h for h in hidden if h.data]


def _incomplete(data: bytes | bytearray) -> None:
    if len(data) > MAX_GZIP_HEADER:
        raise _too_long()
    return None


def _too_long() -> FramingError:
    return FramingError(f"gzip header over {MAX_GZIP_HEADER // 1024} KiB")
