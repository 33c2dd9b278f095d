"""Office Open XML documents (docx, pptx; xlsx goes to `spreadsheet`), their
properties, Word's document variables, their embedded files and
(`ooxml_parts`) every other XML part.

Text of all runs in a paragraph is joined WITHOUT separators: Word splits a
value over runs wherever formatting or proofing marks change, and an ID must
come out whole.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from rules.findings import Part, Problem

from . import ooxml_parts, spreadsheet
from .limits import ExtractionError
from .names import labelled_part, names_part
from .xmlstream import attribute, or_problem, parse_part
from .zipfiles import SizedZipFile, is_encrypted, read_member, walk_member

if TYPE_CHECKING:
    from .item import Item
    from .walk import Walk

WORD, SHEET, SLIDES = "docx", "xlsx", "pptx"
_MAIN_PARTS = (
    ("word/document.xml", WORD),
    ("xl/workbook.xml", SHEET),
    ("ppt/presentation.xml", SLIDES),
)
_WORD_PART = re.compile(r"word/(document|header|footer|footnotes|endnotes|comments)(\d*)\.xml")
_WORD_ORDER = ("document", "header", "footer", "footnotes", "endnotes", "comments")
_SLIDE_PART = re.compile(r"ppt/(slides/slide|notesSlides/notesSlide)(\d+)\.xml")
# Title, author, company, custom fields…: shown only in a properties dialog.
_PROPERTY_PARTS = ("docProps/core.xml", "docProps/app.xml", "docProps/custom.xml")
_EMBEDDED = re.compile(r"(?:word|xl|ppt)/embeddings/[^/]+")
# Document variables (w:docVars): name/value pairs that templates and add-ins
# keep in the settings, shown nowhere; the rest of the settings is configuration.
# The glossary document (building blocks, AutoText) has settings of its own,
# which the catch-all would read only for their text nodes: w:val is an attribute.
_SETTINGS = (
    ("word/settings.xml", "document variables"),
    ("word/glossary/settings.xml", "glossary document variables"),
)


def document_kind(zf: zipfile.ZipFile) -> str | None:
    names = set(zf.namelist())
    if "[Content_Types].xml" not in names:
        return None
    return next((kind for part, kind in _MAIN_PARTS if part in names), None)


class ParagraphText:
    """Collects w:t / a:t text: paragraphs end in "\\n", w:tab is "\\t", breaks are "\\n"."""

    # Deleted text is still in the file, and readable; so are field codes, of which
    # Word shows only the result (a HYPERLINK field's URL, a QUOTE's text).
    _TEXT = frozenset({"t", "delText", "instrText", "delInstrText"})

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self._stack: list[str] = []
        self._skipping = 0  # depth inside mc:Fallback, a duplicate of the mc:Choice content

    def start(self, name: str, attrs: dict[str, str]) -> None:
        parent = self._stack[-1] if self._stack else ""
        self._stack.append(name)
        if self._skipping or name == "Fallback":
            self._skipping += 1
        elif name in ("br", "cr"):
            self.pieces.append("\n")
        elif name == "tab" and parent == "r":  # not the tab stops in w:pPr/w:tabs
            self.pieces.append("\t")
        # a watermark, alt text (the membership test first: this runs for every element)
        elif name in ooxml_parts.TEXT_ATTRIBUTES and (
            value := ooxml_parts.attribute_text(name, attrs)
        ):
            self.pieces += ("\t", value, "\t")

    def end(self, name: str) -> None:
        self._stack.pop()
        if self._skipping:
            self._skipping -= 1
        elif name == "p":
            self.pieces.append("\n")

    def text(self, chars: str) -> None:
        if not self._skipping and self._stack and self._stack[-1] in self._TEXT:
            self.pieces.append(chars)


def _text_parts(kind: str, names: list[str]) -> list[tuple[str, str]]:
    """(member, location label) of the parts holding text, in reading order."""
    if kind == WORD:
        found = [(m, n) for n in names if (m := _WORD_PART.fullmatch(n))]
        found.sort(key=lambda mn: (_WORD_ORDER.index(mn[0][1]), int(mn[0][2] or 0)))
        return [(n, n) for _, n in found]
    found = [(m, n) for n in names if (m := _SLIDE_PART.fullmatch(n))]
    found.sort(key=lambda mn: (mn[0][1] != "slides/slide", int(mn[0][2])))
    label = {"slides/slide": "slide", "notesSlides/notesSlide": "notes"}
    return [(n, f"{label[m[1]]} {m[2]}") for m, n in found]


def _read(zf: SizedZipFile, name: str, walk: Walk) -> bytes:
    info = zf.getinfo(name)
    if is_encrypted(info):
        raise ExtractionError(f"document part {name} is encrypted")
    return read_member(zf, info, f"document part {name}", walk.budget)


class XmlComments:
    """The comments (<!-- -->) of the parts read. No Office application writes or
    shows them and every parser skips them, so only a crafted file has any: what is
    in them travels unseen, and is scanned here."""

    def __init__(self, item: Item) -> None:
        self.item = item
        self.found: list[tuple[str, str]] = []  # (text, location)
        self._seen: set[str] = set()

    def note(self, name: str, data: bytes) -> bytes:
        if name in self._seen or b"<!--" not in data:
            return data
        self._seen.add(name)
        texts, pos = [], 0
        # Linear: each search starts past the last comment, and an unclosed one ends it.
        while (start := data.find(b"<!--", pos)) >= 0:
            end = data.find(b"-->", start + 4)
            if end < 0:
                break
            texts.append(data[start + 4 : end].decode("utf-8", "replace").strip())
            pos = end + 3
        if text := "\t".join(t for t in texts if t):
            self.found.append((text, self.item.at(name)))
        return data


def extract_document(
    zf: SizedZipFile, kind: str, item: Item, walk: Walk
) -> Iterator[Part | Problem]:
    names = zf.namelist()
    comments = XmlComments(item)
    read = lambda n: comments.note(n, _read(zf, n, walk))  # noqa: E731
    rest = ooxml_parts.Remainder()  # what the catch-all at the end is not to read again
    rest.done.update(_PROPERTY_PARTS)
    rest.done.update(n for n in names if _EMBEDDED.fullmatch(n))
    if kind == SHEET:
        yield from spreadsheet.extract_workbook(read, names, item, walk, rest)
    else:
        for name, label in _text_parts(kind, names):
            rest.done.add(name)
            collector = ParagraphText()
            what = f"document part {name}"
            problem = or_problem(
                item.at(label), parse_part, read, name, what, walk.budget, collector
            )
            if problem is not None:
                yield problem
                continue
            text = "".join(collector.pieces)
            if text.strip():
                yield Part(item.at(label), text)
    yield from _properties(read, names, item, walk)
    if kind == WORD:
        for name, label in _SETTINGS:
            if name in names:
                rest.done.add(name)
                yield from _variables(read, name, label, item, walk)
    yield from _embedded(zf, names, item, walk)
    yield from ooxml_parts.extract_leftovers(read, names, rest, item, walk)
    if part := names_part(item.at("xml comments"), comments.found, sep="\t\n"):
        yield part


class PropertyText:
    """(label, value) of each property: a child of the root element, labelled by its
    `name` attribute (custom properties) or else its element name."""

    def __init__(self) -> None:
        self.found: list[tuple[str, str]] = []
        self._depth = 0
        self._label = ""
        self._named = False
        self._pieces: list[str] = []

    def start(self, name: str, attrs: dict[str, str]) -> None:
        self._depth += 1
        if self._depth == 2:
            self._label = attrs.get("name") or name
            self._named = "name" in attrs
            self._pieces = []
        elif self._depth > 2:  # vector items (titles of parts, keywords) apart
            self._pieces.append("\n")

    def end(self, name: str) -> None:
        if self._depth == 2:
            lines = (line.strip() for line in "".join(self._pieces).splitlines())
            value = "\n".join(line for line in lines if line)
            if value or self._named:  # a custom property's name is user text too
                self.found.append((self._label, value))
        self._depth -= 1

    def text(self, chars: str) -> None:
        if self._depth >= 2:
            self._pieces.append(chars)


def _properties(
    read: Callable[[str], bytes], names: list[str], item: Item, walk: Walk
) -> Iterator[Part | Problem]:
    """One Part of "label: value" lines, a Segment per property; a missing
    properties part is normal, a corrupt one is a Problem of its own."""
    location = item.at("document properties")
    found: list[tuple[str, str]] = []
    for name in _PROPERTY_PARTS:
        if name not in names:
            continue
        collector = PropertyText()
        what = f"document part {name}"
        problem = or_problem(item.at(name), parse_part, read, name, what, walk.budget, collector)
        if problem is not None:
            yield problem
            continue
        found += collector.found
    if part := labelled_part(location, found):
        yield part


class VariableText:
    """(name, value) of each w:docVar."""

    def __init__(self) -> None:
        self.found: list[tuple[str, str]] = []

    def start(self, name: str, attrs: dict[str, str]) -> None:
        if name == "docVar":
            self.found.append((attribute(attrs, "name"), attribute(attrs, "val")))

    def end(self, name: str) -> None:
        pass

    def text(self, chars: str) -> None:
        pass


def _variables(
    read: Callable[[str], bytes], name: str, label: str, item: Item, walk: Walk
) -> Iterator[Part | Problem]:
    """One Part of "name: value" lines, a Segment per variable, as for properties."""
    collector = VariableText()
    what = f"document part {name}"
    problem = or_problem(item.at(name), parse_part, read, name, what, walk.budget, collector)
    if problem is not None:
        yield problem
        return
    if part := labelled_part(item.at(label), collector.found):
        yield part


def _embedded(zf: SizedZipFile, names: list[str], item: Item, walk: Walk):
    """Files embedded in the document (a workbook in a letter) are content too."""
    for name in names:
        if not _EMBEDDED.fullmatch(name):
            continue
        walk.budget.count_file()
        yield from walk_member(zf, zf.getinfo(name), name, item, walk, what="embedded file")
