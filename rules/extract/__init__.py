"""Content extraction: any supported format in, text `Part`s (and `Problem`s) out.

    extract(data, name=..., content_type=..., location=...)  -> Iterator[Part | Problem]
    decode_content_encoding(data, "gzip, br")                -> bytes
    decode_text(data, declared="gbk")                        -> str

Formats: text in any charset, CSV/TSV, JSON, HTML/XML, form bodies, mail,
zip/tar/7z and single compressed streams, docx/xlsx/pptx, PDF, legacy Office.
Whatever cannot be inspected (encrypted, corrupt, over a limit) comes out as a
Problem that names the reason and never the content; extract() does not raise
on bad input.
"""

from __future__ import annotations

from collections.abc import Iterator

from rules.findings import Part, Problem

from .charset import decode_text
from .compress import decode_content_encoding
from .item import Item
from .limits import ExtractionError, Limits
from .walk import Walk

__all__ = ["ExtractionError", "Limits", "decode_content_encoding", "decode_text", "extract"]


def extract(
    data: bytes,
    *,
    name: str = "",
    content_type: str = "",
    location: str = "",
    limits: Limits = Limits(),  # noqa: B008 - frozen, so sharing the default is safe
) -> Iterator[Part | Problem]:
    """Yield text Parts (and Problems) from content of any supported format.

    The format is sniffed from magic bytes, then the name's extension, then
    `content_type`. Locations start at `location` (or `name` if that is empty)
    and grow by " › inner name" for nested content.
    """
    walk = Walk(limits)
    yield from walk.extract(bytes(data), Item(name, content_type, location or name, 0))
