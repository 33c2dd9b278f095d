"""Rewrite text and keep a way back: offsets in the rewritten text map to the original.

Every disguise the engine undoes (entities, escapes, full-width digits, zero-width
characters, …) is a substitution of short spans. `substitute` applies one kind
and returns a `SpanMap`; maps chain, so a finding in the fully decoded text
maps back to the exact span of the original that a masking step can rewrite.
Maps are sparse (one entry per rewritten span), so text without disguises
costs nothing.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from re import Match, Pattern


class SpanMap:
    """Maps offsets of a rewritten text back to the text it was made from."""

    __slots__ = ("_dst_end", "_dst_start", "_src_end", "_src_start")

    def __init__(self) -> None:
        self._dst_start: list[int] = []
        self._dst_end: list[int] = []
        self._src_start: list[int] = []
        self._src_end: list[int] = []

    def add(self, dst_start: int, dst_end: int, src_start: int, src_end: int) -> None:
        self._dst_start.append(dst_start)
        self._dst_end.append(dst_end)
        self._src_start.append(src_start)
        self._src_end.append(src_end)

    def start(self, pos: int) -> int:
        """Source offset of the character at `pos` (a span start)."""
        i = bisect_right(self._dst_start, pos) - 1
        if i < 0:
            return pos
        if pos < self._dst_end[i]:
            return self._src_start[i]
        return self._src_end[i] + (pos - self._dst_end[i])

    def touches(self, start: int, end: int) -> bool:
        """Whether a rewritten region (or a deletion) lies within or across [start, end)."""
        i = bisect_right(self._dst_start, end) - 1
        while i >= 0 and self._dst_end[i] >= start:
            if self._dst_start[i] < end and (
                self._dst_end[i] > start or self._dst_start[i] > start
            ):
                return True
            i -= 1
        return False

    def end(self, pos: int) -> int:
        """Source offset just past the character at `pos - 1` (a span end)."""
        if pos <= 0:
            return self.start(pos)
        last = pos - 1
        i = bisect_right(self._dst_start, last) - 1
        if i < 0:
            return pos
        if last < self._dst_end[i]:
            return self._src_end[i]
        return self._src_end[i] + (pos - self._dst_end[i])


def substitute(
    text: str, pattern: Pattern[str], replace: Callable[[Match[str]], str | list[str] | None]
) -> tuple[str, SpanMap] | None:
    """Replace every match for which `replace` returns something; None if nothing changed.

    `replace` returns a string (the match maps back as one region) or a list
    with one string per character of the match (each character maps back on
    its own, so a value inside a run of full-width text gets its own span).
    """
    spans = SpanMap()
    dst_start, dst_end = spans._dst_start, spans._dst_end
    src_start, src_end = spans._src_start, spans._src_end
    shift = 0  # how much longer the output is than the input so far

    def rewrite(m: Match[str]) -> str:
        nonlocal shift
        old = m.group()
        new = replace(m)
        if new is None:
            return old
        start, end = m.span()
        if isinstance(new, list):
            dst = start + shift
            for i, (was, now) in enumerate(zip(old, new, strict=True)):
                if was != now:
                    dst_start.append(dst)
                    dst_end.append(dst + len(now))
                    src_start.append(start + i)
                    src_end.append(start + i + 1)
                dst += len(now)
            new = "".join(new)
        else:
            dst_start.append(start + shift)
            dst_end.append(start + shift + len(new))
            src_start.append(start)
            src_end.append(end)
        shift += len(new) - (end - start)
        return new

    out = pattern.sub(rewrite, text)  # the loop and the joining run in C
    return (out, spans) if dst_start else None


class MapChain:
    """Maps of successive named rewrites, applied newest first when mapping back."""

    __slots__ = ("_maps",)

    def __init__(self, maps: tuple[tuple[str, SpanMap], ...] = ()) -> None:
        self._maps = maps

    def then(self, name: str, spans: SpanMap) -> MapChain:
        return MapChain((*self._maps, (name, spans)))

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original span of [start, end)."""
        original_start, original_end, _ = self.trace(start, end)
        return original_start, original_end

    def trace(self, start: int, end: int) -> tuple[int, int, tuple[str, ...]]:
        """The original span, and the names of the rewrites that touched it (oldest first)."""
        names: list[str] = []
        for name, spans in reversed(self._maps):
            if spans.touches(start, end) and name not in names:
                names.append(name)
            start, end = spans.start(start), spans.end(end)
        return start, end, tuple(reversed(names))
