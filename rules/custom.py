"""Detectors the policy declares: keyword dictionaries and custom regexes.

Both run on the normalised text (full-width folded, escapes decoded), so
a keyword written in full-width or HTML entities is still found.
Keywords use one Aho-Corasick automaton (pyahocorasick) however many words;
a regex may name a validator that confirms or drops each match.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import import_module

import ahocorasick

from rules import checks, masking
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


class KeywordSearch:
    """Several keyword detectors in one pass: one automaton, the text lowered once."""

    def __init__(self, detectors: Sequence[KeywordDetector]) -> None:
        self.detectors = tuple(detectors)
        self._caseless = self._automaton(False)
        self._exact = self._automaton(True)

    def _automaton(self, case_sensitive: bool) -> ahocorasick.Automaton | None:
        owners: dict[str, list[int]] = {}  # a word may belong to several detectors
        for i, detector in enumerate(self.detectors):
            if detector.case_sensitive == case_sensitive:
                for word in detector.words:
                    # folded as the text is, so that "İ" (two characters lowered) can match
                    key = word if case_sensitive else _lower_keeping_offsets(word)
                    if i not in owners.setdefault(key, []):
                        owners[key].append(i)
        if not owners:
            return None
        automaton = ahocorasick.Automaton()
        for key, who in owners.items():
            automaton.add_word(key, (len(key), tuple(who)))
        automaton.make_automaton()
        return automaton

    def find(self, text: str) -> list[tuple[int, int, Candidate]]:
        return [hit for hits in self.find_each(text) for hit in hits]

    def find_each(self, text: str) -> list[list[tuple[int, int, Candidate]]]:
        """What each detector's own find would answer, in the order of the detectors."""
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
