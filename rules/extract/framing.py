"""Bytes a decompressor skips: gzip header fields and zstd skippable frames.

zlib reads past a gzip member's file name, comment and extra field, and
zstandard past skippable frames, without a word. They travel with the data
all the same (a receiving script reads them as easily as the content), so
they are handed to the scan beside the decompressed content. `ZstdFrames` walks
zstd's framing for both the buffered and the streamed decoder.

Brotli metadata blocks are skipped too; finding them needs a brotli
bitstream parser, which no maintained Python package offers.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

import zstandard

MAX_GZIP_HEADER = 64 * 1024  # a real header holds a file name; more is refused, not guessed at
MAX_STREAMED_SKIPPABLE = 64 * 1024  # a skippable frame judged in a streamed body

_FHCRC, _FEXTRA, _FNAME, _FCOMMENT = 2, 4, 8, 16  # FTEXT (1) says nothing we use
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


class ZstdFrames:
    """Where zstd frames and blocks end, as bytes arrive (headers only, no decoding);
    a skippable frame's content, which the decoder skips, is collected and put `aside`.

    Raises zstandard.ZstdError where no frame starts, FramingError for a skippable
    frame over `max_skippable` (a streamed body holds it whole until judged).
    """

    def __init__(self, aside: Callable[[Hidden], None], max_skippable: int | None) -> None:
        self._aside = aside
        self._max_skippable = max_skippable
        self._skippable: bytearray | None = None  # the content of the skippable frame we are in
        self._buf = b""
        self._skip = 0
        self._in_frame = False  # inside a frame: blocks follow
        self._checksum = 0
        self.frames = 0

    @property
    def complete(self) -> bool:
        return not (self._buf or self._skip or self._in_frame)

    def feed(self, data: bytes) -> None:
        if self._skip:
            n = min(self._skip, len(data))
            self._skipped(data, 0, n)
            data = data[n:]
        buf = self._buf + data
        pos = 0
        while pos < len(buf):
            if self._skip:
                n = min(self._skip, len(buf) - pos)
                self._skipped(buf, pos, n)
                pos += n
                continue
            if not self._in_frame:
                if len(buf) - pos < 8:
                    break
                magic = int.from_bytes(buf[pos : pos + 4], "little")
                if magic in ZSTD_SKIPPABLE:
                    self._skip = int.from_bytes(buf[pos + 4 : pos + 8], "little")
                    if self._max_skippable is not None and self._skip > self._max_skippable:
                        raise FramingError(
                            f"zstd skippable frame over {self._max_skippable // 1024} KiB"
                        )
                    self._skippable = bytearray()
                    pos += 8
                    self.frames += 1
                    self._skipped(buf, pos, 0)
                    continue
                if magic != 0xFD2FB528:
                    raise zstandard.ZstdError("not a zstd frame")
                descriptor = buf[pos + 4]
                single = descriptor >> 5 & 1
                size_bytes = (0, 2, 4, 8)[descriptor >> 6] or single
                header = 5 + (not single) + (0, 1, 2, 4)[descriptor & 3] + size_bytes
                if len(buf) - pos < header:
                    break
                pos += header
                self._in_frame = True
                self._checksum = 4 * (descriptor >> 2 & 1)
                continue
            if len(buf) - pos < 3:
                break
            block = int.from_bytes(buf[pos : pos + 3], "little")
            last, kind, size = block & 1, block >> 1 & 3, block >> 3
            pos += 3
            self._skip = 1 if kind == 1 else size  # an RLE block stores one byte
            if last:
                self._skip += self._checksum
                self._in_frame = False
                self.frames += 1
        self._buf = buf[pos:]

    def _skipped(self, data: bytes, start: int, n: int) -> None:
        """`n` bytes from `start` the framing skips: kept while in a skippable frame (only
        then copied), put aside at its end."""
        self._skip -= n
        if self._skippable is None:
            return
        self._skippable += data[start : start + n]
        if not self._skip:
            if self._skippable:
                self._aside(Hidden("zstd skippable frame", bytes(self._skippable)))
            self._skippable = None
