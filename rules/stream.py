"""Scanning text that arrives in chunks, with bounded memory.

The stream keeps a window of text after the point up to which it has reported.
Each step scans the buffer, reports the findings that start before a *cut*
chosen at a hard boundary (a character no token, escape or disguise can
span), and carries on from just before the cut with some left context. A value
across a chunk border is therefore seen whole and reported exactly once;
memory is the window plus one step, whatever the stream's length.
"""

from __future__ import annotations

import codecs

from rules.engine import CONTEXT_BEFORE, Engine
from rules.findings import Finding
from rules.normalize import CHAR_TABLE, CN_DIGITS

STEP = 256 * 1024  # characters scanned per step beyond the window
WINDOW = 8 * 1024  # held back: longer than any disguised value plus its context

# Characters that can be part of a value, an escape or a disguise: never cut after them.
_SOFT = (
    frozenset(
        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz \t\r\n-./·*+=%&#;\\@_"
    )
    | frozenset(CHAR_TABLE)
    | frozenset(CN_DIGITS)
)


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
        self._reported_until = 0  # stream offset: findings starting before it were handled
        self.chars = 0

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
            if start < self._reported_until or f.start >= cut:
                continue  # reported by the previous step, or left for the next
            found.append(_shift(f, self._base))
        keep_from = max(0, cut - CONTEXT_BEFORE)  # left context for the next step's values
        self._reported_until = self._base + cut
        self._base += keep_from
        self._buffer = buf[keep_from:]
        return found


class BytesStream:
    """The same over bytes in a known charset (decoded incrementally, never failing)."""

    def __init__(
        self, engine: Engine, location: str = "", encoding: str = "utf-8", **sizes: int
    ) -> None:
        self._decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        self._text = TextStream(engine, location, **sizes)

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
