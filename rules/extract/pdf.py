"""PDF text layer via pypdf: a Part per page, and embedded files extracted in turn.

pypdf bounds its own stream decompression (pypdf Configuration limits); pages
are read one by one so the time budget is checked between them.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from pypdf import PdfReader
from pypdf.errors import PyPdfError

from rules.findings import ENCRYPTED_ARCHIVE, UNINSPECTABLE, Part, Problem

from .limits import ExtractionError

if TYPE_CHECKING:
    from .item import Item
    from .walk import Walk

# pypdf logs every oddity of a malformed file, sometimes quoting the file: not in our logs.
logging.getLogger("pypdf").setLevel(logging.CRITICAL)


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
    for number, page in enumerate(pages, start=1):
        walk.budget.check()
        location = item.at(f"page {number}")
        try:
            text = page.extract_text()
        except Exception as exc:  # pypdf raises many kinds on a broken page; the others go on
            yield Problem(
                UNINSPECTABLE, location, f"page {number} unreadable ({type(exc).__name__})"
            )
            continue
        if text.strip():
            yield Part(location, text)
    yield from _attachments(reader, item, walk)


def _attachments(reader: PdfReader, item: Item, walk: Walk) -> Iterator[Part | Problem]:
    try:
        attachments = reader.attachments
        files = [(name, content) for name, contents in attachments.items() for content in contents]
    except Exception as exc:  # a broken name tree must not hide the pages already read
        yield Problem(
            UNINSPECTABLE, item.location, f"PDF attachments unreadable ({type(exc).__name__})"
        )
        return
    for name, content in files:
        walk.budget.count_file()
        yield from walk.nested(item, content, name, location=item.at(f"attachment {name}"))
