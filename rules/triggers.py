"""Multi-pattern passes that tell the engine where to look.

A set of trigger patterns (where a candidate value may be, whether a
disguise needs undoing) is compiled into one hyperscan database and scanned
without start-of-match tracking, which costs ~20x on unbounded patterns; the
engine recovers starts itself around the rare matches. A pure-`re` backend
answers the same question where hyperscan is missing: the engine only asks
"which triggers end where" and uses the answers to pick regions that it then
examines with the same Python code.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

try:  # hyperscan is a hard dependency, but the engine must not stop without it
    import hyperscan
except ImportError:  # pragma: no cover - exercised by forcing backend="re"
    hyperscan = None


@dataclass(frozen=True)
class Trigger:
    """A pattern whose matches wake the engine; several may share an id (a token kind).

    `bounded` patterns must not touch an ASCII letter or digit on either side.
    Hyperscan has no look-around, so there the boundary is a consumed byte (or
    the data's edge); `re` gets real look-arounds, so that adjacent values
    sharing one boundary byte are both seen.
    """

    id: int
    pattern: bytes  # PCRE-compatible and Python-compatible syntax
    utf8: bool = False
    bounded: bool = False  # no ASCII letter or digit on either side
    ends_number: bool = False  # no digit right after
    once: bool = False  # only whether it matches matters: report the first match only
    # For `re`, a simpler pattern that matches wherever this one does (a superset) and is
    # faster there; the engine cuts the same tokens either way (see tests/rules/test_backends.py).
    re_superset: bytes = b""

    def for_hyperscan(self) -> bytes:
        head, tail = b"", b""
        if self.bounded:
            head, tail = rb"(?:^|[^0-9A-Za-z])", rb"(?:[^0-9A-Za-z]|$)"
        elif self.ends_number:
            tail = rb"(?:[^0-9]|$)"
        return head + rb"(?:" + self.pattern + rb")" + tail

    def for_re(self) -> bytes:
        if self.re_superset:
            return self.re_superset
        head, tail = b"", b""
        if self.bounded:
            head, tail = rb"(?<![0-9A-Za-z])", rb"(?![0-9A-Za-z])"
        elif self.ends_number:
            tail = rb"(?![0-9])"
        return head + rb"(?:" + self.pattern + rb")" + tail


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
        patterns: dict[bytes, tuple[int, bool]] = {}  # several triggers may share one superset
        for t in triggers:
            if not t.utf8:
                patterns.setdefault(t.for_re(), (t.id, t.once))
        self._bytes = [(tid, once, re.compile(p)) for p, (tid, once) in patterns.items()]
        self._text = [(t.id, re.compile(t.pattern.decode())) for t in triggers if t.utf8]
        if any(t.utf8 and not t.once for t in triggers):
            raise ValueError("UTF-8 triggers can only say whether they match (once=True)")

    def ends(self, data: bytes) -> list[tuple[int, int]]:
        """(trigger id, end offset) for at least one match in every region that has one."""
        found = []
        for tid, once, rx in self._bytes:
            if once:
                if m := rx.search(data):
                    found.append((tid, m.end()))
            else:
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
            expressions=[t.for_hyperscan() for t in triggers],
            ids=[t.id for t in triggers],
            flags=[
                (hyperscan.HS_FLAG_UTF8 if t.utf8 else 0)
                | (hyperscan.HS_FLAG_SINGLEMATCH if t.once else 0)
                for t in triggers
            ],
        )
        self._scratch = hyperscan.Scratch(self._db)

    def ends(self, data: bytes) -> list[tuple[int, int]]:
        found: list[tuple[int, int]] = []
        add = found.append

        def on_match(tid, _start, end, _flags, _ctx):
            add((tid, end))

        self._db.scan(data, match_event_handler=on_match, scratch=self._scratch)
        return found


class Several:
    """Trigger sets passed over the data one after the other, answering as one set."""

    def __init__(self, sets: Sequence[HyperscanTriggers | ReTriggers]) -> None:
        self._sets = tuple(sets)
        self.name = self._sets[0].name

    def ends(self, data: bytes) -> list[tuple[int, int]]:
        found: list[tuple[int, int]] = []
        for one in self._sets:
            found += one.ends(data)
        return found


class RunFinder:
    """Runs of a character class that contain a trigger (base64 runs), each once.

    Most runs of the class are not interesting (digits, hex, words); the
    trigger picks the ones that are (both letter cases, for base64). The
    run around the first trigger is measured in Python (`run` from its start),
    and the search resumes after it: with hyperscan the scan stops at the
    first trigger end and resumes on a zero-copy view, so a long run does
    not call back once per byte. Runs never overlap, so the earliest-ending
    match (hyperscan) and the leftmost match (`re`) lie in the same run.
    """

    def __init__(
        self,
        char_class: bytes,
        trigger: bytes,
        run: bytes,
        backend: str,
        holds_trigger: Callable[[bytes], bool],
    ) -> None:
        """`holds_trigger(run)` must say, in linear time, whether `trigger` matches in a run
        of the class: `re` would backtrack on the trigger's unbounded gaps."""
        self._members = frozenset(
            b for b in range(256) if re.fullmatch(char_class, bytes([b])) is not None
        )
        self._run = re.compile(run)
        self._class_runs = re.compile(char_class + b"+").finditer
        self._holds_trigger = holds_trigger
        self._db = None
        if _use_hyperscan(backend):
            self._db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
            self._db.compile(expressions=[trigger], ids=[0], flags=[0])
            self._scratch = hyperscan.Scratch(self._db)

    def _first_end(self, data: bytes, view: memoryview, offset: int) -> int | None:
        if self._db is None:
            for m in self._class_runs(data, offset):
                if self._holds_trigger(m.group()):
                    return m.end()
            return None
        hit: list[int] = []

        def on_match(_tid, _start, end, _flags, _ctx):
            hit.append(end)
            return True  # stop at the first trigger: the run is measured in Python

        with contextlib.suppress(hyperscan.ScanTerminated):
            self._db.scan(view[offset:], match_event_handler=on_match, scratch=self._scratch)
        return offset + hit[0] if hit else None

    def runs(self, data: bytes) -> list[tuple[int, int]]:
        spans: list[tuple[int, int]] = []
        view = memoryview(data)
        offset = 0
        members = self._members
        while offset < len(data):
            end = self._first_end(data, view, offset)
            if end is None:
                break
            start = end - 1
            while start > offset and data[start - 1] in members:
                start -= 1
            stop = self._run.match(data, start).end()
            spans.append((start, stop))
            offset = max(stop, end)
        return spans


class HyperscanLiterals:
    """Where each of many short patterns matches, start included (SOM is cheap on
    bounded patterns): `spans(data)` → (pattern id, start, end) in match order."""

    def __init__(self, patterns: Sequence[bytes], utf8: bool) -> None:
        self._db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        flags = hyperscan.HS_FLAG_SOM_LEFTMOST | (hyperscan.HS_FLAG_UTF8 if utf8 else 0)
        self._db.compile(
            expressions=list(patterns),
            ids=list(range(len(patterns))),
            flags=[flags] * len(patterns),
        )
        self._scratch = hyperscan.Scratch(self._db)

    def spans(self, data: bytes) -> list[tuple[int, int, int]]:
        found: list[tuple[int, int, int]] = []
        add = found.append

        def on_match(pid, start, end, _flags, _ctx):
            add((pid, start, end))

        self._db.scan(data, match_event_handler=on_match, scratch=self._scratch)
        return found


def use_hyperscan(backend: str) -> bool:
    """Whether `backend` ("auto", "hyperscan" or "re") means hyperscan here."""
    return _use_hyperscan(backend)


def _use_hyperscan(backend: str) -> bool:
    if backend not in ("auto", "hyperscan", "re"):
        raise ValueError(f"unknown scan backend {backend!r} (expected auto, hyperscan or re)")
    if backend == "hyperscan" and hyperscan is None:
        raise RuntimeError("hyperscan backend requested but the hyperscan module is missing")
    return backend == "hyperscan" or (backend == "auto" and hyperscan is not None)


def build(triggers: Sequence[Trigger], backend: str):
    return HyperscanTriggers(triggers) if _use_hyperscan(backend) else ReTriggers(triggers)
