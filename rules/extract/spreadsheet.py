"""xlsx workbooks: one Part per sheet, cells joined by "\\t", rows by "\\n", a Segment per cell.

Numbers are rendered as Excel holds them: an integral value below 10**15 as an
integer (13340492349.0 -> "13340492349"); anything longer was already rounded
by Excel to 15 significant digits, and is shown in exponent form so the
rounded digits do not pose as a real ID or card number.

A formula's values (`formulas`) follow the cell's shown value, tab-separated,
with the same cell's location, whether the cell has a cached value or not (a
workbook that openpyxl wrote has none): only a value equal to the shown one is
left out. A value the shown one merely contains is kept, since it may not stand
there as it does alone: "99"&"11010519491231002X" shows "9911010519491231002X",
where the ID is glued to "99" and is not found. Where a match stands alone is
each detector's own business, so no rule about neighbours is attempted here.
A shared formula's text is in its first cell only, and its literals are the
same in every cell, so that one cell is where they are scanned.

Text of a sheet outside its cells (headers and footers, data-validation lists)
and the parts read go to the caller's `Remainder`, for the Part of other
document parts.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from rules.findings import Part, Problem, Segment

from .formulas import formula_values
from .item import join_location
from .limits import MAX_SEGMENTS
from .xmlstream import attribute, or_problem, parse_part, parse_xml

if TYPE_CHECKING:
    from .item import Item
    from .ooxml_parts import Remainder
    from .walk import Walk

_WORKBOOK = "xl/workbook.xml"
_WORKBOOK_RELS = "xl/_rels/workbook.xml.rels"
_SHARED_STRINGS = "xl/sharedStrings.xml"
_SHEET_FILE = re.compile(r"xl/worksheets/sheet(\d+)\.xml")
_PLAIN_INTEGER = re.compile(r"-?\d+")
_COLUMN = re.compile(r"[A-Za-z]+")
_HEADER_FOOTER = frozenset(
    {"oddHeader", "oddFooter", "evenHeader", "evenFooter", "firstHeader", "firstFooter"}
)
# Codes in header/footer text: sections (&L &C &R), fields (&P &D …), fonts
# (&"Arial,Bold"), sizes (&12), colours (&KFF0000): "&R" or "&12" before an ID
# would glue to it.
_HEADER_CODE = re.compile(r'&(?:"[^"]*"|K[0-9A-Fa-f]{6}|K\d\d[+-]\d{3}|\d+|.)')


def number_text(value: str) -> str:
    """The cell's number as text; see the module docstring."""
    if _PLAIN_INTEGER.fullmatch(value):
        return value  # digits written out by the producer are in the file as such
    try:
        number = float(value)
    except ValueError:
        return value
    if number.is_integer() and abs(number) < 1e15:
        return str(int(number))
    return repr(number)


def column_letters(index: int) -> str:
    """0 -> 'A', 25 -> 'Z', 26 -> 'AA'."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def column_index(letters: str) -> int:
    index = 0
    for ch in letters.upper():
        index = index * 26 + ord(ch) - 64
    return index - 1


def _sheet_list(read: Callable[[str], bytes], names: list[str], walk: Walk):
    """[(sheet name, part path)] in workbook order, and the shared strings path."""
    sheets: list[tuple[str, str]] = []
    targets: dict[str, str] = {}
    shared = _SHARED_STRINGS

    def on_sheet(name: str, attrs: dict[str, str]) -> None:
        if name == "sheet":
            sheets.append((attrs.get("name", ""), attribute(attrs, "id")))

    def on_relationship(name: str, attrs: dict[str, str]) -> None:
        nonlocal shared
        if name == "Relationship":
            target = attrs.get("Target", "")
            path = target[1:] if target.startswith("/") else posixpath.normpath("xl/" + target)
            targets[attrs.get("Id", "")] = path
            if attrs.get("Type", "").endswith("/sharedStrings"):
                shared = path

    ignore = lambda *_: None  # noqa: E731
    parse_xml(read(_WORKBOOK), _WORKBOOK, walk.budget, on_sheet, ignore, ignore)
    if _WORKBOOK_RELS in names:
        parse_xml(
            read(_WORKBOOK_RELS), _WORKBOOK_RELS, walk.budget, on_relationship, ignore, ignore
        )
    resolved = [(sheet, targets.get(rid, "")) for sheet, rid in sheets]
    if not any(path in names for _, path in resolved):  # no usable relationships
        found = sorted((int(m[1]), n) for n in names if (m := _SHEET_FILE.fullmatch(n)))
        resolved = [(f"Sheet{number}", path) for number, path in found]
    return resolved, shared


class _SharedStrings:
    """<si> items; phonetic guides (<rPh>) are not part of the displayed text."""

    def __init__(self) -> None:
        self.strings: list[str] = []
        self._item: list[str] | None = None
        self._in_text = False
        self._phonetic = 0

    def start(self, name: str, attrs: dict[str, str]) -> None:
        if name == "si":
            self._item = []
        elif name == "rPh":
            self._phonetic += 1
        elif name == "t":
            self._in_text = not self._phonetic

    def end(self, name: str) -> None:
        if name == "si" and self._item is not None:
            self.strings.append("".join(self._item))
            self._item = None
        elif name == "rPh":
            self._phonetic -= 1
        elif name == "t":
            self._in_text = False

    def text(self, chars: str) -> None:
        if self._in_text and self._item is not None:
            self._item.append(chars)


class _SheetText:
    """Builds a sheet's text and a Segment per non-empty cell."""

    def __init__(self, shared: list[str], location_of: Callable[[str], str]) -> None:
        self.shared = shared
        self.location_of = location_of
        self.pieces: list[str] = []
        self.segments: list[Segment] = []
        self._length = 0
        self._row_number = 0
        self._row: list[tuple[str, str]] = []
        self._ref = self._type = ""
        self._value: list[str] = []
        self._inline: list[str] = []
        self._formula: list[str] = []
        self._capture: list[str] | None = None
        self._phonetic = 0
        self.outside: list[tuple[str, str]] = []  # (element, text) outside <sheetData>
        self._in_cells = False
        self._element = ""
        self._outside: list[str] = []

    def start(self, name: str, attrs: dict[str, str]) -> None:
        if name == "row":
            r = attrs.get("r", "")
            self._row_number = int(r) if r.isdigit() else self._row_number + 1
            self._row, self._ref = [], ""
        elif name == "c":
            # Cells usually carry their reference; one without follows the previous cell.
            ref = attrs.get("r", "")
            if not ref:
                m = _COLUMN.match(self._ref)
                column = column_index(m.group()) + 1 if m else 0
                ref = f"{column_letters(column)}{self._row_number}"
            self._ref = ref
            self._type = attrs.get("t", "n")
            self._value, self._inline, self._formula = [], [], []
        elif name == "v":
            self._capture = self._value
        elif name == "rPh":
            self._phonetic += 1
        elif name == "t" and not self._phonetic:
            self._capture = self._inline
        elif name == "f" and self._in_cells:
            self._capture = self._formula
        elif name == "sheetData":
            self._in_cells = True
        elif not self._in_cells:
            self._end_outside()
            self._element = name

    def end(self, name: str) -> None:
        if name in ("v", "t") or (name == "f" and self._in_cells):
            self._capture = None
        elif name == "rPh":
            self._phonetic -= 1
        elif name == "c":
            shown = self._shown()
            if shown:
                self._row.append((self._ref, shown))
            if self._formula:
                for value in formula_values("".join(self._formula)):
                    if value != shown:  # see the module docstring
                        self._row.append((self._ref, value))
        elif name == "row":
            self._emit_row()
        elif name == "sheetData":
            self._in_cells = False
        elif not self._in_cells:
            self._end_outside()

    def text(self, chars: str) -> None:
        if self._capture is not None:
            self._capture.append(chars)
        elif not self._in_cells:
            self._outside.append(chars)

    def _end_outside(self) -> None:
        text = "".join(self._outside).strip()
        self._outside = []
        if not text:
            return
        if self._element in _HEADER_FOOTER:
            text = _HEADER_CODE.sub(lambda m: "&" if m[0] == "&&" else " ", text).strip()
        self.outside.append((self._element, text))

    def _shown(self) -> str:
        value = "".join(self._value).strip()
        kind = self._type
        if kind == "s":
            index = int(value) if value.isdigit() else -1
            return self.shared[index] if 0 <= index < len(self.shared) else ""
        if kind == "inlineStr":
            return "".join(self._inline)
        if kind == "b":
            return {"1": "TRUE", "0": "FALSE"}.get(value, value)
        if kind in ("str", "e", "d"):
            return value
        return number_text(value)

    def _emit_row(self) -> None:
        for i, (ref, shown) in enumerate(self._row):
            sep = "\t" if i else ("\n" if self.pieces else "")
            self.pieces.append(sep)
            self._length += len(sep)
            if len(self.segments) < MAX_SEGMENTS:
                self.segments.append(Segment(self._length, self.location_of(ref)))
            elif len(self.segments) == MAX_SEGMENTS:  # the rest: only the sheet is named
                self.segments.append(Segment(self._length, self.location_of("")))
            self.pieces.append(shown)
            self._length += len(shown)
        self._row = []


def extract_workbook(
    read: Callable[[str], bytes], names: list[str], item: Item, walk: Walk, rest: Remainder
) -> Iterator[Part | Problem]:
    sheets, shared_path = _sheet_list(read, names, walk)
    shared = _SharedStrings()
    if shared_path in names:
        rest.done.add(shared_path)
        parse_xml(
            read(shared_path), shared_path, walk.budget, shared.start, shared.end, shared.text
        )
    for sheet, path in sheets:
        if path not in names:
            continue
        rest.done.add(path)
        location = item.at(sheet)
        builder = _SheetText(
            shared.strings, lambda ref, s=sheet: item.at(f"{s}!{ref}" if ref else s)
        )
        problem = or_problem(location, parse_part, read, path, path, walk.budget, builder)
        if problem is not None:
            yield problem
            continue
        rest.found += [(text, join_location(location, at)) for at, text in builder.outside]
        text = "".join(builder.pieces)
        if text:
            yield Part(location, text, tuple(builder.segments))
