"""Rewrite text and keep a way back: offsets in the rewritten text map to the original.

Every disguise the engine undoes (entities, escapes, full-width digits, zero-width
characters, …) is a substitution of short spans. `substitute` applies one kind
and returns a `SpanMap`; maps chain, so a finding in the fully decoded text
maps back to the exact span of the original that a masking step can rewrite.
Maps are sparse (one entry per rewritten span), so text without disguises
costs nothing.

Faster forms of `substitute`, each giving exactly its text and map:
`substitute_decoded` (the replacement needs only the matched text: no Python
per match), `substitute_chars` (per-character rewrites whose offsets are known:
no search) and `substitute_blocks` (a text dense with matches, such as JSON
inside JSON, rewritten a block at a time in bulk; a block's exact map is made
only when an offset in it is mapped back).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence
from itertools import accumulate, compress
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


def substitute_decoded(
    text: str, splitter: Pattern[str], decode: Callable[[str], str | None]
) -> tuple[str, SpanMap] | None:
    """`substitute` for a `replace` that needs only the matched text: the same result, faster.

    `splitter` is the pattern wrapped in one capturing group, so that `split`
    cuts the text into plain and matched pieces in C; `decode` runs through
    `map` and the offsets come from running sums, so a text with tens of
    thousands of escapes (JSON inside JSON) costs no Python per match.
    """
    pieces = splitter.split(text)
    if len(pieces) == 1:
        return None
    n = len(pieces) // 2  # matches
    old = pieces[1::2]
    new = list(map(decode, old))
    kept = None
    if None in new:  # declined matches stay as they were and get no span
        kept = [x is not None for x in new]
        if not any(kept):
            return None
        new = [o if x is None else x for o, x in zip(old, new, strict=True)]
    src = list(accumulate(map(len, pieces), initial=0))
    pieces[1::2] = new
    dst = list(accumulate(map(len, pieces), initial=0))
    spans = SpanMap()
    # match k is piece 2k+1: it starts at offset 2k+1 of the running sums and ends at 2k+2
    starts, ends = slice(1, 2 * n, 2), slice(2, 2 * n + 1, 2)
    columns = (dst[starts], dst[ends], src[starts], src[ends])
    if kept is not None:
        columns = tuple(list(compress(c, kept)) for c in columns)
    spans._dst_start, spans._dst_end, spans._src_start, spans._src_end = columns
    return "".join(pieces), spans


def substitute_chars(
    text: str, positions: Sequence[int], table: dict[str, str]
) -> tuple[str, SpanMap] | None:
    """`substitute` for a pattern of runs of `table`'s characters, each character
    replaced on its own, given the offsets of all of them (sorted): no search."""
    spans = SpanMap()
    pieces: list[str] = []
    pos = shift = 0
    for at in positions:
        new = table.get(text[at])
        if new is None:  # not one of the table's: left as is, as the pattern would
            continue
        pieces += (text[pos:at], new)
        spans.add(at + shift, at + shift + len(new), at, at + 1)
        shift += len(new) - 1
        pos = at + 1
    if not pieces:
        return None
    pieces.append(text[pos:])
    return "".join(pieces), spans


class BlockSpanMap:
    """A SpanMap made block by block, each block's only when an offset in it is asked for.

    A text dense with escapes (JSON inside JSON has one every few characters)
    is rewritten a block at a time in C; the exact per-match map of a block is
    made by `exact` the first time a finding in that block is mapped back.
    Outside the rewritten blocks offsets shift as in a SpanMap.
    """

    __slots__ = ("_blocks", "_exact", "_fine", "_outer")

    def __init__(self, exact: Callable[[str], tuple[str, SpanMap | BlockSpanMap] | None]) -> None:
        self._outer = SpanMap()  # one region per rewritten block
        self._blocks: list[str] = []  # the source text of each
        self._fine: dict[int, SpanMap | BlockSpanMap] = {}
        self._exact = exact

    def add(self, dst_start: int, dst_end: int, src: str, src_start: int) -> None:
        self._outer.add(dst_start, dst_end, src_start, src_start + len(src))
        self._blocks.append(src)

    def _block(self, pos: int) -> int:
        """Index of the rewritten block holding destination offset `pos`, or -1."""
        i = bisect_right(self._outer._dst_start, pos) - 1
        return i if i >= 0 and pos < self._outer._dst_end[i] else -1

    def _map(self, i: int) -> SpanMap | BlockSpanMap:
        fine = self._fine.get(i)
        if fine is None:
            result = self._exact(self._blocks[i])
            fine = self._fine[i] = result[1] if result else SpanMap()
        return fine

    def start(self, pos: int) -> int:
        i = self._block(pos)
        if i < 0:
            return self._outer.start(pos)
        base = self._outer._dst_start[i]
        return self._outer._src_start[i] + self._map(i).start(pos - base)

    def end(self, pos: int) -> int:
        i = self._block(pos - 1) if pos > 0 else -1
        if i < 0:
            return self._outer.end(pos)
        base = self._outer._dst_start[i]
        return self._outer._src_start[i] + self._map(i).end(pos - base)

    def touches(self, start: int, end: int) -> bool:
        outer = self._outer
        i = bisect_right(outer._dst_start, end) - 1
        while i >= 0 and outer._dst_end[i] >= start:
            base = outer._dst_start[i]
            if base < end and self._map(i).touches(start - base, end - base):
                return True
            i -= 1
        return False


def substitute_blocks(
    text: str,
    cut: Pattern[str],
    bulk: Callable[[str], str | None],
    exact: Callable[[str], tuple[str, SpanMap | BlockSpanMap] | None],
    block: int,
) -> tuple[str, BlockSpanMap] | None:
    """`exact(text)`'s text, made by `bulk` one block at a time, with a lazy map back.

    Blocks end just after a match of `cut`, a character that no match of the
    rewrite can contain, so no match straddles two blocks and each block
    rewrites as it would inside the whole text. `bulk(block)` must answer
    exactly what `exact` would, or None where it cannot (then `exact` runs).
    """
    spans = BlockSpanMap(exact)
    out: list[str] = []
    pos = shift = 0
    size = len(text)
    while pos < size:
        m = cut.search(text, pos + block) if pos + block < size else None
        stop = m.end() if m else size
        piece = text[pos:stop]
        new, fine = bulk(piece), None
        if new is None:
            new, fine = exact(piece) or (piece, None)
        if new is not piece and new != piece:
            if fine is not None:
                spans._fine[len(spans._blocks)] = fine
            spans.add(pos + shift, pos + shift + len(new), piece, pos)
            shift += len(new) - len(piece)
        out.append(new)
        pos = stop
    return ("".join(out), spans) if spans._blocks else None


class MapChain:
    """Maps of successive named rewrites, applied newest first when mapping back."""

    __slots__ = ("_maps",)

    def __init__(self, maps: tuple[tuple[str, SpanMap], ...] = ()) -> None:
        self._maps = maps

    def then(self, name: str, spans: SpanMap | BlockSpanMap) -> MapChain:
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
