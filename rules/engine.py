"""The scan engine: text in, `Finding`s out, the same whichever door the text came through.

For one text:
1. a hyperscan pass (or `re`, the fallback) tells whether any disguise
   needs undoing; only then do the normalisation layers rewrite the text,
   keeping a map back to the original;
2. a second pass finds where candidate values may be (shapes of IDs, cards,
   mobiles, codes, e-mail addresses, numbers written in groups);
3. tokens are cut around each trigger and judged by the detectors; a context
   word near a value raises its score; overlapping candidates keep the best;
4. base64 runs are decoded and scanned recursively;
5. findings are mapped back to offsets of the original text, masked, hashed.

A `Finding` holds the masked form and a keyed hash only, never the value.
Small in-memory caches (decoded escape runs) live only in the process. An
Engine holds a hyperscan scratch and caches: use one per thread.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from rules import tokens, triggers
from rules.custom import CustomDetector, KeywordDetector, KeywordSearch
from rules.detectors import DEFAULT_MIN_SCORE, DETECTORS, PRIORITY, Candidate
from rules.findings import Finding, Part, Problem
from rules.masking import value_hash
from rules.normalize import ALL_LAYERS, MapChain, Normalised, normalise

CONTEXT_BEFORE = 64  # bytes before a value searched for context words (~20 CJK characters)
CONTEXT_AFTER = 32
BASE64_MIN_RUN = 16
MAX_BASE64_DEPTH = 2

_NUM, _ALNUM, _EMAIL, _TW_CONTEXT, _BASE64 = 1, 2, 3, 4, 5
# Token kinds: the bytes a token is a maximal run of, and how candidates are cut from it.
_TOKEN_KINDS = {
    _NUM: (tokens.NUM_CLASS, tokens.numeric_hits),
    _ALNUM: (tokens.ALNUM_CLASS, tokens.alnum_hits),
    _EMAIL: (tokens.EMAIL_CLASS, tokens.email_hits),
}
_LINE_BREAK = re.compile(rb"\r?\n")
_BASE64_SAMPLE = 512  # characters decoded to judge where a base64 run really starts
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")

# Base64 of text mixes the letter cases with digits in between; digit runs, hex,
# IDs and capitalised words ("Hello") do not.
_B64 = rb"[A-Za-z0-9+/]*"
_BASE64_TRIGGER = (
    rb"[a-z]" + _B64 + rb"[A-Z]"
    rb"|[A-Z]" + _B64 + rb"[0-9+/]" + _B64 + rb"[a-z]"
    rb"|[0-9+/]" + _B64 + rb"[A-Z]" + _B64 + rb"[a-z]"
)
_FIRST = {name: re.compile(p).search for name, p in
          (("lower", rb"[a-z]"), ("upper", rb"[A-Z]"), ("digit", rb"[0-9+/]"))}  # fmt: skip


def _holds_base64_trigger(run: bytes) -> bool:
    """_BASE64_TRIGGER matches somewhere in `run` (a run of the alphabet), in linear time."""
    first, rfirst = _FIRST, run[::-1]

    def after(kind: str, pos: int) -> int:  # first index of kind at or after pos, or -1
        m = first[kind](run, pos)
        return m.start() if m else -1

    def last(kind: str) -> int:
        m = first[kind](rfirst)
        return len(run) - 1 - m.start() if m else -1

    lower = after("lower", 0)
    if lower >= 0 and last("upper") > lower:
        return True  # a lower-case letter, later an upper-case one
    for head, middle in (("upper", "digit"), ("digit", "upper")):
        i = after(head, 0)
        j = after(middle, i + 1) if i >= 0 else -1
        if j >= 0 and last("lower") > j:
            return True
    return False


# A base64 run, also wrapped in lines as MIME bodies are, with its padding.
_BASE64_RUN = rb"[A-Za-z0-9+/]+(?:\r?\n[A-Za-z0-9+/]+)*=*"


def _token_triggers() -> list[triggers.Trigger]:
    return [
        *(
            triggers.Trigger(_NUM, shape, bounded=True, re_superset=tokens.NUM_SUPERSET)
            for shape in tokens.NUM_SHAPES
        ),
        triggers.Trigger(
            _NUM, tokens.NUM_GROUPED, ends_number=True, re_superset=tokens.NUM_SUPERSET
        ),
        triggers.Trigger(_NUM, tokens.ID_TAIL, ends_number=True, re_superset=tokens.NUM_SUPERSET),
        *(triggers.Trigger(_ALNUM, shape, bounded=True) for shape in tokens.ALNUM_SHAPES),
        triggers.Trigger(_EMAIL, tokens.EMAIL_TRIGGER),
        triggers.Trigger(_TW_CONTEXT, tokens.TW_CONTEXT_TRIGGER),
        # Whether base64 runs need looking for at all (most texts have none).
        triggers.Trigger(_BASE64, _BASE64_TRIGGER, once=True, re_superset=rb"[a-z]"),
    ]


def _layer_triggers(locate: bool) -> list[triggers.Trigger]:
    """One per normalisation layer: whether it matches, and if `locate`, where the
    characters of a per-character layer are (each match of `[…]+` ends after one)."""
    return [
        triggers.Trigger(
            i,
            layer.trigger_pattern.encode(),
            utf8=True,
            once=not (locate and layer.table is not None),
        )
        for i, layer in enumerate(ALL_LAYERS)
    ]


_DENSE = [layer.bulk is not None for layer in ALL_LAYERS]  # by layer index


class _Disguises:
    """normalise()'s questions about a text, answered by the layer pass over its bytes.

    Remembers the last text asked about (by identity), its bytes and the pass's
    answers: the final text is asked about last, and the engine scans its bytes next.
    """

    def __init__(self, layers, text: str, data: bytes) -> None:
        self._layers = layers
        self.text, self.data = text, data
        self._ends = layers.ends(data)

    def needed(self, text: str) -> set[int]:
        if text is not self.text:
            self.text, self.data = text, text.encode("utf-8", "replace")
            self._ends = self._layers.ends(self.data)
        return {tid for tid, _ in self._ends}

    def where(self, text: str, layer: int) -> list[int] | None:
        """Offsets of the characters layer `layer`'s trigger matched, if it reported them."""
        if text is not self.text:
            return None  # rewritten since the pass by a layer applied before this one
        ends = sorted({end for tid, end in self._ends if tid == layer})
        if not ends or ends[0] < 0:  # the `re` backend says only whether
            return None
        to_char = _byte_to_char(self.data, set(ends))
        return [to_char[end] - 1 for end in ends]


@dataclass(frozen=True, slots=True)
class _Raw:
    """A judged candidate at a character span of the scanned text."""

    start: int
    end: int
    candidate: Candidate
    score: float
    why: tuple[str, ...]
    length: int  # of the value as the detectors saw it: ties go to the longer value


class Engine:
    """Finds sensitive values in text."""

    def __init__(
        self,
        *,
        hash_key: bytes,
        detectors: Iterable[str] | None = None,
        custom: Sequence[CustomDetector] = (),
        min_score: float = DEFAULT_MIN_SCORE,
        backend: str = "auto",
    ) -> None:
        enabled = set(DETECTORS if detectors is None else detectors)
        unknown = enabled - set(DETECTORS)
        if unknown:
            raise ValueError(f"unknown detector ids: {', '.join(sorted(unknown))}")
        self.enabled = frozenset(enabled)
        self.custom = tuple(custom)
        # Keyword detectors share one pass.
        self._keywords = KeywordSearch(
            [c for c in self.custom if type(c) is KeywordDetector], backend
        )
        self.min_score = min_score
        self._key = hash_key
        # Two passes: disguises on the text as it came (and after each round of undoing
        # them), tokens on the text as read. Hyperscan's cost adds up pattern by pattern,
        # so one combined pass per round would cost more, not less.
        self._triggers = triggers.build(_token_triggers(), backend)
        # Only hyperscan reports every match of a UTF-8 trigger. A layer whose pattern
        # matches densely (JSON escapes) gets a pass of its own: in one database with the
        # others it slows the whole pass even once it has matched (2.8 → 0.6 ms per MB).
        layer_triggers = _layer_triggers(self._triggers.name == "hyperscan")
        self._layers = triggers.Several(
            [
                triggers.build(group, backend)
                for dense in (True, False)
                if (group := [t for t in layer_triggers if _DENSE[t.id] == dense])
            ]
        )
        self._base64 = triggers.RunFinder(
            rb"[A-Za-z0-9+/]", _BASE64_TRIGGER, _BASE64_RUN, backend, _holds_base64_trigger
        )
        self.backend = self._triggers.name
        self._redacted: dict[bytes, str] = {}
        self._redacting_engine: Engine | None = None
        self._masks = {d.id: d.mask for d in DETECTORS.values()}
        self._masks.update({c.id: c.mask for c in self.custom})
        self._context = {d.id: _words_regex(d.context_words) for d in DETECTORS.values()}

    # -- public API ---------------------------------------------------------

    def scan_text(self, text: str, location: str = "") -> list[Finding]:
        return self.scan_part(Part(location, text))

    def scan_part(self, part: Part) -> list[Finding]:
        raws = self._scan(part.text, depth=0)
        offsets = [s.offset for s in part.segments]
        findings = []
        for raw in raws:
            location = part.location
            if offsets:
                i = bisect_right(offsets, raw.start) - 1
                if i >= 0:
                    location = part.segments[i].location
            findings.append(self._finding(raw, self.redact(location)))
        return findings

    def scan_parts(self, items: Iterable[Part | Problem]) -> list[Finding]:
        out: list[Finding] = []
        for item in items:
            if isinstance(item, Problem):
                # File and member names are user data too: 张三_<ID>.xlsx.
                masked = Problem(
                    item.detector, self.redact(item.location), self.redact(item.reason)
                )
                out.append(masked.to_finding())
            else:
                out.extend(self.scan_part(item))
        return out

    def redact(self, text: str) -> str:
        """`text` with every value found in it replaced by its masked form.

        For names shown beside findings (files, members, fields): every built-in
        detector at the default threshold, whatever this engine reports.
        """
        if not text:
            return text
        key = hashlib.blake2b(text.encode("utf-8", "replace"), digest_size=16).digest()
        cached = self._redacted.get(key)  # keyed by digest: the cache holds no raw name
        if cached is not None:
            return cached
        pieces, pos = [], 0
        for raw in self._redactor._scan(text, depth=0):
            pieces += [
                text[pos : raw.start],
                self._masks[raw.candidate.detector](raw.candidate.value),
            ]
            pos = raw.end
        out = "".join([*pieces, text[pos:]])
        if len(self._redacted) > 4096:  # names repeat within a message, not forever
            self._redacted.clear()
        self._redacted[key] = out
        return out

    @property
    def _redactor(self) -> Engine:
        if self.enabled == frozenset(DETECTORS) and self.min_score <= DEFAULT_MIN_SCORE:
            return self
        if self._redacting_engine is None:
            self._redacting_engine = Engine(
                hash_key=self._key, custom=self.custom, backend=self.backend
            )
        return self._redacting_engine

    # -- the pipeline -------------------------------------------------------

    def _scan(self, text: str, depth: int) -> list[_Raw]:
        data = text.encode("utf-8", "replace")
        disguises = _Disguises(self._layers, text, data)
        if disguises.needed(text):
            norm = normalise(text, disguises.needed, disguises.where)
            if disguises.text is norm.text:  # the final text, passed and encoded already
                data = disguises.data
            else:
                data = norm.text.encode("utf-8", "replace")
        else:
            norm = Normalised(text, MapChain())
        ends = self._triggers.ends(data)
        byte_hits = self._token_hits(data, ends)
        if any(tid == _BASE64 for tid, _ in ends):
            byte_hits.extend(self._base64_hits(data, depth))
        raws = self._to_chars(data, norm, byte_hits)
        for start, end, cand in self._custom_hits(norm.text, data):
            start, end, undone = norm.back.trace(start, end)
            raws.append(_Raw(start, end, cand, cand.score, (*cand.why, *undone), len(cand.value)))
        return _resolve(raws)

    def _custom_hits(self, text: str, data: bytes) -> list[tuple[int, int, Candidate]]:
        """Every custom detector's matches, detector by detector in the policy's order."""
        if not self.custom:
            return []
        keyword_hits = iter(
            self._keywords.find_each(text, data, _byte_to_char) if self._keywords.detectors else ()
        )
        out = []
        for detector in self.custom:
            out += next(keyword_hits) if type(detector) is KeywordDetector else detector.find(text)
        return out

    def _token_hits(self, data: bytes, ends: list[tuple[int, int]]) -> list[tuple[int, int, _Raw]]:
        """(byte start, byte end, judged) for every token around a trigger."""
        seen: set[tuple[int, int, int]] = set()  # (kind, start, stop) of runs already cut
        last_run = dict.fromkeys(_TOKEN_KINDS, (0, 0))
        out = []
        for tid, end in sorted(ends, key=lambda e: e[1]):
            if tid == _BASE64:
                continue
            if tid == _TW_CONTEXT:  # numbers after a context word, not a token
                run_key = (tid, end, end)
                if run_key in seen:
                    continue
                hits = tokens.tw_permit_hits(data, end)
            else:
                charset, cut = _TOKEN_KINDS[tid]
                anchor = end - 1
                if tid != _EMAIL and data[anchor] not in tokens.ALNUM_CLASS:
                    anchor -= 1  # a bounded trigger ended on the byte after the token
                if last_run[tid][0] <= anchor < last_run[tid][1]:
                    continue  # inside the run just cut (most triggers are)
                start, stop = last_run[tid] = tokens.run_around(data, anchor, charset)
                run_key = (tid, start, stop)
                if run_key in seen:
                    continue
                hits = cut(data, start, stop)
            seen.add(run_key)
            for hit in hits:
                judged = self._judge(data, hit.start, hit.end, hit.candidate)
                if judged is not None:
                    out.append((hit.start, hit.end, judged))
        return out

    def _judge(self, data: bytes, start: int, end: int, cand: Candidate) -> _Raw | None:
        if cand.detector not in self.enabled:
            return None
        score, why = cand.score, cand.why
        if cand.score_in_context > score:
            word = self._context_word(data, start, end, cand.detector)
            if word is not None:
                score = cand.score_in_context
                why = (*why, f"context word {word!r}")
        if score < self.min_score or score <= 0:
            return None
        return _Raw(start, end, cand, score, why, end - start)

    def _context_word(self, data: bytes, start: int, end: int, detector: str) -> str | None:
        """The context word nearest before the value, else the first after it."""
        words = self._context[detector]
        found = None
        for found in words.finditer(data, max(0, start - CONTEXT_BEFORE), start):  # noqa: B007
            pass
        found = found or words.search(data, end, end + CONTEXT_AFTER)
        return found.group().decode("utf-8", "replace").lower() if found else None

    def _base64_hits(self, data: bytes, depth: int) -> list[tuple[int, int, _Raw]]:
        if depth >= MAX_BASE64_DEPTH:
            return []
        out = []
        for run_start, run_end in self._base64.runs(data):
            if run_end - run_start < BASE64_MIN_RUN:
                continue
            run = _Base64Run(data, run_start, run_end)
            decoded = run.text()
            if decoded is None:
                continue
            raws = self._scan(decoded, depth + 1)
            to_byte = _char_to_byte(decoded, {p for r in raws for p in (r.start, r.end)})
            for raw in raws:
                start, end = run.span(to_byte[raw.start], to_byte[raw.end])
                why = (*raw.why, "inside base64")
                out.append(
                    (start, end, _Raw(start, end, raw.candidate, raw.score, why, raw.length))
                )
        return out

    def _to_chars(
        self, data: bytes, norm: Normalised, hits: list[tuple[int, int, _Raw]]
    ) -> list[_Raw]:
        """Byte spans of the normalised text → character spans of the original."""
        if not hits:
            return []
        to_char = _byte_to_char(data, {p for b_start, b_end, _ in hits for p in (b_start, b_end)})
        out = []
        for b_start, b_end, raw in hits:
            start, end, undone = norm.back.trace(to_char[b_start], to_char[b_end])
            out.append(_Raw(start, end, raw.candidate, raw.score, (*raw.why, *undone), raw.length))
        return out

    def _finding(self, raw: _Raw, location: str) -> Finding:
        cand = raw.candidate
        return Finding(
            detector=cand.detector,
            score=raw.score,
            location=location,
            start=raw.start,
            end=raw.end,
            masked=self._masks[cand.detector](cand.value),
            value_hash=value_hash(self._key, cand.detector, cand.value),
            why=raw.why,
        )


def _words_regex(words: Iterable[str]) -> re.Pattern[bytes]:
    """One case-insensitive pattern for a detector's context words, longest first.

    English words must stand alone: "card" is not in "discarded", "mtp" not in "SMTP".
    """
    ordered = sorted({w.lower() for w in words}, key=len, reverse=True)
    alternatives = [
        rb"(?<![a-z])" + re.escape(w.encode()) + rb"(?![a-z])"
        if w.isascii()
        else re.escape(w.encode())
        for w in ordered
    ]
    return re.compile(b"|".join(alternatives), re.IGNORECASE)


def _resolve(raws: list[_Raw]) -> list[_Raw]:
    """Overlapping candidates: keep the highest score, then the longer span, then priority."""
    rank = {d: i for i, d in enumerate(PRIORITY)}
    ordered = sorted(
        raws,
        key=lambda r: (-r.score, -r.length, -(r.end - r.start), rank.get(r.candidate.detector, 99)),
    )
    starts: list[int] = []  # kept spans, disjoint, sorted by start
    kept: list[_Raw] = []
    for raw in ordered:
        i = bisect_right(starts, raw.start)
        if i > 0 and kept[i - 1].end > raw.start:
            continue
        if i < len(kept) and kept[i].start < raw.end:
            continue
        starts.insert(i, raw.start)
        kept.insert(i, raw)
    return kept


class _Base64Run:
    """A base64 run (possibly wrapped in lines) and the way back from decoded bytes."""

    def __init__(self, data: bytes, start: int, end: int) -> None:
        self.start, self.end = start, end
        self._raw = data[start:end]
        # the run's only line breaks are \r\n and \n (see _BASE64_RUN): bytes.replace is C speed
        self._joined = self._raw.replace(b"\r\n", b"").replace(b"\n", b"").rstrip(b"=")
        self._breaks: list[tuple[int, int]] | None = None  # (joined offset, bytes skipped)
        self._skip = 0  # characters before the base64 proper

    def text(self) -> str | None:
        """The decoded text if the run looks like encoded text, else None.

        A run may begin before the base64 does (a chunk border, a URL path):
        the four alignments and the starts after a '/' are tried, the first
        that reads as text wins.
        """
        head = self._joined[:128]
        after_slash = [i + 1 for i in range(len(head)) if head[i] == 0x2F]  # a path before it
        for skip in (0, 1, 2, 3, *after_slash):
            # Judge each start on a sample; decode the whole run once, for the winner.
            if self._decode(self._joined[skip : skip + _BASE64_SAMPLE]) is not None:
                self._skip = skip
                return self._decode(self._joined[skip:])
        return None

    @staticmethod
    def _decode(run: bytes) -> str | None:
        usable = len(run) - (len(run) % 4 if len(run) % 4 == 1 else 0)
        if usable < BASE64_MIN_RUN - 3:
            return None
        chunk = run[:usable] + b"=" * (-usable % 4)
        try:
            raw = base64.b64decode(chunk, validate=True)
        except binascii.Error:
            return None
        text = raw.decode("utf-8", "replace")
        # Random letters decode to invalid UTF-8 and control bytes; encoded text does not.
        bad = text.count("\ufffd") + len(_CONTROL.findall(text))
        return text if bad <= len(text) // 20 else None

    def span(self, byte_start: int, byte_end: int) -> tuple[int, int]:
        """Decoded byte span → span of base64 characters in the data."""
        # Decoded byte k comes from base64 characters 4*(k//3) … 4*(k//3)+3.
        start = self._position(self._skip + (byte_start // 3) * 4)
        end = self._position(self._skip + max(0, -(-byte_end // 3) * 4 - 1)) + 1
        return start, min(end, self.end)

    def _position(self, joined: int) -> int:
        if self._breaks is None:  # only runs with findings pay for the line map
            self._breaks, skipped = [], 0
            for m in _LINE_BREAK.finditer(self._raw):
                skipped += m.end() - m.start()
                self._breaks.append((m.start() - (skipped - (m.end() - m.start())), skipped))
        i = bisect_right(self._breaks, (joined, float("inf"))) - 1
        return self.start + joined + (self._breaks[i][1] if i >= 0 else 0)


def _byte_to_char(data: bytes, positions: set[int]) -> dict[int, int]:
    """UTF-8 byte offsets (at character boundaries) → character offsets, in one pass."""
    return _recount(data, positions, lambda piece: len(piece.decode("utf-8", "replace")))


def _char_to_byte(text: str, positions: set[int]) -> dict[int, int]:
    """Character offsets → UTF-8 byte offsets, in one pass over the text."""
    return _recount(text, positions, lambda piece: len(piece.encode("utf-8", "replace")))


def _recount(seq: str | bytes, positions: set[int], length: Callable) -> dict[int, int]:
    """Offsets in `seq` → offsets in its other encoding, measuring each slice between them."""
    if seq.isascii():
        return {p: p for p in positions}
    out = {}
    done = total = 0
    for pos in sorted(positions):
        total += length(seq[done:pos])
        done = pos
        out[pos] = total
    return out
