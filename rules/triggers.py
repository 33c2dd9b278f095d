"""The one multi-pattern pass that tells the engine where to look.

All trigger patterns (where a candidate value may end, where a disguise needs
undoing) are compiled into one hyperscan database and scanned without
start-of-match tracking, which costs ~20x on unbounded patterns; the engine
recovers starts itself around the rare matches. A pure-`re` backend gives
the same answers where hyperscan is missing: the engine only ever asks "which
patterns end where", and only ever uses the answers to pick regions that it
then examines with the same Python code.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

try:  # hyperscan is a hard dependency, but the engine must not stop without it
    import hyperscan
except ImportError:  # pragma: no cover - exercised by forcing backend="re"
    hyperscan = None


@dataclass(frozen=True)
class Trigger:
    id: int
    pattern: bytes  # PCRE-compatible and Python-compatible syntax
    utf8: bool = False


def hyperscan_available() -> bool:
    return hyperscan is not None


class ReTriggers:
    """Fallback: one `re` pass per pattern, reporting match ends.

    UTF-8 triggers are matched on the decoded text (a byte class cannot
    express a class of multi-byte characters); they only say *whether* a
    disguise is present, so they report the end -1.
    """

    name = "re"

    def __init__(self, triggers: Sequence[Trigger]) -> None:
        self._bytes = [(t.id, re.compile(t.pattern)) for t in triggers if not t.utf8]
        self._text = [(t.id, re.compile(t.pattern.decode())) for t in triggers if t.utf8]

    def ends(self, data: bytes) -> list[tuple[int, int]]:
        """(trigger id, end offset) for at least one match in every region that has one."""
        found = []
        for tid, rx in self._bytes:
            found.extend((tid, m.end()) for m in rx.finditer(data))
        if self._text:
            text = data.decode("utf-8", "replace")
            found.extend((tid, -1) for tid, rx in self._text if rx.search(text))
        return found


class HyperscanTriggers:
    name = "hyperscan"

    def __init__(self, triggers: Sequence[Trigger]) -> None:
        self._db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        self._db.compile(
            expressions=[t.pattern for t in triggers],
            ids=[t.id for t in triggers],
            flags=[hyperscan.HS_FLAG_UTF8 if t.utf8 else 0 for t in triggers],
        )
        self._scratch = hyperscan.Scratch(self._db)

    def ends(self, data: bytes) -> list[tuple[int, int]]:
        found: list[tuple[int, int]] = []
        add = found.append

        def on_match(tid, _start, end, _flags, _ctx):
            add((tid, end))

        self._db.scan(data, match_event_handler=on_match, scratch=self._scratch)
        return found


class RunFinder:
    """Runs that begin with `min_len` characters of a class (base64 runs), each once.

    `run` measures a run from its start at C speed. With hyperscan, a long
    run would call back once per byte; instead the scan stops at the first
    trigger end, and resumes after the run on a zero-copy view. The `re`
    backend searches for the same first window: the same spans either way.
    """

    def __init__(self, char_class: bytes, min_len: int, run: bytes, backend: str) -> None:
        self.min_len = min_len
        self._window = char_class + b"{%d}" % min_len
        self._run = re.compile(run)
        self._search = re.compile(self._window).search
        self._db = None
        if _use_hyperscan(backend):
            self._db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
            self._db.compile(expressions=[self._window], ids=[0], flags=[0])
            self._scratch = hyperscan.Scratch(self._db)

    def _first_window(self, data: bytes, view: memoryview, offset: int) -> int | None:
        if self._db is None:
            m = self._search(data, offset)
            return m.start() if m else None
        hit: list[int] = []

        def on_match(_tid, _start, end, _flags, _ctx):
            hit.append(end)
            return True  # stop at the first window: the run is measured in Python

        with contextlib.suppress(hyperscan.ScanTerminated):
            self._db.scan(view[offset:], match_event_handler=on_match, scratch=self._scratch)
        return offset + hit[0] - self.min_len if hit else None

    def runs(self, data: bytes) -> list[tuple[int, int]]:
        spans: list[tuple[int, int]] = []
        view = memoryview(data)
        offset = 0
        while offset < len(data):
            start = self._first_window(data, view, offset)
            if start is None:
                break
            end = self._run.match(data, start).end()
            spans.append((start, end))
            offset = end
        return spans


def _use_hyperscan(backend: str) -> bool:
    if backend not in ("auto", "hyperscan", "re"):
        raise ValueError(f"unknown scan backend {backend!r} (expected auto, hyperscan or re)")
    if backend == "hyperscan" and hyperscan is None:
        raise RuntimeError("hyperscan backend requested but the hyperscan module is missing")
    return backend == "hyperscan" or (backend == "auto" and hyperscan is not None)


def build(triggers: Sequence[Trigger], backend: str):
    return HyperscanTriggers(triggers) if _use_hyperscan(backend) else ReTriggers(triggers)
