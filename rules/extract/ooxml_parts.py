"""The rest of an Office package: every XML part the main extraction does not read.

Such parts carry data no reader shows: a pivot cache keeps a copy of its source
data after the sheet is deleted, charts cache the values they plot, external
links cache the cells they point at; comments, text boxes, custom XML bound to
content controls, masters and layouts hold text of their own; a hyperlink's URL
(an ID in its query) is in a relationship, not in the text. Legacy VML drawings
(`.vml`: cell-comment shapes, form-control labels, header pictures) hold text
boxes in HTML, picture titles and WordArt strings.

Taken from each part: text nodes, `v` attributes (pivot cache items), the
text VML keeps in attributes and the target of external relationships. Values
are kept apart by "\\t", which ends a number for the scan engine ("\\n" does
not: two values on two lines could make one ID); the runs of one paragraph are
joined with nothing, as Word and PowerPoint split a value over runs wherever
formatting changes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rules.findings import Part, Problem

from .names import names_part
from .xmlstream import (
    NotWellFormed,
    attribute,
    or_problem,
    parse_part,
    parse_tag_soup,
    parse_xml,
)

if TYPE_CHECKING:
    from .item import Item
    from .walk import Walk

# Styles, themes, fonts, list numbering, settings, the calculation chain, view
# properties: formatting and configuration, no text people write; and they are
# the largest parts of a small document (numbering.xml: no text node at all).
_SKIP = re.compile(
    r"\[Content_Types\]\.xml"
    r"|(?:word|xl|ppt)/theme/[^/]+\.xml"
    r"|xl/(?:styles|calcChain)\.xml"
    r"|word/(?:styles|stylesWithEffects|fontTable|numbering|settings|webSettings)\.xml"
    r"|ppt/(?:presProps|viewProps|tableStyles)\.xml"
)
_RUN_TEXT = frozenset({"t", "delText"})  # w:t, a:t and spreadsheet rich text <r><t>
_SPACES = re.compile(r"\s+")  # HTML: a run of white space shows as one space
# Text an element holds in attributes: VML (WordArt, a Word watermark's text; a
# picture's title, often its file name; a shape's alt text) and DrawingML's alt text
# (docPr in Word, cNvPr in slides, sheet drawings and pictures).
TEXT_ATTRIBUTES = {
    "textpath": ("string",),
    "imagedata": ("title",),
    "shape": ("alt",),
    "docPr": ("descr", "title"),
    "cNvPr": ("descr", "title"),
}
_VALUE_SEP, _PART_SEP = "\t", "\t\n"  # parts apart as values are, each on its own line


@dataclass
class Remainder:
    """What the main extraction leaves to the catch-all: the parts it read (not to
    be read again) and text it met outside its Parts [(text, location)]."""

    done: set[str] = field(default_factory=set)
    found: list[tuple[str, str]] = field(default_factory=list)


def leftover_members(names: Iterable[str], done: set[str]) -> list[str]:
    """XML members not already extracted, in package order; binary parts and
    the styling parts above are left out."""
    return [
        n
        for n in names
        if n not in done
        and n.lower().endswith((".xml", ".rels", ".vml"))
        and not _SKIP.fullmatch(n)
    ]


def attribute_text(name: str, attrs: dict[str, str]) -> str:
    """The text element `name` holds in attributes (tab-separated), if any."""
    wanted = TEXT_ATTRIBUTES.get(name)
    if wanted is None:  # nearly every element: called for each one of a document
        return ""
    values = (attribute(attrs, key).strip() for key in wanted)
    return _VALUE_SEP.join(value for value in values if value)


class LeftoverText:
    """Text of one part: see the module docstring."""

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self._stack: list[tuple[str, int]] = []  # open elements: (name, serial)
        self._paragraphs: list[int] = []  # serials of the open <p> elements
        self._serial = 0
        self._owner: int | None = None  # paragraph (else run parent) of the last run text
        self._chars: list[str] = []  # text since the last tag: expat may cut one node in two
        self._skipping = 0  # depth inside mc:Fallback, a duplicate of the mc:Choice content

    def _value(self, value: str, owner: int | None = None) -> None:
        if not value:
            return
        glued = owner is not None and owner == self._owner
        if self.pieces and not glued:
            self.pieces.append(_VALUE_SEP)
        self.pieces.append(value)
        self._owner = owner

    def _flush(self) -> None:
        if not self._chars:
            return
        chars = "".join(self._chars)
        self._chars = []
        if self._skipping:
            return
        stack = self._stack
        if len(stack) > 2 and stack[-1][0] in _RUN_TEXT and stack[-2][0] == "r":
            self._value(chars, self._paragraphs[-1] if self._paragraphs else stack[-3][1])
        elif value := chars.strip():
            self._value(value)

    def start(self, name: str, attrs: dict[str, str]) -> None:
        self._flush()
        self._serial += 1
        self._stack.append((name, self._serial))
        if self._skipping or name == "Fallback":
            self._skipping += 1
            return
        if name == "p":
            self._paragraphs.append(self._serial)
        # <x v="3"/> in pivot records is an index into the shared items, not a value.
        if (v := attrs.get("v")) and name != "x":
            self._value(v)
        elif name == "Relationship" and attrs.get("TargetMode") == "External":
            self._value(attrs.get("Target", ""))
        elif value := attribute_text(name, attrs):  # VML is in .vml parts and XML ones
            self._value(value)

    def end(self, name: str) -> None:
        self._flush()
        self._stack.pop()
        if self._skipping:
            self._skipping -= 1
        elif name == "p" and self._paragraphs:
            self._paragraphs.pop()

    def text(self, chars: str) -> None:
        self._chars.append(chars)


class VmlText(LeftoverText):
    """Text of a VML part. A text box holds HTML: each <div> is a line, which Excel
    splits into <font> runs wherever formatting changes, so its text is one value
    (white space collapsed, <br> a line break); other text (x:ClientData) is
    value by value, as in any part."""

    def __init__(self) -> None:
        super().__init__()
        self._lines: list[int] = []  # serials of the open <div> elements

    def _flush(self) -> None:
        if self._lines and self._chars and not self._skipping:
            chars = _SPACES.sub(" ", "".join(self._chars))
            self._chars = []
            line = self._lines[-1]
            if chars.strip() or self._owner == line:  # no line starts with indentation
                self._value(chars, line)
        else:
            super()._flush()

    def start(self, name: str, attrs: dict[str, str]) -> None:
        super().start(name, attrs)
        if self._skipping:
            return
        name = name.lower()  # HTML, which may be written <DIV> and <BR>
        if name == "div":
            self._lines.append(self._serial)
        elif name == "br" and self._lines:
            self._value("\n", self._lines[-1])

    def end(self, name: str) -> None:
        super().end(name)
        if name.lower() == "div" and self._lines:
            self._lines.pop()


def _part_text(read: Callable[[str], bytes], name: str, walk: Walk) -> str:
    what = f"document part {name}"
    if not name.lower().endswith(".vml"):
        collector = LeftoverText()
        parse_part(read, name, what, walk.budget, collector)
        return "".join(collector.pieces)
    data = read(name)
    collector = VmlText()
    try:
        parse_xml(data, what, walk.budget, collector.start, collector.end, collector.text)
    except NotWellFormed:
        # Excel writes a line break in a form control's label as an HTML <br> with
        # no end tag: VML is often not XML, yet its text is there to read.
        collector = VmlText()
        parse_tag_soup(data, what, walk.budget, collector.start, collector.end, collector.text)
    return "".join(collector.pieces)


def extract_leftovers(
    read: Callable[[str], bytes], names: list[str], rest: Remainder, item: Item, walk: Walk
) -> Iterator[Part | Problem]:
    """One Part: the text in `rest.found`, then that of every part not in
    `rest.done`; a corrupt part is a Problem of its own and hides nothing else."""
    found = list(rest.found)
    for name in leftover_members(names, rest.done):
        text = or_problem(item.at(name), _part_text, read, name, walk)
        if isinstance(text, Problem):
            yield text
            continue
        found.append((text, item.at(name)))
    if part := names_part(item.at("other document parts"), found, sep=_PART_SEP):
        yield part
