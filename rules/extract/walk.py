"""The recursion: sniff each item, hand it to its extractor, turn failures into Problems.

Extractors are generators `(data, item, walk) -> Iterator[Part | Problem]`
that call `walk.nested(...)` for what they contain. A failure ends only the
item it happened in; a spent budget ends everything, reported once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from rules.findings import UNINSPECTABLE, Part, Problem

from . import archive, forms, legacy, mime, pdf, sevenzip, sniff, streams, text
from .item import Item
from .limits import Budget, BudgetExhausted, ExtractionError, Limits, size_text

log = logging.getLogger(__name__)

Extractor = Callable[[bytes, Item, "Walk"], Iterator[Part | Problem]]

_EXTRACTORS: dict[str, Extractor] = {
    sniff.ZIP: archive.extract_zip,
    sniff.TAR: archive.extract_tar,
    sniff.SEVENZIP: sevenzip.extract_7z,
    sniff.PDF: pdf.extract_pdf,
    sniff.OLE: legacy.extract_ole,
    sniff.GZIP: streams.extract_stream,
    sniff.BZIP2: streams.extract_stream,
    sniff.XZ: streams.extract_stream,
    sniff.ZSTD: streams.extract_stream,
    sniff.BROTLI: streams.extract_stream,
    sniff.MIME: mime.extract_mail,
    sniff.MULTIPART: forms.extract_multipart,
    sniff.URLENCODED: forms.extract_urlencoded,
    sniff.CSV: text.extract_table,
    sniff.TSV: text.extract_table,
    sniff.TEXT: text.extract_text,
    sniff.BINARY: text.extract_nothing,
}


class Walk:
    """One extract() call: the limits, what has been spent, and the dispatch."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.budget = Budget(limits)

    def nested(
        self, parent: Item, data: bytes, name: str, content_type: str = "", location: str = ""
    ) -> Iterator[Part | Problem]:
        """Extract bytes found inside `parent`, one level deeper."""
        inner = Item(name, content_type, location or parent.at(name), parent.depth + 1)
        return self.extract(data, inner)

    def nested_parsed(
        self, parent: Item, location: str, extractor: Callable[[Item], Iterator[Part | Problem]]
    ) -> Iterator[Part | Problem]:
        """Like `nested` for content already parsed (a message inside a message)."""
        inner = Item("", "", location, parent.depth + 1)
        return self._guarded("content", inner, lambda: extractor(inner))

    def extract(self, data: bytes, item: Item) -> Iterator[Part | Problem]:
        limits = self.limits
        if len(data) > limits.max_input_bytes:
            reason = f"{size_text(len(data))} is over the {size_text(limits.max_input_bytes)} limit"
            return iter([Problem(UNINSPECTABLE, item.location, reason)])
        kind = sniff.sniff(data, item.name, item.content_type)
        return self._guarded(kind, item, lambda: _EXTRACTORS[kind](data, item, self))

    def _guarded(
        self, kind: str, item: Item, run: Callable[[], Iterator[Part | Problem]]
    ) -> Iterator[Part | Problem]:
        budget, limits = self.budget, self.limits
        if budget.exhausted:
            return
        if item.depth > limits.max_depth:
            reason = f"nested deeper than {limits.max_depth} containers"
            yield Problem(UNINSPECTABLE, item.location, reason)
            return
        try:
            budget.check()
            yield from run()
        except BudgetExhausted as exc:
            if not budget.reported:
                budget.reported = True
                yield Problem(UNINSPECTABLE, item.location, exc.reason)
        except ExtractionError as exc:
            yield Problem(UNINSPECTABLE, item.location, exc.reason)
        except RecursionError:
            yield Problem(UNINSPECTABLE, item.location, f"{kind} structure nested too deeply")
        except Exception as exc:  # parsers raise anything on hostile input: fail closed
            # The type only: exception messages may quote the content.
            log.warning("%s extractor failed: %s", kind, type(exc).__name__)
            yield Problem(UNINSPECTABLE, item.location, f"unreadable {kind} ({type(exc).__name__})")
