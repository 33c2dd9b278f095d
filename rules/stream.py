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
_BOUNDARY_SEARCH = 4 * 1024  # how far back from the window edge to look for a hard boundary

# Characters that can be part of a value, an escape or a disguise: never cut after them.
_SOFT = frozenset(
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    " \t\r\n-./·*+=%&#;\\@_"
) | frozenset(CHAR_TABLE) | frozenset(CN_DIGITS)


class TextStream:
    """Feed text chunks; get findings with offsets counted from the stream's start."""

    def __init__(self, engine: Engine, location: str = "") -> None:
        self._engine = engine
        self._location = location
        self._buffer = ""
        self._base = 0  # stream offset of self._buffer[0]
        self._reported_until = 0  # stream offset: findings starting before it were handled
        self.chars = 0

    def feed(self, chunk: str) -> list[Finding]:
        self.chars += len(chunk)
        out: list[Finding] = []
        for i in range(0, len(chunk), STEP):
            self._buffer += chunk[i : i + STEP]
            if len(self._buffer) >= WINDOW + STEP:
                out.extend(self._step(final=False))
        return out

    def close(self) -> list[Finding]:
        return self._step(final=True)

    def _step(self, final: bool) -> list[Finding]:
        buf = self._buffer
        cut = len(buf) if final else _hard_cut(buf, len(buf) - WINDOW)
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

    def __init__(self, engine: Engine, location: str = "", encoding: str = "utf-8") -> None:
        self._decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        self._text = TextStream(engine, location)

    def feed(self, chunk: bytes) -> list[Finding]:
        return self._text.feed(self._decoder.decode(chunk))

    def close(self) -> list[Finding]:
        return self._text.feed(self._decoder.decode(b"", final=True)) + self._text.close()


def _hard_cut(buf: str, limit: int) -> int:
    """The last position <= limit just after a character no token spans."""
    lowest = max(0, limit - _BOUNDARY_SEARCH)
    for pos in range(limit, lowest, -1):
        if buf[pos - 1] not in _SOFT:
            return pos
    return limit  # text with no hard boundary for 4 KiB (a digit table): cut anyway


def _shift(f: Finding, by: int) -> Finding:
    return Finding(f.detector, f.score, f.location, f.start + by, f.end + by, f.masked,
                   f.value_hash, f.why)
