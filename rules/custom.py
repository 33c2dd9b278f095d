"""Detectors the policy declares: keyword dictionaries and custom regexes.

Both run on the normalised text (full-width folded, escapes decoded), so
a keyword written in full-width or HTML entities is still found.
Keywords use one Aho-Corasick automaton (pyahocorasick) however many words;
a regex may name a validator that confirms or drops each match.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import import_module

import ahocorasick

from rules import checks, masking, triggers
from rules.detectors import Candidate

# Validators a policy may name for a custom regex (the match, separators removed).
VALIDATORS: dict[str, Callable[[str], bool]] = {
    "luhn": lambda v: v.isdigit() and checks.luhn_ok(v),
    "gb11643": lambda v: checks.resident_id_problem(v.upper()) is None,
    "gb32100": lambda v: checks.uscc_problem(v.upper()) is None,
    "cn_mobile": checks.mobile_ok,
}


def resolve_validator(name: str) -> Callable[[str], bool]:
    """A built-in validator, or `stdnum:<module>` for any python-stdnum format."""
    if name in VALIDATORS:
        return VALIDATORS[name]
    if name.startswith("stdnum:"):
        try:
            module = import_module("stdnum." + name.removeprefix("stdnum:"))
        except ImportError:
            module = None
        if module is None or not callable(getattr(module, "is_valid", None)):
            raise ValueError(
                f"unknown validator {name!r}: python-stdnum has no format "
                f"{name.removeprefix('stdnum:')!r} with is_valid()"
            )
        return module.is_valid
    known = ", ".join([*VALIDATORS, "stdnum:<module>"])
    raise ValueError(f"unknown validator {name!r} (known: {known})")


def _lower_keeping_offsets(text: str) -> str:
    """Lower case, one character for one: 'İ'.lower() is two characters and would shift spans."""
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    return "".join(low if len(low := c.lower()) == 1 else c for c in text)


class CustomDetector:
    """Interface: `id`, `mask(value)`, `find(text) -> [(start, end, Candidate)]`."""

    id: str

    def mask(self, value: str) -> str:
        return masking.mask_word(value)

    def find(self, text: str) -> list[tuple[int, int, Candidate]]:
        raise NotImplementedError


@dataclass
class KeywordDetector(CustomDetector):
    id: str
    words: tuple[str, ...]
    score: float = 0.8
    case_sensitive: bool = False
    _search: KeywordSearch = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.words:
            raise ValueError(f"keyword detector {self.id!r} has no words")
        self._search = KeywordSearch((self,))

    def find(self, text: str) -> list[tuple[int, int, Candidate]]:
        return self._search.find(text)


@functools.cache
def _lowering_to() -> dict[str, tuple[str, ...]]:
    """Each character that some other character lowers to (one for one), and those others."""
    out: dict[str, list[str]] = {}
    for code in range(sys.maxunicode + 1):
        ch = chr(code)
        low = ch.lower()
        if len(low) == 1 and low != ch:
            out.setdefault(low, []).append(ch)
    return {low: tuple(others) for low, others in out.items()}


def _keyword_pattern(key: str, case_sensitive: bool) -> bytes:
    """A hyperscan (UTF-8) pattern for the characters that fold to `key` as the text does."""
    parts = []
    for ch in key:
        same = [ch] if case_sensitive else [
            c for c in (ch, *_lowering_to().get(ch, ())) if _lower_keeping_offsets(c) == ch
        ]  # fmt: skip
        escaped = "".join(f"\\x{{{ord(c):x}}}" for c in same)
        parts.append(escaped if len(same) == 1 else f"[{escaped}]")
    return "".join(parts).encode()


class KeywordSearch:
    """Several keyword detectors in one pass, the text lowered once (Aho-Corasick), or
    with hyperscan one scan of the bytes the engine has anyway, nothing lowered."""

    def __init__(self, detectors: Sequence[KeywordDetector], backend: str = "re") -> None:
        self.detectors = tuple(detectors)
        self._keys = {flag: self._owners(flag) for flag in (False, True)}
        self._caseless = self._automaton(False)
        self._exact = self._automaton(True)
        self._hyperscan = None
        if self.detectors and triggers.use_hyperscan(backend):
            self._patterns = [(flag, key, who) for flag in (False, True)
                              for key, who in self._keys[flag].items()]  # fmt: skip
            self._hyperscan = triggers.HyperscanLiterals(
                [_keyword_pattern(key, flag) for flag, key, _ in self._patterns], utf8=True
            )

    def _owners(self, case_sensitive: bool) -> dict[str, tuple[int, ...]]:
        """Each key (a word, folded unless case-sensitive) and the detectors it belongs to."""
        owners: dict[str, list[int]] = {}
        for i, detector in enumerate(self.detectors):
            if detector.case_sensitive == case_sensitive:
                for word in detector.words:
                    # folded as the text is, so that "İ" (two characters lowered) can match
                    key = word if case_sensitive else _lower_keeping_offsets(word)
                    if i not in owners.setdefault(key, []):
                        owners[key].append(i)
        return {key: tuple(who) for key, who in owners.items()}

    def _automaton(self, case_sensitive: bool) -> ahocorasick.Automaton | None:
        owners = self._keys[case_sensitive]
        if not owners:
            return None
        automaton = ahocorasick.Automaton()
        for key, who in owners.items():
            automaton.add_word(key, (len(key), who))
        automaton.make_automaton()
        return automaton

    def find(self, text: str) -> list[tuple[int, int, Candidate]]:
        return [hit for hits in self.find_each(text) for hit in hits]

    def find_each(
        self,
        text: str,
        data: bytes | None = None,
        to_char: Callable[[bytes, set[int]], dict[int, int]] | None = None,
    ) -> list[list[tuple[int, int, Candidate]]]:
        """What each detector's own find would answer, in the order of the detectors.

        With hyperscan, `data` is `text` in UTF-8 ("replace" errors) and `to_char` turns
        byte offsets of it into character offsets."""
        if self._hyperscan is not None and data is not None and to_char is not None:
            return self._find_each_in_bytes(text, data, to_char)
        found: list[list[tuple[int, int, Candidate]]] = [[] for _ in self.detectors]
        for automaton, haystack in (
            (self._caseless, _lower_keeping_offsets(text) if self._caseless else ""),
            (self._exact, text),
        ):
            if automaton is None:
                continue
            for end, (length, who) in automaton.iter(haystack):
                start = end + 1 - length
                value = haystack[start : end + 1]
                for i in who:
                    d = self.detectors[i]
                    cand = Candidate(d.id, value, d.score, d.score, ("keyword",))
                    found[i].append((start, end + 1, cand))
        return found

    def _find_each_in_bytes(
        self, text: str, data: bytes, to_char: Callable[[bytes, set[int]], dict[int, int]]
    ) -> list[list[tuple[int, int, Candidate]]]:
        found: list[list[tuple[int, int, Candidate]]] = [[] for _ in self.detectors]
        spans = self._hyperscan.spans(data)
        if not spans:
            return found
        chars = to_char(data, {p for _, start, end in spans for p in (start, end)})
        # the order Aho-Corasick reports in: by end, the longer first
        spans.sort(key=lambda m: (chars[m[2]], chars[m[1]]))
        for pid, b_start, b_end in spans:
            case_sensitive, _, who = self._patterns[pid]
            start, end = chars[b_start], chars[b_end]
            value = text[start:end] if case_sensitive else _lower_keeping_offsets(text[start:end])
            for i in who:
                d = self.detectors[i]
                found[i].append(
                    (start, end, Candidate(d.id, value, d.score, d.score, ("keyword",)))
                )
        return found


@dataclass
class RegexDetector(CustomDetector):
    id: str
    pattern: str
    score: float = 0.8
    validator: str | None = None
    keep_head: int = 2
    keep_tail: int = 2
    _regex: re.Pattern[str] = field(init=False, repr=False)
    _validate: Callable[[str], bool] | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        try:
            self._regex = re.compile(self.pattern)
        except re.error as err:
            raise ValueError(f"detector {self.id!r}: invalid regex: {err}") from None
        self._validate = resolve_validator(self.validator) if self.validator else None

    def mask(self, value: str) -> str:
        return masking.keep_ends(value, self.keep_head, self.keep_tail)

    def find(self, text: str) -> list[tuple[int, int, Candidate]]:
        out = []
        why = (
            ("custom pattern", f"validator {self.validator}")
            if self.validator
            else ("custom pattern",)
        )
        for m in self._regex.finditer(text):
            value = re.sub(r"[\s\-.·/]", "", m.group())
            if not value or (self._validate and not self._validate(value)):
                continue
            out.append((m.start(), m.end(), Candidate(self.id, value, self.score, self.score, why)))
        return out
