"""Legacy Office files (.doc, .xls, .ppt and other OLE containers), best effort.

No parsing of the binary formats: the text streams are scanned for runs of
UTF-16LE text (how Word 97+ and Excel store most strings) and of 8-bit
ASCII/GBK text (older Chinese files). Good enough to find numbers and names.
The property set streams (title, author, comments, custom properties) are
parsed ([MS-OLEPS]): Word does not show them in the document.
"""

from __future__ import annotations

import bisect
import contextlib
import io
import re
import struct
import uuid
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import olefile

from rules.findings import ENCRYPTED_ARCHIVE, UNINSPECTABLE, Part, Problem

from . import sniff
from .charset import codec_for, decode_name, decode_text
from .compress import DEFLATE, decompress
from .limits import BudgetExhausted, ExtractionError, size_text
from .names import labelled_part, names_part

if TYPE_CHECKING:
    from .item import Item
    from .walk import Walk

# Office 2007+ files saved with a password are OLE containers holding these.
_ENCRYPTED_PACKAGE = ("EncryptionInfo", "EncryptedPackage")
_TEXT_STREAMS = ("WordDocument", "Workbook", "Book", "PowerPoint Document")
_PROPERTY_STREAMS = ("\x05SummaryInformation", "\x05DocumentSummaryInformation")
_WORD_ENCRYPTED = 0x0100  # FIB flag fEncrypted (offset 0x0A of WordDocument)
_XLS_FILEPASS, _XLS_BOUNDSHEET, _XLS_EOF = 0x002F, 0x0085, 0x000A
# Printable ASCII and Latin-1, punctuation, CJK punctuation and ideographs, full-width forms.
_UTF16_RUN = re.compile(
    r"[\t\n\r\x20-\x7e\u00a0-\u00ff\u2010-\u2027\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]{4,}"
)
_BYTE_RUN = re.compile(rb"(?:[\t\n\r\x20-\x7e]|[\x81-\xfe][\x40-\x7e\x80-\xfe]){6,}")


def _word_encrypted(stream: bytes) -> bool:
    return len(stream) >= 12 and bool(int.from_bytes(stream[10:12], "little") & _WORD_ENCRYPTED)


def _excel_encrypted(stream: bytes) -> bool:
    """A FILEPASS record among the first records of the workbook globals."""
    pos = 0
    for _ in range(64):
        if pos + 4 > len(stream):
            return False
        kind = int.from_bytes(stream[pos : pos + 2], "little")
        size = int.from_bytes(stream[pos + 2 : pos + 4], "little")
        if kind == _XLS_FILEPASS:
            return True
        if kind in (_XLS_BOUNDSHEET, _XLS_EOF):
            return False
        pos += 4 + size
    return False


def text_runs(stream: bytes | bytearray) -> list[str]:
    """Readable runs: UTF-16LE at both byte alignments, then 8-bit text outside those."""
    runs: list[str] = []
    for align in (0, 1):
        body = stream[align : len(stream) - (len(stream) - align) % 2]
        runs += _UTF16_RUN.findall(body.decode("utf-16-le", errors="replace"))
    runs += [m.decode("gb18030", errors="replace") for m in _BYTE_RUN.findall(stream)]
    return [run for run in runs if run.strip()]


_OLE_ERRORS = (OSError, ValueError, IndexError, KeyError, TypeError)
OlePath = tuple[str, ...]  # a stream or storage from the root: ("ObjectPool", "_123", "CONTENTS")


class _Compound:
    """An open compound file, its streams listed once: their directory entries by path,
    and the paths sorted, so that the streams below a storage are one run of them."""

    def __init__(self, ole: olefile.OleFileIO, walk: Walk) -> None:
        self.ole, self.walk = ole, walk
        self.entries: dict[OlePath, olefile.OleDirectoryEntry] = {}
        storages: list[tuple[OlePath, olefile.OleDirectoryEntry]] = [((), ole.root)]
        while storages:
            walk.budget.check()
            path, node = storages.pop()
            for kid in node.kids:
                at = (*path, kid.name)
                if kid.entry_type == olefile.STGTY_STORAGE:
                    storages.append((at, kid))
                elif kid.entry_type == olefile.STGTY_STREAM:
                    self.entries[at] = kid
        self.paths = sorted(self.entries)

    def below(self, base: OlePath) -> list[OlePath]:
        """The streams below storage `base`, as paths relative to it."""
        paths, n, out = self.paths, len(base), []
        for i in range(bisect.bisect_left(paths, base), len(paths)):
            if paths[i][:n] != base:
                break
            out.append(paths[i][n:])
        return out

    def read(self, path: OlePath) -> bytes:
        budget, limit = self.walk.budget, self.walk.limits.max_member_bytes
        budget.check()
        entry = self.entries[path]
        if entry.size > limit:
            raise ExtractionError(f"stream {'/'.join(path)} is over the {size_text(limit)} limit")
        # What openstream does, without its search by name through every sibling (an
        # ObjectPool of thousands of objects made that quadratic). _open is olefile's own
        # (0.47); should a release drop it, openstream still gives the same bytes.
        opener = getattr(self.ole, "_open", None)
        if opener is not None:
            data = opener(entry.isectStart, entry.size).read()
        else:  # pragma: no cover - olefile 0.47 has _open
            data = self.ole.openstream(list(path)).read()
        # Directory entries may share one sector chain: every read is counted, so that
        # N entries of one stream cannot cost N times the file.
        budget.spend_expanded(len(data))
        return data


def _encrypted_stream(name: str, stream: bytes) -> bool:
    if name == "WordDocument":
        return _word_encrypted(stream)
    return name in ("Workbook", "Book") and _excel_encrypted(stream)


def extract_ole(data: bytes, item: Item, walk: Walk) -> Iterator[Part | Problem]:
    try:
        ole = olefile.OleFileIO(io.BytesIO(data))
    except _OLE_ERRORS as exc:
        raise ExtractionError(f"corrupt OLE file ({type(exc).__name__})") from None
    with ole:
        yield from _document(_Compound(ole, walk), (), item)


@dataclass(frozen=True, slots=True)
class _Contents:
    runs: list[str]  # of the streams that hold the text
    properties: list[tuple[str, str]]  # (name, text) of the property set streams
    objects: list[_Object]  # embedded in it
    ppt: tuple[bytes, array[int]] | None  # the PowerPoint stream and its objects' records


def _document(cf: _Compound, base: OlePath, item: Item) -> Iterator[Part | Problem]:
    """The document in storage `base` (() for the file itself): its text, its
    properties, then the files embedded in it."""
    try:
        contents = _contents(cf, base)
    except _OLE_ERRORS as exc:
        raise ExtractionError(f"corrupt OLE file ({type(exc).__name__})") from None
    if contents is None:
        yield Problem(ENCRYPTED_ARCHIVE, item.location, "password-protected Office document")
        return
    if contents.runs:
        yield Part(item.at("legacy doc text"), "\n".join(contents.runs))
    if part := labelled_part(item.at("document properties"), contents.properties):
        yield part
    yield from _embedded(cf, contents.objects, item)
    if contents.ppt:
        yield from _ppt_objects(*contents.ppt, item, cf.walk)


def _contents(cf: _Compound, base: OlePath) -> _Contents | None:
    """What the document at `base` holds; None when it is password-protected. Its
    streams are read one at a time, the objects' not at all (each when extracted)."""
    inside = cf.below(base)
    direct = {p[0].lower(): p[0] for p in inside if len(p) == 1}
    if all(name.lower() in direct for name in _ENCRYPTED_PACKAGE):
        return None
    names = [n for n in _TEXT_STREAMS if n.lower() in direct]
    objects, taken = _objects(base, inside, bool(names), cf.walk)
    if names:
        streams = [(n, (direct[n.lower()],)) for n in names]
    else:  # an unknown container: every stream but the ones read as embedded files
        streams = [
            ("/".join(p), p)
            for p in inside
            if p not in taken and not (len(p) == 1 and p[0] in _PROPERTY_STREAMS)
        ]
    runs: list[str] = []
    ppt = None
    for name, path in streams:
        stream = cf.read((*base, *path))
        if _encrypted_stream(name, stream):
            return None
        if name == _PPT_STREAM:
            rest, records = _ppt_split(stream, cf.walk)
            ppt = (stream, records) if records else None
            stream = rest
        runs += text_runs(stream)
    properties = [
        found
        for n in _PROPERTY_STREAMS
        if n.lower() in direct
        for found in property_strings(cf.read((*base, direct[n.lower()])))
    ]
    return _Contents(runs, properties, objects, ppt)


# --- embedded objects ([MS-OLEDS]) ----------------------------------------------------
#
# An object embedded in a document (ObjectPool/_1234 in .doc, MBD0012ABCD in .xls, the
# file itself for an OOXML oleObject1.bin) is a storage holding its server's data: an
# OLE Package (\x01Ole10Native: a whole file with its name and path), an OOXML document
# (Package), the server's file (CONTENTS: Acrobat's PDF), or a legacy document's own
# streams (WordDocument …). Each is read as the file it is, under "embedded › NAME";
# data of no format we read, as runs of text there.

_PPT_STREAM = "PowerPoint Document"
_NATIVE, _PACKAGE, _CONTENTS = "\x01ole10native", "package", "contents"  # lower-cased
_PAYLOADS = (_NATIVE, _PACKAGE, _CONTENTS)
_DOCUMENT_MARKS = frozenset(n.lower() for n in _TEXT_STREAMS)
_MARKS = frozenset((*_PAYLOADS, *_DOCUMENT_MARKS))
# Names Office gives the storages of objects (Word, Excel, Outlook): no user text.
_GENERATED = re.compile(
    r"_\d{1,10}|MBD[0-9A-F]{8}|ObjectPool|__substg1\.0_[0-9A-F]{8}|__attach_version1\.0_#[0-9A-F]{8}",
    re.IGNORECASE,
)
_MAX_NAME = 32768  # bytes of a label or path in a package; Windows paths are shorter
_PPT_EXTERNAL_OLE_STORAGE = 0x1011  # ExOleObjStg record ([MS-PPT] 2.10.34)
_CFB_HEADER = 512  # bytes: anything shorter is no compound file


@dataclass(frozen=True, slots=True)
class _Object:
    label: str  # under "embedded › "
    path: OlePath  # its payload stream, or its storage when a legacy document
    storage: OlePath  # its storage, from the document holding it
    mark: str = ""  # the payload stream's name, lower-cased; "" for a legacy document


@dataclass(frozen=True, slots=True)
class _Payload:
    """What a payload stream holds."""

    label: str  # under "embedded › "
    data: bytes | None = None  # its file
    name: str = ""  # the file's own name (for sniffing)
    names: tuple[tuple[str, str], ...] = ()  # (text, what) of its label and paths
    problem: str = ""  # why its file cannot be read
    raw: bool = False  # data of no format we read: scanned as runs of text


def _objects(
    base: OlePath, inside: list[OlePath], is_document: bool, walk: Walk
) -> tuple[list[_Object], set[OlePath]]:
    """The objects below `base` but in no legacy document below it (that document's
    own), with `base`'s own file when it is not a document but an object itself (as an
    oleObject1.bin is); and the paths (relative to `base`) of the streams they take.
    An object's payload hides nothing: objects in its storage are objects too."""
    storages: dict[OlePath, dict[str, str]] = {}  # storage -> {lower-cased name: name}
    for p in inside:
        storages.setdefault(p[:-1], {})[p[-1].lower()] = p[-1]
    marked = sorted(
        s
        for s, names in storages.items()
        if (s or not is_document) and not _MARKS.isdisjoint(names)
    )
    documents = {s for s in marked if s and not _DOCUMENT_MARKS.isdisjoint(storages[s])}
    objects: list[_Object] = []
    taken: set[OlePath] = set()
    for n, s in enumerate(marked):
        if n % 1024 == 0:
            walk.budget.check()
        if _in_any(s, documents):
            continue
        names = storages[s]
        if s in documents:
            objects.append(_Object(s[-1], (*base, *s), s))
            continue
        for mark in _PAYLOADS:
            if mark in names:
                stream = (*s, names[mark])
                taken.add(stream)
                label = s[-1] if s else names[mark].lstrip("\x01")
                objects.append(_Object(label, (*base, *stream), s, mark))
    if documents and not is_document:  # what the container reads: none of theirs
        taken.update(p for p in inside if _in_any(p, documents))
    return objects, taken


def _in_any(path: OlePath, storages: set[OlePath]) -> bool:
    """Whether one of `storages` holds `path`, at any depth."""
    return any(path[:i] in storages for i in range(1, len(path)))


def _payload(mark: str, data: bytes, label: str) -> _Payload:
    """The file in one payload stream."""
    if mark == _PACKAGE:  # an OOXML document: always a zip
        return _Payload(label, data=data)
    if mark == _NATIVE:
        package = _package(data)
        if package is not None:
            return package
        data = data[4 : 4 + _u32(data, 0)]  # another OLE 1 server's native data
    return _Payload(label, data=data, raw=sniff.sniff(data[:8192]) == sniff.BINARY)


class _Short(Exception):
    """A length that points past the end of the data."""


class _Reader:
    """Reads little-endian fields in turn; any that would run past the end raises _Short."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def left(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        if n > self.left():
            raise _Short
        self.pos += n
        return self.data[self.pos - n : self.pos]

    def number(self, size: int) -> int:
        return int.from_bytes(self.take(size), "little")

    def cstring(self) -> str:
        end = self.data.find(b"\0", self.pos, self.pos + _MAX_NAME)
        if end < 0:
            raise _Short
        return decode_name(self.take(end + 1 - self.pos)[:-1])

    def utf16(self) -> str:
        return self.take(2 * self.number(4)).decode("utf-16-le", "replace").rstrip("\0")


def _package(native: bytes) -> _Payload | None:
    """An OLE Package: the Ole10Native stream of the Packager, which wraps any file.

    Its size, 2, the label, the original path, 0, 3 (a file; 1: a link), the size
    and text of the temp path the packager copied the file to, the file's size and
    bytes; newer packagers then add the temp path, label and path in UTF-16.
    None: not a package (another OLE 1 server's data).
    """
    reader = _Reader(native[4 : 4 + _u32(native, 0)])
    try:
        if reader.number(2) != 2:
            return None
        label, path = reader.cstring(), reader.cstring()
        if reader.number(2) != 0 or (kind := reader.number(2)) not in (1, 3):
            return None
    except _Short:
        return None
    temp, data, problem = "", None, ""
    try:
        temp = decode_name(reader.take(reader.number(4)).split(b"\0", 1)[0])
        size = reader.number(4)
        if size > reader.left():
            problem = (
                f"embedded package is truncated: declares {size_text(size)}, "
                f"holds {size_text(reader.left())}"
            )
        data = reader.take(size)
    except _Short:
        if kind == 3 and not problem:  # a file is promised (1, a link, has none)
            problem = "embedded package is truncated"
    if data is not None:
        with contextlib.suppress(_Short):  # only newer packagers write them, exact
            wide = reader.utf16(), reader.utf16(), reader.utf16()
            temp, label, path = (w or a for w, a in zip(wide, (temp, label, path), strict=True))
    name = sniff.base_name(path) or sniff.base_name(temp) or label
    label = label or name or "package"
    candidates = [(label, ""), (path, " (original path)")]
    if sniff.base_name(temp) != sniff.base_name(path):  # else only the packager's folder is new
        candidates.append((temp, " (temp path)"))
    return _Payload(label, data=data, name=name, names=_distinct(candidates), problem=problem)


def _distinct(candidates: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """Each text once; one that another contains (a label in its path) is left to it."""
    texts = [text for text, _ in candidates]
    return tuple(
        (text, what)
        for i, (text, what) in enumerate(candidates)
        if text and text not in texts[:i] and not any(text in t and text != t for t in texts)
    )


def _embedded(cf: _Compound, objects: list[_Object], item: Item) -> Iterator[Part | Problem]:
    """Each object in turn, its payload read only then: one object's bytes at a time."""
    named: list[tuple[str, str]] = []
    seen: set[OlePath] = set()  # storages whose names are already in `named`
    for obj in objects:
        cf.walk.budget.count_file()
        yield from _object_parts(cf, obj, item, named, seen)
    if part := names_part(item.at("embedded names"), named):
        yield part


def _object_parts(
    cf: _Compound, obj: _Object, item: Item, named: list[tuple[str, str]], seen: set[OlePath]
) -> Iterator[Part | Problem]:
    walk = cf.walk
    if not obj.mark:  # a legacy document, read in its own storage
        location = item.at(f"embedded › {obj.label}")
        _storage_names(obj.storage, location, named, seen)
        yield from walk.nested_parsed(item, location, lambda it: _document(cf, obj.path, it))
        return
    try:
        found = _payload(obj.mark, cf.read(obj.path), obj.label)
    except BudgetExhausted:
        raise
    except ExtractionError as exc:  # over a limit: this object only
        found = _Payload(obj.label, problem=exc.reason)
    except _OLE_ERRORS as exc:  # a broken sector chain: this object only
        found = _Payload(obj.label, problem=f"corrupt OLE stream ({type(exc).__name__})")
    location = item.at(f"embedded › {found.label}")
    _storage_names(obj.storage, location, named, seen)
    named += [(text, f"{location}{what}") for text, what in found.names]
    if found.problem:
        yield Problem(UNINSPECTABLE, location, found.problem)
    elif found.data is not None:
        yield from _file_parts(item, found.data, found.name, location, walk, raw=found.raw)


def _storage_names(
    storage: OlePath, location: str, named: list[tuple[str, str]], seen: set[OlePath]
) -> None:
    """The names of the storages around an object, each once, but those Office
    generates: anyone else's may be the user's text, like a package's label."""
    for i in range(1, len(storage) + 1):
        if storage[:i] not in seen and not _GENERATED.fullmatch(storage[i - 1]):
            seen.add(storage[:i])
            named.append((storage[i - 1], location))


def _file_parts(
    item: Item, data: bytes, name: str, location: str, walk: Walk, *, raw: bool
) -> Iterator[Part | Problem]:
    if not raw:
        yield from walk.nested(item, data, name, location=location)
    elif runs := text_runs(data):  # as an unknown container's streams are read
        yield Part(location, "\n".join(runs))


def _ppt_split(stream: bytes, walk: Walk) -> tuple[bytes | bytearray, array[int]]:
    """PowerPoint keeps each embedded object as a whole compound file, often
    zlib-compressed, in an ExOleObjStg record among the stream's top-level records:
    (the stream without them, the offsets of those records). Their bytes are the
    objects' to read, not runs of the slides' text; a record holding no compound
    file stays with the text."""
    records = array("Q")
    pos = n = 0
    while pos + 8 <= len(stream):
        n += 1
        if n % 4096 == 0:  # a stream of empty records is millions of them
            walk.budget.check()
        head, kind, size = struct.unpack_from("<HHI", stream, pos)
        if kind == _PPT_EXTERNAL_OLE_STORAGE and _storage_record(stream, pos, head, size):
            records.append(pos)
        pos += 8 + size
    if not records:  # the usual deck: no copy
        return stream, records
    rest, start = bytearray(), 0
    with memoryview(stream) as view:
        for pos in records:
            rest += view[start:pos]
            start = pos + 8 + _u32(stream, pos + 4)
        rest += view[start:]
    return rest, records


def _storage_record(stream: bytes, pos: int, head: int, size: int) -> bool:
    """Whether the ExOleObjStg record at `pos` holds a compound file, compressed or not."""
    if head >> 4 == 1:  # recInstance 1: zlib-compressed
        return True
    return size >= _CFB_HEADER and sniff.sniff(stream[pos + 8 : pos + 16]) == sniff.OLE


def _ppt_objects(
    stream: bytes, records: array[int], item: Item, walk: Walk
) -> Iterator[Part | Problem]:
    for n, pos in enumerate(records, start=1):
        walk.budget.count_file()
        location = item.at(f"embedded › object {n}")
        head, _, size = struct.unpack_from("<HHI", stream, pos)
        body = stream[pos + 8 : pos + 8 + size]
        if head >> 4 == 1:  # its decompressed size, then zlib data
            try:
                body = decompress(body[4:], DEFLATE, f"embedded object {n}", walk.budget).content
            except BudgetExhausted:
                raise
            except ExtractionError as exc:
                yield Problem(UNINSPECTABLE, location, exc.reason)
                continue
        raw = sniff.sniff(body[:8192]) == sniff.BINARY
        yield from _file_parts(item, body, "", location, walk, raw=raw)


# --- property set streams ([MS-OLEPS]) ----------------------------------------------

_VT_BSTR, _VT_VARIANT, _VT_LPSTR, _VT_LPWSTR, _VT_VECTOR = 8, 12, 30, 31, 0x1000
_CP_UNICODE = 1200
# Sizes of the fixed-size types met in variant vectors (heading pairs: string, count).
_FIXED = {2: 4, 3: 4, 4: 4, 5: 8, 6: 8, 7: 8, 10: 4, 11: 4, 18: 4, 19: 4, 20: 8, 21: 8, 64: 8}
# Names of the standard properties, by format id of the section; index = property id - 1.
_STANDARD = {
    uuid.UUID("f29f85e0-4ff9-1068-ab91-08002b27b3d9"): olefile.OleMetadata.SUMMARY_ATTRIBS,
    uuid.UUID("d5cdd502-2e9c-101b-9397-08002b2cf9ae"): olefile.OleMetadata.DOCSUM_ATTRIBS,
}


def _u32(data: bytes, at: int) -> int:
    """Little-endian; a read past the end (a lying offset) gives 0, never an error."""
    return int.from_bytes(data[at : at + 4], "little")


def property_strings(stream: bytes) -> list[tuple[str, str]]:
    """(name, text) of the string properties of every section of a property set
    stream: the standard ones and the user-defined (custom) ones with their names."""
    out = []
    for n in range(min(_u32(stream, 24), 2)):  # one section, or two (then custom)
        fmtid = uuid.UUID(bytes_le=stream[28 + 20 * n : 44 + 20 * n].ljust(16, b"\0"))
        start = _u32(stream, 44 + 20 * n)
        section = _Section(stream[start : start + _u32(stream, start)])
        out += section.strings(_STANDARD.get(fmtid, []))
    return out


class _Section:
    """One section: (id, offset) pairs, then the values they point at."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        # Every value takes 4 bytes or more: more reads than that means offsets that
        # overlap on purpose, which would cost quadratic time.
        self.steps = len(data) // 4
        count = min(_u32(data, 4), len(data) // 8)
        self.offsets = {_u32(data, 8 + 8 * i): _u32(data, 12 + 8 * i) for i in range(count)}
        at = self.offsets.get(1)  # the codepage, a VT_I2
        self.codepage = int.from_bytes(data[at + 4 : at + 6], "little") if at else 0

    def strings(self, standard: list[str]) -> list[tuple[str, str]]:
        names = self._dictionary(self.offsets[0]) if 0 in self.offsets else {}
        out = []
        for pid, at in self.offsets.items():
            if pid < 2:  # the dictionary and the codepage
                continue
            texts = self._value(at)
            name = names.get(pid) or (
                standard[pid - 1] if pid <= len(standard) else f"property {pid}"
            )
            if texts or pid in names:  # a custom property's name is data too
                out.append((name, "\n".join(texts)))
        return out

    def _dictionary(self, at: int) -> dict[int, str]:
        """Custom property id -> its name."""
        data, unicode, names, pos = self.data, self.codepage == _CP_UNICODE, {}, at + 4
        for _ in range(min(_u32(data, at), self.steps)):
            self.steps -= 1
            pid, size = _u32(data, pos), _u32(data, pos + 4) * (2 if unicode else 1)
            names[pid] = self._decode(data[pos + 8 : pos + 8 + size], self.codepage)
            pos += 8 + (-(-size // 4) * 4 if unicode else size)  # only Unicode names are padded
        return names

    def _value(self, at: int) -> list[str]:
        kind = int.from_bytes(self.data[at : at + 2], "little")
        if not kind & _VT_VECTOR:
            return self._scalar(at + 4, kind)[0]
        texts, pos = [], at + 8
        for _ in range(min(_u32(self.data, at + 4), self.steps)):
            if kind == _VT_VECTOR | _VT_VARIANT:  # each element typed, never a vector itself
                element = int.from_bytes(self.data[pos : pos + 2], "little")
                if element & _VT_VECTOR:
                    break
                found, pos = self._scalar(pos + 4, element)
            else:
                found, pos = self._scalar(pos, kind & ~_VT_VECTOR)
            if not pos:
                break
            texts += found
        return texts

    def _scalar(self, at: int, kind: int) -> tuple[list[str], int]:
        """(texts, end offset) of a value of type `kind` at `at`; end 0 if not understood."""
        if self.steps <= 0:
            return [], 0
        self.steps -= 1
        size = _u32(self.data, at)
        if kind in (_VT_LPSTR, _VT_BSTR):  # bytes in the section's codepage, null included
            text = self._decode(self.data[at + 4 : at + 4 + size], self.codepage)
        elif kind == _VT_LPWSTR:  # size in UTF-16 code units
            size *= 2
            text = self._decode(self.data[at + 4 : at + 4 + size], _CP_UNICODE)
        else:
            return [], (at + _FIXED[kind] if kind in _FIXED else 0)
        end = at + 4 + size
        # Strings are padded to 4 bytes, except 8-bit ones in vectors as Office writes
        # them ([MS-OSHARED] UnalignedLpstr): skip zeros only, as Apache POI does.
        while end % 4 and self.data[end : end + 1] == b"\0":
            end += 1
        return ([text] if text.strip() else []), end

    @staticmethod
    def _decode(raw: bytes, codepage: int) -> str:
        codec = "utf-16-le" if codepage == _CP_UNICODE else codec_for(f"cp{codepage}")
        text = raw.decode(codec, errors="replace") if codec else decode_text(raw)
        return "\n".join(part for part in text.split("\x00") if part.strip())
