"""PDF via pypdf: the text layer per page, and what a reader shows elsewhere or not
at all — annotations, form fields (AcroForm and XFA), the document information
dictionary, XMP metadata, page text of earlier revisions (`pdf_revisions`) —
and embedded files, extracted in turn.

pypdf bounds its own stream decompression and form traversal (pypdf Configuration
limits); pages are read one by one so the time budget is checked between them.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from pypdf import PdfReader
from pypdf.errors import PyPdfError
from pypdf.generic import ArrayObject, ByteStringObject, DictionaryObject, PdfObject, StreamObject

from rules.findings import ENCRYPTED_ARCHIVE, UNINSPECTABLE, Part, Problem

from .charset import decode_text
from .item import join_location
from .limits import ExtractionError
from .names import names_part
from .pdf_revisions import earlier_pages

if TYPE_CHECKING:
    from pypdf import PageObject

    from .item import Item
    from .walk import Walk

# pypdf logs every oddity of a malformed file, sometimes quoting the file: not in our logs.
logging.getLogger("pypdf").setLevel(logging.CRITICAL)

Entries = list[tuple[str, str]]  # (label, text): a line "label: text" located at the label
# /RC is the rich-text twin of /Contents: read only when there is no plain one.
_ANNOTATION_KEYS = ("/T", "/Subj", "/Contents")
_FIELD_KEYS = ("/V", "/DV", "/RV", "/Opt")  # value, default, rich value, choices


def _open(data: bytes) -> PdfReader | None:
    """The reader, or None if the PDF needs a password (the empty one is tried)."""
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            return None
        return reader
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as exc:
        raise ExtractionError(f"corrupt PDF ({type(exc).__name__})") from None
    except NotImplementedError:  # an encryption scheme pypdf cannot open
        return None


def extract_pdf(data: bytes, item: Item, walk: Walk) -> Iterator[Part | Problem]:
    reader = _open(data)
    if reader is None:
        yield Problem(ENCRYPTED_ARCHIVE, item.location, "encrypted PDF (password required)")
        return
    try:
        pages = list(reader.pages)
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ExtractionError(f"corrupt PDF page tree ({type(exc).__name__})") from None
    newest: set[str] = set()
    for number, page in enumerate(pages, start=1):
        walk.budget.check()
        location = item.at(f"page {number}")
        try:
            text = page.extract_text()
        except Exception as exc:  # pypdf raises many kinds on a broken page; the others go on
            yield Problem(
                UNINSPECTABLE, location, f"page {number} unreadable ({type(exc).__name__})"
            )
        else:
            newest.add(text)
            if text.strip():
                yield Part(location, text)
        yield from _annotations(page, number, item, walk)
    yield from earlier_pages(data, pages, newest, item, walk)
    for what, read in (
        ("document properties", _info),
        ("XMP metadata", _xmp),
        ("form fields", _fields),
        ("XFA form", _xfa),
    ):
        walk.budget.check()
        yield from _piece(item.at(what), what, lambda read=read: read(reader))
    yield from _attachments(reader, item, walk)


def _piece(location: str, what: str, read: Callable[[], Entries]) -> Iterator[Part | Problem]:
    """A Part of the entries `read` returns, or a Problem if the structure is broken."""
    try:
        entries = read()
    except ExtractionError:  # the walk's budget: not this piece's fault
        raise
    except Exception as exc:  # a broken dictionary must not hide what was already read
        yield Problem(UNINSPECTABLE, location, f"{what} unreadable ({type(exc).__name__})")
        return
    lines = [
        (f"{label}: {text}" if label else text, join_location(location, label))
        for label, text in entries
    ]
    if part := names_part(location, lines):
        yield part


def _resolve(value: object) -> object:
    return value.get_object() if isinstance(value, PdfObject) else value


def _strings(value: object, depth: int = 0) -> list[str]:
    """The text in a PDF value: strings, text streams, arrays of them (choice pairs)."""
    value = _resolve(value)
    if isinstance(value, ByteStringObject):  # not PDFDocEncoding nor UTF-16: a local charset
        return [decode_text(bytes(value))]
    if isinstance(value, str):
        return [value]
    if isinstance(value, StreamObject):
        return [decode_text(value.get_data())]
    if isinstance(value, ArrayObject) and depth < 2:
        return [text for element in value for text in _strings(element, depth + 1)]
    return []


def _joined(texts: list[str]) -> str:
    return "\n".join(dict.fromkeys(text for text in texts if text.strip()))


def _info(reader: PdfReader) -> Entries:
    info = reader.metadata
    return [(str(key).lstrip("/"), _joined(_strings(value))) for key, value in (info or {}).items()]


def _xmp(reader: PdfReader) -> Entries:
    """The raw packet: every namespace, custom ones too, without trusting its XML."""
    try:
        xmp = reader.xmp_metadata  # knows when the packet is exempt from encryption
        stream = xmp.stream if xmp else None
    except PyPdfError:  # XML pypdf will not parse is still text to scan
        stream = reader.root_object.get("/Metadata")
    return [("", _joined(_strings(stream)))] if stream is not None else []


def _fields(reader: PdfReader) -> Entries:
    fields = reader.get_fields() or {}
    return [
        (str(name), _joined([t for key in _FIELD_KEYS for t in _strings(field.get(key))]))
        for name, field in fields.items()
    ]


def _xfa(reader: PdfReader) -> Entries:
    """XFA packets: the filled-in data, and the whole content of a dynamic form."""
    return [(str(tag), decode_text(data)) for tag, data in (reader.xfa or {}).items()]


def _annotations(page: PageObject, number: int, item: Item, walk: Walk) -> Iterator[Part | Problem]:
    files: list[tuple[str, StreamObject]] = []
    what = f"page {number} annotations"
    yield from _piece(item.at(what), what, lambda: _notes(page, files, walk))
    for name, stream in files:
        walk.budget.count_file()
        location = item.at(f"page {number} attachment {name}")
        try:
            content = stream.get_data()
        except Exception as exc:  # an unknown filter, a broken stream: the notes were read
            yield Problem(UNINSPECTABLE, location, f"attachment unreadable ({type(exc).__name__})")
            continue
        yield from walk.nested(item, content, name, location=location)


def _notes(page: PageObject, files: list[tuple[str, StreamObject]], walk: Walk) -> Entries:
    """(subtype and index, its texts) per annotation; embedded files go to `files`."""
    entries = []
    for index, ref in enumerate(page.annotations or (), start=1):
        walk.budget.check()
        note = _resolve(ref)
        if not isinstance(note, DictionaryObject):
            continue
        subtype = str(_resolve(note.get("/Subtype", ""))).lstrip("/")
        if subtype == "Widget":  # a form field's widget: read with the form
            continue
        keys = _ANNOTATION_KEYS if "/Contents" in note else (*_ANNOTATION_KEYS, "/RC")
        texts = [text for key in keys for text in _strings(note.get(key))]
        if isinstance(action := _resolve(note.get("/A")), DictionaryObject):
            texts += _strings(action.get("/URI"))  # a link's target is not in the text layer
        texts += _attached(note.get("/FS"), files)
        if text := _joined(texts):
            entries.append((f"{subtype or 'annotation'} {index}", text))
    return entries


def _attached(spec: object, files: list[tuple[str, StreamObject]]) -> list[str]:
    """The names in a FileAttachment's file specification; its embedded file to `files`
    (reader.attachments lists only the document's EmbeddedFiles name tree)."""
    spec = _resolve(spec)
    if not isinstance(spec, DictionaryObject):
        return _strings(spec)  # a bare file name, nothing embedded
    names = [text for key in ("/UF", "/F") for text in _strings(spec.get(key))]
    embedded = _resolve(spec.get("/EF"))
    if isinstance(embedded, DictionaryObject):
        stream = _resolve(embedded.get("/F") or embedded.get("/UF"))
        if isinstance(stream, StreamObject):
            files.append((names[0] if names else "attachment", stream))
    return names


def _attachments(reader: PdfReader, item: Item, walk: Walk) -> Iterator[Part | Problem]:
    try:
        attachments = reader.attachments
        files = [(name, content) for name, contents in attachments.items() for content in contents]
    except Exception as exc:  # a broken name tree must not hide the pages already read
        yield Problem(
            UNINSPECTABLE, item.location, f"PDF attachments unreadable ({type(exc).__name__})"
        )
        return
    named = [(name, item.at(f"attachment {name}")) for name in dict.fromkeys(n for n, _ in files)]
    if names := names_part(item.at("attachment names"), named):
        yield names  # a name alone can disclose: 张三_<ID>.csv
    for name, content in files:
        walk.budget.count_file()
        yield from walk.nested(item, content, name, location=item.at(f"attachment {name}"))
