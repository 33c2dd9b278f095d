"""Scanning content that arrives in chunks, with bounded memory.

    TextStream(engine)         feed(str) / close() -> findings; safe_offset
    BytesStream(engine, enc)   the same over bytes in a known charset
    ContentDecoder("gzip")     undo an HTTP Content-Encoding incrementally

The stream keeps a window of text after the point up to which it has reported.
Each step scans the buffer, reports the findings that start before a *cut*
chosen at a hard boundary (a character no token, escape or disguise can
span), and carries on from just before the cut with some left context. A value
across a chunk border is therefore seen whole and reported exactly once;
memory is the window plus one step, whatever the stream's length.

`safe_offset` is the stream offset before which every finding has been
reported: a value found later starts at or after it, so text before it may be
let go (forwarded) once the findings reported so far have been judged.

ContentDecoder undoes gzip, deflate, br and zstd (and chains such as
"gzip, br") as bytes arrive. Each call hands its output on in pieces of at
most CHUNK bytes, so a bomb costs at most one piece before the expansion ratio
limit (`Limits.max_ratio`, judged past `Limits.ratio_floor_bytes`) stops it.
The absolute limits on expanded size (`max_member_bytes`,
`max_expanded_bytes`) are not applied: they bound the memory of decoding a
whole body at once, and a stream's memory is bounded by its pieces instead.
`pending` is how many input bytes a decoder may have consumed without yet
producing their output (part of a Huffman code, one zstd block): a caller
that forwards input must hold back that much more than the output it has
judged.
"""

from __future__ import annotations

import codecs
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import brotli
import zstandard

from rules.engine import CONTEXT_BEFORE, Engine
from rules.extract.framing import (
    MAX_GZIP_HEADER,
    MAX_STREAMED_SKIPPABLE,
    FramingError,
    Hidden,
    ZstdFrames,
    gzip_header,
)
from rules.extract.limits import ExtractionError, Limits, size_text
from rules.findings import Finding
from rules.normalize import CHAR_TABLE, CN_DIGITS

STEP = 256 * 1024  # characters scanned per step beyond the window
WINDOW = 8 * 1024  # held back: longer than any disguised value plus its context
CHUNK = 256 * 1024  # most bytes a decoder hands on at once

# Characters that can be part of a value, an escape or a disguise: never cut after them.
_SOFT = (
    frozenset(
        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz \t\r\n-./·*+=%&#;\\@_"
    )
    | frozenset(CHAR_TABLE)
    | frozenset(CN_DIGITS)
)

Emit = Callable[[bytes], None]
Aside = Callable[[Hidden], None]


class TextStream:
    """Feed text chunks; get findings with offsets counted from the stream's start."""

    def __init__(
        self, engine: Engine, location: str = "", *, step: int = STEP, window: int = WINDOW
    ) -> None:
        self._engine = engine
        self._location = location
        self._step_size = step
        self._window = window
        self._buffer = ""
        self._pending: list[str] = []  # chunks not yet joined into the buffer
        self._pending_len = 0
        self._base = 0  # stream offset of self._buffer[0]
        self._safe = 0
        self.chars = 0

    @property
    def safe_offset(self) -> int:
        """Stream offset before which every finding has been reported (all of it once closed)."""
        return self._safe

    @property
    def buffered(self) -> int:
        """Characters held: the window, the left context and the step being gathered."""
        return len(self._buffer) + self._pending_len

    def feed(self, chunk: str) -> list[Finding]:
        self.chars += len(chunk)
        out: list[Finding] = []
        for i in range(0, len(chunk), self._step_size):
            piece = chunk[i : i + self._step_size]
            self._pending.append(piece)
            self._pending_len += len(piece)
            if len(self._buffer) + self._pending_len >= self._window + self._step_size:
                out.extend(self._step(final=False))
        return out

    def close(self) -> list[Finding]:
        return self._step(final=True)

    def _step(self, final: bool) -> list[Finding]:
        buf = self._buffer + "".join(self._pending)
        self._pending.clear()
        self._pending_len = 0
        cut = len(buf) if final else _hard_cut(buf, len(buf) - self._window, self._window // 2)
        found = []
        for f in self._engine.scan_text(buf, self._location):
            start = self._base + f.start
            if start < self._safe or f.start >= cut:
                continue  # reported by the previous step, or left for the next
            found.append(_shift(f, self._base))
        keep_from = max(0, cut - CONTEXT_BEFORE)  # left context for the next step's values
        self._safe = self._base + cut
        self._base += keep_from
        self._buffer = buf[keep_from:]
        return found


class BytesStream:
    """The same over bytes in a known charset (decoded incrementally, never failing)."""

    # Bytes of an unfinished character the decoder may hold: they become at most
    # this many characters, all at or after `chars`.
    PENDING_CHARS = 4

    def __init__(
        self, engine: Engine, location: str = "", encoding: str = "utf-8", **sizes: int
    ) -> None:
        self._decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        self._text = TextStream(engine, location, **sizes)

    @property
    def chars(self) -> int:
        """Characters decoded so far (bytes of an unfinished character not counted)."""
        return self._text.chars

    @property
    def safe_offset(self) -> int:
        return self._text.safe_offset

    @property
    def buffered(self) -> int:
        return self._text.buffered

    def feed(self, chunk: bytes) -> list[Finding]:
        return self._text.feed(self._decoder.decode(chunk))

    def close(self) -> list[Finding]:
        return self._text.feed(self._decoder.decode(b"", final=True)) + self._text.close()


def _hard_cut(buf: str, limit: int, search: int) -> int:
    """The last position <= limit just after a character no token spans."""
    lowest = max(0, limit - search)
    for pos in range(limit, lowest, -1):
        if buf[pos - 1] not in _SOFT:
            return pos
    return limit  # no hard boundary within reach (a digit table): cut anyway


def _shift(f: Finding, by: int) -> Finding:
    return Finding(
        f.detector, f.score, f.location, f.start + by, f.end + by, f.masked, f.value_hash, f.why
    )


# -- Content-Encoding, incrementally ---------------------------------------------------------


class _Zlib:
    """gzip (members, then only zero padding) or deflate (zlib-wrapped or raw, one stream).
    A gzip member's header is held until whole, so its fields go `aside` to be judged
    before any of it is released (hence the larger `pending`)."""

    def __init__(self, gzip: bool, aside: Aside) -> None:
        self.pending = 1024 + (MAX_GZIP_HEADER if gzip else 0)  # a Huffman code: generous
        self._gzip = gzip
        self._aside = aside
        self._d: zlib._Decompress | None = None  # type: ignore[name-defined]
        self._head = b""  # deflate: the first two bytes tell zlib from raw
        self._members = 0
        self._padding = False  # gzip: past the last member, zero bytes only

    def feed(self, data: bytes, emit: Emit) -> None:
        while data:
            if self._padding:
                if data.strip(b"\x00"):
                    raise zlib.error("data after the zero padding")
                return
            if self._d is None:
                if not self._gzip:
                    if self._members:
                        raise zlib.error("data after the end of the deflate stream")
                    self._head += data
                    if len(self._head) < 2:
                        return
                    data, self._head = self._head, b""
                    zlib_wrapped = (data[0] & 0x0F) == 8 and ((data[0] << 8) | data[1]) % 31 == 0
                    self._d = zlib.decompressobj(
                        zlib.MAX_WBITS if zlib_wrapped else -zlib.MAX_WBITS
                    )
                elif self._members and not self._head and data[0] == 0:
                    self._padding = True
                    continue
                else:
                    self._head += data
                    header = gzip_header(self._head)
                    if header is None:
                        return
                    for hidden in header[1]:
                        self._aside(hidden)
                    data, self._head = self._head, b""
                    self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            d = self._d
            emit(d.decompress(data, CHUNK))
            while d.unconsumed_tail:
                emit(d.decompress(d.unconsumed_tail, CHUNK))
            while not d.eof and (out := d.decompress(b"", CHUNK)):
                emit(out)
            if not d.eof:
                return
            data = d.unused_data
            self._d = None
            self._members += 1

    def close(self, emit: Emit) -> None:
        if self._d is not None or self._head:
            raise EOFError("truncated")


class _Brotli:
    pending = 16 * 1024  # measured: a few hundred bytes of block header at most

    def __init__(self) -> None:
        self._d = brotli.Decompressor()

    def feed(self, data: bytes, emit: Emit) -> None:
        if self._d.is_finished():
            raise brotli.error("data after the end of the brotli stream")
        emit(self._d.process(data, output_buffer_limit=CHUNK))
        # Drain: with an output limit the decoder may hold output even when it would
        # accept more input, and that output belongs to input already consumed.
        while (out := self._d.process(b"", output_buffer_limit=CHUNK)) or (
            not self._d.can_accept_more_data()
        ):
            emit(out)

    def close(self, emit: Emit) -> None:
        if not self._d.is_finished():
            raise EOFError("truncated")


class _ZstdSink:
    def __init__(self) -> None:
        self.emit: Emit = lambda _data: None

    def write(self, data: bytes) -> int:
        self.emit(bytes(data))
        return len(data)


class _Zstd:
    """Frames one after another; output in pieces through a writer, the framing walked
    alongside (the decoder says nothing about a truncated frame)."""

    # a block is decoded once it is whole; a skippable frame is judged once it is whole
    pending = max(128 * 1024, MAX_STREAMED_SKIPPABLE) + 1024

    def __init__(self, aside: Aside) -> None:
        self._sink = _ZstdSink()
        self._writer = zstandard.ZstdDecompressor(max_window_size=2**27).stream_writer(
            self._sink, write_size=CHUNK
        )
        self._frames = ZstdFrames(aside, max_skippable=MAX_STREAMED_SKIPPABLE)

    def feed(self, data: bytes, emit: Emit) -> None:
        self._frames.feed(data)
        self._sink.emit = emit
        self._writer.write(data)

    def close(self, emit: Emit) -> None:
        if not self._frames.complete:
            raise EOFError("truncated")


_CODECS: dict[str, Callable[[Aside], _Zlib | _Brotli | _Zstd]] = {
    "gzip": lambda aside: _Zlib(True, aside),
    "x-gzip": lambda aside: _Zlib(True, aside),
    "deflate": lambda aside: _Zlib(False, aside),
    "br": lambda _aside: _Brotli(),
    "zstd": _Zstd,
}
_ERRORS = (zlib.error, brotli.error, zstandard.ZstdError, OSError)


class ContentDecoder:
    """Undo an HTTP Content-Encoding as the body arrives; ExtractionError when it cannot."""

    def __init__(
        self,
        encoding: str,
        limits: Limits = Limits(),  # noqa: B008 - frozen
        aside: Aside = lambda _hidden: None,
    ) -> None:
        """`aside` is handed what a stage skips (gzip header fields, zstd skippable
        frames) before any of its bytes count as consumed for release."""
        codings = [c.strip().lower() for c in encoding.split(",") if c.strip()]
        codings = [c for c in codings if c != "identity"]
        for coding in codings:
            if coding not in _CODECS:
                raise ExtractionError(f"unsupported content encoding {coding[:40]!r}")
        self.name = ", ".join(codings) or "identity"
        # the last coding listed was applied last
        self._stages = [_CODECS[c](aside) for c in reversed(codings)]
        self._limits = limits
        self.pending = sum(s.pending for s in self._stages)
        self.consumed = 0  # input bytes
        self.produced = 0  # output bytes

    def feed(self, data: bytes, emit: Emit) -> None:
        """Decode `data`, handing the output to `emit` in pieces of at most CHUNK bytes."""
        self.consumed += len(data)
        if not self._stages:
            self._out(data, emit)
            return
        with self._failing():
            self._stages[0].feed(data, self._outputs(emit)[0])

    def close(self, emit: Emit) -> None:
        """The body ended: flush, and raise ExtractionError if a stream was cut short."""
        with self._failing():
            for stage, out in zip(self._stages, self._outputs(emit), strict=True):
                stage.close(out)

    @contextmanager
    def _failing(self) -> Iterator[None]:
        try:
            yield
        except EOFError:
            raise ExtractionError(f"the {self.name} body is truncated") from None
        except FramingError as err:  # names the framing, never the content
            raise ExtractionError(f"the {self.name} body is corrupt ({err})") from None
        except _ERRORS as err:
            raise ExtractionError(
                f"the {self.name} body is corrupt ({type(err).__name__})"
            ) from None

    def _outputs(self, emit: Emit) -> list[Emit]:
        """outs[i] receives stage i's output: the next stage's input, or the caller's."""
        outs: list[Emit] = []
        for i in range(len(self._stages)):
            if i + 1 < len(self._stages):
                nxt = self._stages[i + 1]
                outs.append(
                    lambda data, nxt=nxt, i=i: nxt.feed(data, outs[i + 1]) if data else None
                )
            else:
                outs.append(lambda data: self._out(data, emit))
        return outs

    def _out(self, data: bytes, emit: Emit) -> None:
        if not data:
            return
        self.produced += len(data)
        limits = self._limits
        if self.produced > limits.ratio_floor_bytes and self.produced > limits.max_ratio * max(
            self.consumed, 1
        ):
            raise ExtractionError(
                f"the {self.name} body expands beyond {limits.max_ratio}:1 "
                f"(over {size_text(self.produced)} from {size_text(self.consumed)})"
            )
        for i in range(0, len(data), CHUNK):
            emit(data[i : i + CHUNK])
