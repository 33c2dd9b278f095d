"""Text formats whose raw text is what a human reads: plain text, JSON, HTML, XML, CSV/TSV.

The Part is the decoded text as-is: escapes (HTML entities, JSON \\u) are left
for the scan engine, which decodes them and maps offsets back.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from rules.findings import Part, Problem, Segment

from .charset import decode_text
from .limits import MAX_SEGMENTS

if TYPE_CHECKING:
    from .item import Item
    from .walk import Walk

_CHARSET_PARAM = re.compile(r"""charset\s*=\s*["']?([^"';\s]+)""", re.IGNORECASE)
_LINE_END = re.compile(r"\r\n|\n|\r")


def charset_param(content_type: str) -> str:
    m = _CHARSET_PARAM.search(content_type)
    return m.group(1) if m else ""


def extract_text(data: bytes, item: Item, walk: Walk) -> Iterator[Part | Problem]:
    text = decode_text(data, declared=charset_param(item.content_type))
    if text:
        yield Part(item.location, text)


def row_segments(
    text: str, location_of_row: Callable[[int], str], rest: str
) -> tuple[Segment, ...]:
    """A Segment per row; a line break inside a quoted field does not end the row.
    Past MAX_SEGMENTS rows one last Segment, located at `rest`, covers the remainder."""
    segments = [Segment(0, location_of_row(1))] if text else []
    row, quotes, line_start = 1, 0, 0
    for m in _LINE_END.finditer(text):
        quotes += text.count('"', line_start, m.start())
        line_start = m.end()
        if quotes % 2 or line_start == len(text):
            continue
        row += 1
        if len(segments) >= MAX_SEGMENTS:
            segments.append(Segment(line_start, rest))
            break
        segments.append(Segment(line_start, location_of_row(row)))
    return tuple(segments)


def extract_table(data: bytes, item: Item, walk: Walk) -> Iterator[Part | Problem]:
    """CSV/TSV: the text with one Segment per row ("row 7")."""
    text = decode_text(data, declared=charset_param(item.content_type))
    if text:
        segments = row_segments(text, lambda n: item.at(f"row {n}"), item.location)
        yield Part(item.location, text, segments)


def extract_nothing(data: bytes, item: Item, walk: Walk) -> Iterator[Part | Problem]:
    """Unknown binary: nothing a human reads, and nothing to complain about."""
    return iter(())
