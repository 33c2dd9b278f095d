"""Bounded decompression of single streams: gzip, zlib/deflate, brotli, zstd, bzip2, xz.

Output is produced in chunks into a `Sink`, which stops at the member size,
ratio and total limits, so a bomb costs at most one chunk beyond the limit.
What the decoders skip (gzip header fields, zstd skippable frames) comes back
beside the content, to be scanned too (`framing`); bytes after the end of a
stream that allows none are an error, not ignored.
"""

from __future__ import annotations

import bz2
import io
import lzma
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import brotli
import zstandard

from .framing import FramingError, Hidden, ZstdFrames, gzip_header
from .limits import Budget, ExtractionError, Limits, Sink

CHUNK = 256 * 1024
# Refuse streams whose decoder would need more memory than this (huge windows).
_ZSTD_MAX_WINDOW = 2**27
_XZ_MEMLIMIT = 2**28

# Codec names as in Content-Encoding, plus the file formats that are one stream.
GZIP, DEFLATE, BROTLI, ZSTD, BZIP2, XZ = "gzip", "deflate", "br", "zstd", "bzip2", "xz"
_ALIASES = {"x-gzip": GZIP, "gzip": GZIP, "deflate": DEFLATE, "br": BROTLI, "zstd": ZSTD}


@dataclass(frozen=True, slots=True)
class Decoded:
    content: bytes
    hidden: tuple[Hidden, ...] = ()  # bytes the decoder skipped, to be scanned as well


def _zlib(data: bytes, sink: Sink, hidden: list[Hidden], wbits: int) -> None:
    """zlib-family (gzip, zlib, raw deflate); gzip may hold several members."""
    gzip = wbits > 15
    rest = data
    while rest:
        if gzip:
            header = gzip_header(rest)
            if header is None:
                raise EOFError("truncated")
            hidden += header[1]
        d = zlib.decompressobj(wbits)
        pending = rest
        while pending:
            sink.write(d.decompress(pending, CHUNK))
            pending = d.unconsumed_tail
        while not d.eof:
            out = d.decompress(b"", CHUNK)
            if not out:
                break
            sink.write(out)
        if not d.eof:
            raise EOFError("truncated")
        rest = d.unused_data
        if not gzip and rest:  # the receiver may read on: as the streamed path, refused
            raise FramingError("data after the end of the deflate stream")
        # Only gzip allows concatenated members; trailing zero padding is common.
        if not rest.strip(b"\x00"):
            return


def _gzip(data: bytes, sink: Sink, hidden: list[Hidden]) -> None:
    _zlib(data, sink, hidden, 16 + zlib.MAX_WBITS)


def _deflate(data: bytes, sink: Sink, hidden: list[Hidden]) -> None:
    """HTTP 'deflate' should be zlib-wrapped, but many servers send raw deflate."""
    if len(data) >= 2 and (data[0] & 0x0F) == 8 and ((data[0] << 8) | data[1]) % 31 == 0:
        _zlib(data, sink, hidden, zlib.MAX_WBITS)
    else:
        _zlib(data, sink, hidden, -zlib.MAX_WBITS)


def _brotli(data: bytes, sink: Sink, hidden: list[Hidden]) -> None:
    d = brotli.Decompressor()
    for i in range(0, max(len(data), 1), CHUNK):
        sink.write(d.process(data[i : i + CHUNK], output_buffer_limit=CHUNK))
        while not d.can_accept_more_data():
            sink.write(d.process(b"", output_buffer_limit=CHUNK))
    if not d.is_finished():
        raise EOFError("truncated")


def _zstd_frames_end(data: bytes, hidden: list[Hidden]) -> bool:
    """Whether `data` is whole zstd frames: the stream reader bounds the output but
    returns quietly at a truncated frame, so the framing is walked here (and the
    skippable frames' content, which it skips, kept in `hidden`)."""
    frames = ZstdFrames(hidden.append, max_skippable=None)  # held whole already
    try:
        frames.feed(data)
    except zstandard.ZstdError:  # no frame where one should start
        return False
    return frames.complete


def _zstd(data: bytes, sink: Sink, hidden: list[Hidden]) -> None:
    if not _zstd_frames_end(data, hidden):
        raise EOFError("truncated zstd frame")
    dctx = zstandard.ZstdDecompressor(max_window_size=_ZSTD_MAX_WINDOW)
    with dctx.stream_reader(io.BytesIO(data), read_across_frames=True) as reader:
        while chunk := reader.read(CHUNK):
            sink.write(chunk)


def _stdlib(make: Callable[[], bz2.BZ2Decompressor | lzma.LZMADecompressor]):
    """bzip2 and xz, whose decompressors share one interface; streams may be concatenated."""

    def run(data: bytes, sink: Sink, hidden: list[Hidden]) -> None:
        rest = data
        while rest:
            d = make()
            sink.write(d.decompress(rest, CHUNK))
            while not d.eof and not d.needs_input:
                sink.write(d.decompress(b"", CHUNK))
            if not d.eof:
                raise EOFError("truncated")
            rest = d.unused_data
            if not rest.strip(b"\x00"):
                return

    return run


_DECODERS = {
    GZIP: _gzip,
    DEFLATE: _deflate,
    BROTLI: _brotli,
    ZSTD: _zstd,
    BZIP2: _stdlib(bz2.BZ2Decompressor),
    XZ: _stdlib(lambda: lzma.LZMADecompressor(memlimit=_XZ_MEMLIMIT)),
}
_ERRORS = (zlib.error, brotli.error, zstandard.ZstdError, OSError, EOFError, lzma.LZMAError)


def decompress(data: bytes, method: str, what: str, budget: Budget) -> Decoded:
    """Decompress one stream within the limits, or raise ExtractionError."""
    budget.check()
    sink = Sink(what, len(data), budget)
    hidden: list[Hidden] = []
    try:
        _DECODERS[method](data, sink, hidden)
    except EOFError:
        raise ExtractionError(f"{what} is truncated ({method})") from None
    except FramingError as exc:  # its message names the framing, never the content
        raise ExtractionError(f"{what} is corrupt ({method}: {exc})") from None
    except _ERRORS as exc:
        raise ExtractionError(f"{what} is corrupt ({method}: {type(exc).__name__})") from None
    return Decoded(sink.value(), tuple(hidden))


def decode_content_encoding(
    data: bytes,
    encoding: str,
    limits: Limits = Limits(),  # noqa: B008 - frozen
) -> Decoded:
    """Undo an HTTP Content-Encoding (gzip, x-gzip, deflate, br, zstd, identity, or a
    chain such as "gzip, br", applied in that order), bounded by `limits`: the body,
    and what every stage skipped.

    Raises ExtractionError when a stream is corrupt or over a limit.
    """
    budget = Budget(limits)
    codings = [c.strip().lower() for c in encoding.split(",") if c.strip()]
    hidden: list[Hidden] = []
    for coding in reversed(codings):  # the last coding listed was applied last
        if coding == "identity":
            continue
        method = _ALIASES.get(coding)
        if method is None:
            raise ExtractionError(f"unsupported content encoding {coding[:40]!r}")
        decoded = decompress(data, method, f"{coding} body", budget)
        data = decoded.content
        hidden += decoded.hidden
    return Decoded(data, tuple(hidden))
