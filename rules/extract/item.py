"""One piece of content on its way through extraction, and where it sits."""

from __future__ import annotations

from dataclasses import dataclass

SEPARATOR = " › "


def join_location(outer: str, inner: str) -> str:
    """'attachment a.zip' + 'b.docx' -> 'attachment a.zip › b.docx'."""
    if not outer:
        return inner
    if not inner:
        return outer
    return f"{outer}{SEPARATOR}{inner}"


@dataclass(frozen=True, slots=True)
class Item:
    name: str  # file name as the sender gave it ("" if none)
    content_type: str  # as declared, parameters included ("" if none)
    location: str  # human location of this item, e.g. "attachment a.zip › b.docx"
    depth: int  # containers around it: 0 for the input itself

    def at(self, inner: str) -> str:
        return join_location(self.location, inner)
