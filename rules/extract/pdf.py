"""PDF via pypdf: the text layer per page, and what a reader shows elsewhere or not
at all — annotations, form fields (AcroForm and XFA), the document information
dictionary, XMP metadata, the outline (bookmarks), scripts and what actions open
(URIs, file names), page text of earlier revisions (`pdf_revisions`) — and
embedded files, extracted in turn.

pypdf bounds its own stream decompression and form traversal (pypdf Configuration
limits); pages are read one by one so the time budget is checked between them.
Outlines, action chains and name trees are walked here, without recursion: each
object once per document (their links may loop), at most MAX_OBJECTS per piece.
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
from .limits import ExtractionError
from .names import labelled_part, names_part
from .pdf_revisions import earlier_pages

if TYPE_CHECKING:
    from pypdf import PageObject

    from .item import Item
    from .limits import Budget
    from .walk import Walk

# pypdf logs every oddity of a malformed file, sometimes quoting the file: not in our logs.
logging.getLogger("pypdf").setLevel(logging.CRITICAL)

Entries = list[tuple[str, str]]  # (label, text): a line "label: text" located at the label
# /RC is the rich-text twin of /Contents: read only when there is no plain one.
_ANNOTATION_KEYS = ("/T", "/Subj", "/Contents")
_FIELD_KEYS = ("/V", "/DV", "/RV", "/Opt")  # value, default, rich value, choices
_FILE_KEYS = ("/UF", "/F", "/DOS", "/Mac", "/Unix")  # a file specification's names
# Outline items, actions, tree nodes and their arrays one piece visits: a million
# bookmarks or a chain of actions costs bounded time; past it, a Problem.
MAX_OBJECTS = 200_000  # LaTeX's hyperref writes two per bookmark; seen and budget bound the work
_MAX_FIELD_DEPTH = 32  # parts of a qualified field name (/Parent links may loop)
_END = object()


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
    seen: dict[tuple[str, int], object] = {}  # what the pieces' links reached (`_Reach`)
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
        yield from _annotations(page, number, item, walk, seen)
    yield from earlier_pages(data, pages, newest, item, walk)
    for what, read in (
        ("document properties", _info),
        ("XMP metadata", _xmp),
        ("form fields", _fields),
        ("XFA form", _xfa),
    ):
        walk.budget.check()
        yield from _piece(item.at(what), what, lambda read=read: read(reader))
    yield from _reached(item, "outline", lambda reach: _outline(reader, reach), walk, seen)
    scripts = lambda reach: _scripts(reader, pages, reach)  # noqa: E731
    yield from _reached(item, "javascript", scripts, walk, seen, files_at="action file")
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
    if part := labelled_part(location, entries):
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
    # Tabs: the engine reads a number on across a line break (a value printed over two
    # lines), so two titles or two scripts on two lines could make one ID.
    return "\t".join(dict.fromkeys(text for text in texts if text.strip()))


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


def _annotations(
    page: PageObject, number: int, item: Item, walk: Walk, seen: dict[tuple[str, int], object]
) -> Iterator[Part | Problem]:
    what = f"page {number} annotations"
    read = lambda reach: _notes(page, reach)  # noqa: E731
    yield from _reached(item, what, read, walk, seen, files_at=f"page {number} attachment")


def _notes(page: PageObject, reach: _Reach) -> Entries:
    """(subtype and index, its texts) per annotation; embedded files go to `reach.files`."""
    entries = []
    for index, ref in enumerate(page.annotations or (), start=1):
        reach.budget.check()
        note = _resolve(ref)
        if not isinstance(note, DictionaryObject):
            continue
        subtype = str(_resolve(note.get("/Subtype", ""))).lstrip("/")
        texts = []
        if subtype != "Widget":  # a form field's widget: its texts are read with the form
            keys = _ANNOTATION_KEYS if "/Contents" in note else (*_ANNOTATION_KEYS, "/RC")
            texts = [text for key in keys for text in _strings(note.get(key))]
            texts += _attached(note.get("/FS"), reach.files)
        # A link's target, a button's script: not in the text layer.
        texts += _actions(note.get("/A"), reach) + _additional(note.get("/AA"), reach)
        if text := _joined(texts):
            entries.append((f"{subtype or 'annotation'} {index}", text))
    return entries


def _attached(spec: object, files: list[tuple[str, StreamObject]]) -> list[str]:
    """The names in a FileAttachment's file specification; its embedded file to `files`
    (reader.attachments lists only the document's EmbeddedFiles name tree)."""
    spec = _resolve(spec)
    if not isinstance(spec, DictionaryObject):
        return _strings(spec)  # a bare file name, nothing embedded
    names = [text for key in _FILE_KEYS for text in _strings(spec.get(key))]
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


class _Reach:
    """What one piece may still visit: each object once per document and role (`seen`,
    shared by the pieces: their links may loop, an action may be shared), at most
    MAX_OBJECTS in all; and the first script that could not be decoded."""

    def __init__(self, seen: dict[tuple[str, int], object], budget: Budget) -> None:
        self.seen = seen  # (role, id) -> the object itself, so that an id is never reused
        self.budget = budget
        self.left = MAX_OBJECTS
        self.over = False
        self.unreadable = ""  # the exception type name
        # Files embedded in the specifications met (attachments, launched files): the
        # bytes travel in the PDF whether or not the name tree lists them.
        self.files: list[tuple[str, StreamObject]] = []

    def first(self, role: str, value: object) -> DictionaryObject | None:
        """The dictionary `value` resolves to, the first time it is met in `role`.

        By role: an object crafted to be both a bookmark and the open action is read
        as both, not skipped as the second."""
        self.budget.check()
        value = _resolve(value)
        if not isinstance(value, DictionaryObject) or not self._new(role, value):
            return None
        return value

    def each(self, role: str, value: object) -> Iterator[object]:
        """The elements of an array, the first time it is met in `role` (an array shared
        by many nodes is read once, not once per node); a lone value as itself."""
        value = _resolve(value)
        if not isinstance(value, ArrayObject):
            return iter((value,))
        return iter(value if self._new(f"{role} array", value) else ())

    def _new(self, role: str, value: object) -> bool:
        key = (role, id(value))
        if key in self.seen:
            return False
        if not self.left:
            self.over = True
            return False
        self.left -= 1
        self.seen[key] = value
        return True

    def walk(
        self, role: str, start: object, links: Callable[[DictionaryObject], list[object]]
    ) -> Iterator[DictionaryObject]:
        """Depth first from `start` (a value or an array): each dictionary once, then
        what `links` returns for it (each a value or an array), in order. Iterators on
        the stack: memory grows with the nodes visited, not with the arrays' lengths."""
        stack = [self.each(role, start)]
        while stack:
            value = next(stack[-1], _END)
            if value is _END:
                stack.pop()
            elif (node := self.first(role, value)) is not None:
                yield node
                stack += [self.each(role, link) for link in reversed(links(node))]

    def text(self, value: object) -> list[str]:
        """A text string, or a text stream (a long script) decoded within the budget."""
        value = _resolve(value)
        if not isinstance(value, StreamObject):
            return _strings(value) if isinstance(value, str | ByteStringObject) else []
        try:
            data = value.get_data()  # pypdf's limits bound the output
        except Exception as exc:  # an unknown filter, a bomb: the other actions still count
            self.unreadable = self.unreadable or type(exc).__name__
            return []
        self.budget.spend_expanded(len(data))
        return [decode_text(data)]


def _reached(
    item: Item,
    what: str,
    read: Callable[[_Reach], Entries],
    walk: Walk,
    seen: dict[tuple[str, int], object],
    files_at: str = "",
) -> Iterator[Part | Problem]:
    """`_piece` of a reader that follows links: also a Problem for what it left unread,
    and the files embedded in what it met, extracted at "`files_at` NAME"."""
    location, reach = item.at(what), _Reach(seen, walk.budget)
    yield from _piece(location, what, lambda: read(reach))
    if reach.over:
        reason = f"{what}: more than {MAX_OBJECTS} objects, the rest not read"
        yield Problem(UNINSPECTABLE, location, reason)
    if reach.unreadable:
        yield Problem(UNINSPECTABLE, location, f"{what}: script unreadable ({reach.unreadable})")
    for name, stream in reach.files:
        walk.budget.count_file()
        at = item.at(f"{files_at or what + ' file'} {name}")
        try:
            content = stream.get_data()
        except Exception as exc:  # an unknown filter, a broken stream: the rest was read
            yield Problem(UNINSPECTABLE, at, f"attachment unreadable ({type(exc).__name__})")
            continue
        yield from walk.nested(item, content, name, location=at)


def _actions(start: object, reach: _Reach) -> list[str]:
    """What an action runs or opens — scripts, URIs, launched or remote files — and
    the same for the actions it chains (/Next: one or an array), in order."""
    texts: list[str] = []
    if not isinstance(_resolve(start), DictionaryObject):  # an /OpenAction destination
        return texts
    for action in reach.walk("action", start, lambda action: [action.get("/Next")]):
        texts += reach.text(action.get("/JS"))  # /JavaScript, and /Rendition actions
        texts += reach.text(action.get("/URI"))
        texts += _file_names(action.get("/F"), reach)  # /Launch, /GoToR, /SubmitForm...
        if isinstance(launch := _resolve(action.get("/Win")), DictionaryObject):
            texts += [t for key in ("/F", "/D", "/P") for t in reach.text(launch.get(key))]
    return texts


def _additional(actions: object, reach: _Reach) -> list[str]:
    """The actions of an additional-actions dictionary (/AA), whatever their trigger."""
    if (triggers := reach.first("additional actions", actions)) is None:
        return []
    return [text for action in triggers.values() for text in _actions(action, reach)]


def _file_names(spec: object, reach: _Reach) -> list[str]:
    """The names in a file specification: a string, or a dictionary of them (whose
    embedded file, if any, goes to `reach.files`)."""
    spec = _resolve(spec)
    if isinstance(spec, DictionaryObject):
        if reach.first("file specification", spec) is None:  # met before: read then
            return []
        return _attached(spec, reach.files)
    return reach.text(spec)


def _outline(reader: PdfReader, reach: _Reach) -> Entries:
    """Every bookmark's title, nested ones too, and what its action runs or opens."""
    outlines = _resolve(reader.root_object.get("/Outlines"))
    if not isinstance(outlines, DictionaryObject):
        return []
    texts: list[str] = []
    start = outlines.get("/First")
    # Children before the next sibling: the order a reader lists them in.
    for node in reach.walk("outline", start, lambda node: [node.get("/First"), node.get("/Next")]):
        texts += reach.text(node.get("/Title"))
        texts += _actions(node.get("/A"), reach)
    return [("", _joined(texts))]


def _scripts(reader: PdfReader, pages: list[PageObject], reach: _Reach) -> Entries:
    """The document's scripts (by name), its open action and the additional actions of
    the document, its pages and its form fields; with the URIs and files actions open."""
    root = reader.root_object
    names = _resolve(root.get("/Names"))
    tree = names.get("/JavaScript") if isinstance(names, DictionaryObject) else None
    entries = [(name, _joined(_actions(action, reach))) for name, action in _tree(tree, reach)]
    entries.append(("open action", _joined(_actions(root.get("/OpenAction"), reach))))
    entries.append(("document actions", _joined(_additional(root.get("/AA"), reach))))
    for number, page in enumerate(pages, start=1):
        entries.append((f"page {number}", _joined(_additional(page.get("/AA"), reach))))
    entries += _field_actions(root.get("/AcroForm"), reach)
    return [(label, text) for label, text in entries if text]


def _tree(tree: object, reach: _Reach) -> list[tuple[str, object]]:
    """(name, value) of each leaf of a name tree, in order."""
    leaves = []
    for node in reach.walk("name tree", tree, lambda node: [node.get("/Kids")]):
        pairs = list(reach.each("name tree leaves", node.get("/Names")))  # name, value, ...
        leaves += [
            (_joined(reach.text(pairs[i])), pairs[i + 1]) for i in range(0, len(pairs) - 1, 2)
        ]
    return leaves


def _field_actions(form: object, reach: _Reach) -> Entries:
    """Actions of form fields (format, validate, calculate scripts) by qualified name;
    those of a widget on a page were already read with its annotations."""
    form = _resolve(form)
    if not isinstance(form, DictionaryObject):
        return []
    entries = []
    for field in reach.walk("field", form.get("/Fields"), lambda field: [field.get("/Kids")]):
        texts = _actions(field.get("/A"), reach) + _additional(field.get("/AA"), reach)
        if text := _joined(texts):
            entries.append((f"field {_field_name(field, reach)}".rstrip(), text))
    return entries


def _field_name(field: DictionaryObject, reach: _Reach) -> str:
    names: list[str] = []
    node: object = field
    for _ in range(_MAX_FIELD_DEPTH):
        if not isinstance(node, DictionaryObject):
            break
        if name := _joined(reach.text(node.get("/T"))):
            names.append(name)
        node = _resolve(node.get("/Parent"))
    return ".".join(reversed(names))
