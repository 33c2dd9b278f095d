"""A file that is one compressed stream (.gz, .bz2, .xz, .zst, .br): its content, extracted in turn.

The content keeps the stream's location: "records.txt.gz" holds one thing,
and naming it twice would only lengthen the path. What the decoder skips (a
gzip file name or comment, a zstd skippable frame) is extracted too, at
"records.txt.gz › gzip comment".
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from rules.findings import Part, Problem

from . import sniff
from .compress import decompress

if TYPE_CHECKING:
    from .item import Item
    from .walk import Walk

_SHORT_SUFFIXES = {"tgz": ".tar", "tbz2": ".tar", "txz": ".tar", "svgz": ".svg"}


def inner_name(name: str) -> str:
    """'a.txt.gz' -> 'a.txt', 'b.tgz' -> 'b.tar'."""
    ext = sniff.extension(name)
    if not ext:
        return name
    stem = name[: -len(ext) - 1]
    return stem + _SHORT_SUFFIXES.get(ext, "")


def extract_stream(data: bytes, item: Item, walk: Walk) -> Iterator[Part | Problem]:
    method = sniff.sniff(data, item.name, item.content_type)
    label = f"compressed stream {item.name}".rstrip()
    decoded = decompress(data, method, label, walk.budget)
    yield from walk.nested(item, decoded.content, inner_name(item.name), location=item.location)
    for hidden in decoded.hidden:
        yield from walk.nested(item, hidden.data, "", location=item.at(hidden.place))
