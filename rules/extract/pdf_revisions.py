"""Earlier revisions of an incrementally saved PDF: text a later save removed is still there.

An incremental save appends the changed objects and a new cross-reference
section after the old `%%EOF`; the old page contents stay in the bytes before
it, and readers show only the newest revision. Each earlier revision (the file
up to an earlier `%%EOF`) is opened on its own, and its page text is scanned
where it differs from every page of the newest revision. Pages whose content
stream is unchanged (a signature or a form value added) are not read again:
the text extraction, not the parse, is what costs.

A linearized file has an early `%%EOF` that ends no revision (its first-page
section); what does not open on its own is skipped, not reported, or every
linearized PDF would be uninspectable.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from pypdf import PageObject, PdfReader

from rules.findings import Part

if TYPE_CHECKING:
    from .item import Item
    from .walk import Walk

MAX_EARLIER = 8  # revisions opened: the oldest half and the newest half of them
_EOF = re.compile(rb"%%EOF")


def revision_ends(data: bytes) -> list[int]:
    """Where each revision before the newest ends (just after its `%%EOF`)."""
    ends = [m.end() for m in _EOF.finditer(data)][:-1]
    if len(ends) > MAX_EARLIER:
        ends = ends[: MAX_EARLIER // 2] + ends[-MAX_EARLIER // 2 :]
    return ends


def earlier_pages(
    data: bytes, newest: Iterable[PageObject], texts: set[str], item: Item, walk: Walk
) -> Iterator[Part]:
    """Page text of earlier revisions that no page of the newest revision has
    (`newest` its pages, `texts` their text)."""
    ends = revision_ends(data)
    if not ends:
        return
    seen, unchanged = set(texts), {_content(page) for page in newest}
    for n, end in enumerate(ends, start=1):
        walk.budget.check()
        try:
            reader = PdfReader(io.BytesIO(data[:end]), strict=False)
            if reader.is_encrypted and not reader.decrypt(""):
                continue
            pages = list(reader.pages)
        except Exception:  # not a revision of its own (see the module docstring)
            continue
        for number, page in enumerate(pages, start=1):
            walk.budget.check()
            if _content(page) in unchanged:
                continue
            try:
                text = page.extract_text()
            except Exception:  # pypdf raises many kinds on a broken page
                continue
            if text.strip() and text not in seen:
                seen.add(text)
                yield Part(item.at(f"earlier revision {n} › page {number}"), text)


def _content(page: PageObject) -> bytes:
    """A digest of the page's decoded content stream; b"" if it cannot be read."""
    try:
        contents = page.get_contents()
        return hashlib.blake2b(b"" if contents is None else contents.get_data()).digest()
    except Exception:
        return b""
