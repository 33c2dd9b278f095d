"""The names inside a container, as text to scan.

Names carry data too: an attachment called "张三_11010519491231002X.jpg" has
no readable content, yet its name alone discloses an ID.
"""

from __future__ import annotations

from collections.abc import Iterable

from rules.findings import Part, Segment

from .item import join_location
from .limits import MAX_SEGMENTS


def names_part(location: str, named: list[tuple[str, str]], sep: str = "\n") -> Part | None:
    """One Part at `location` listing the names of `named` [(name, its location)],
    joined by `sep`, with a Segment per name pointing at the named item (past
    MAX_SEGMENTS, the rest point at `location` itself)."""
    named = [(name, at) for name, at in named if name]
    if not named:
        return None
    segments, offset = [], 0
    for i, (name, at) in enumerate(named):
        if i == MAX_SEGMENTS:
            segments.append(Segment(offset, location))
            break
        segments.append(Segment(offset, at))
        offset += len(name) + len(sep)
    return Part(location, sep.join(name for name, _ in named), tuple(segments))


def labelled_part(location: str, entries: Iterable[tuple[str, str]]) -> Part | None:
    """One Part of "label: text" lines (the text alone where there is no label), each
    line's Segment at `location › label`: properties, variables, header fields."""
    lines = [
        (f"{label}: {text}" if label else text, join_location(location, label))
        for label, text in entries
    ]
    return names_part(location, lines)
