"""Cutting candidate values out of normalised text (UTF-8 bytes).

Three kinds of token, each a maximal run of one character class around a
trigger: digit groups with separators (IDs, cards, mobiles), alphanumeric
runs (USCC, passports, permits) and e-mail addresses. Because a token is a
maximal run, finding it from any trigger inside it gives the same token: two
trigger sets that each hit every token holding a reportable value (the precise
hyperscan shapes, the simpler `re` superset) give the same findings.

Boundaries are ASCII: a value glued to Chinese text is a token, a valid-looking
ID inside a longer digit or letter run is not.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass

from rules.detectors import (
    DETECTORS,
    Candidate,
    alnum_candidates,
    email_candidate,
    numeric_candidates,
    tw_permit_digits_candidate,
)

# Separators people put inside numbers: space, dash, dot, slash, line breaks, middle dot.
_SEP = rb"(?:[ \-./\r\n]|\xc2\xb7)"
NUM_CLASS = frozenset(b"0123456789Xx -./\r\n\xc2\xb7")
ALNUM_CLASS = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
EMAIL_CLASS = ALNUM_CLASS | frozenset(b"._%+-@")

# Up to 20 groups of digits, 1-3 separators between groups, an ID's X at the end.
NUM_TOKEN = re.compile(
    rb"(?<![A-Za-z0-9*])[0-9]+(?:" + _SEP + rb"{1,3}[0-9]+){0,19}"
    rb"(?:[Xx](?![A-Za-z0-9*]))?(?![A-Za-z0-9*])"
)
_DIGIT_GROUP = re.compile(rb"[0-9]+")
EMAIL = re.compile(
    rb"(?<![A-Za-z0-9._%+\-*])[A-Za-z0-9][A-Za-z0-9._%+\-]{0,63}"
    rb"@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![A-Za-z0-9\-])"
)

# Triggers: for each token kind, patterns such that every token with a reportable
# candidate contains a match (checked by the backend-identity property tests).
# Shapes are loose supersets of what the detectors accept; their job is to keep
# order numbers, timestamps, hex and dates from waking Python at all.
_DAY = rb"(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])"
NUM_SHAPES = (
    rb"[1-9][0-9]{5}(?:18|19|20)[0-9]{2}" + _DAY + rb"[0-9]{3}[0-9Xx]",  # resident ID
    rb"[1-9][0-9]{7}" + _DAY + rb"[0-9]{3}",  # legacy 15-digit ID
    rb"[3-6][0-9]{15,18}",  # bank card
    rb"(?:0086|86)?1[3-9][0-9]{9}",  # mobile
    rb"[1-9][1-9][0-9]{16}",  # USCC of digits only
)
# A number written in groups: 11 digits ending a group, among which at least one
# separator (the first one after digit k+1), so contiguous digit runs are left to
# the shapes. A last group of 11 or more digits can only be a resident ID's tail
# (birth date, sequence, check character): ID_TAIL covers it.
_DIGITS_APART = rb"(?:[0-9]" + _SEP + rb"{0,3})"


def _digits(n: int) -> bytes:
    """n digits, each followed by up to three separator units (hyperscan refuses {0})."""
    return _DIGITS_APART + b"{%d}" % n if n else b""


NUM_GROUPED = b"|".join(
    _digits(k) + rb"[0-9]" + _SEP + rb"{1,3}" + _digits(9 - k) + rb"[0-9]" for k in range(10)
)
ID_TAIL = rb"(?:18|19|20)[0-9]{2}" + _DAY + rb"[0-9]{3}[0-9Xx]"
# Every numeric trigger needs 11 digits: enough for the `re` backend, where many
# precise shapes cost more than cutting a few more tokens.
NUM_SUPERSET = rb"[0-9](?:" + _SEP + rb"{0,3}[0-9]){10}"
ALNUM_SHAPES = (
    rb"[0-9A-HJ-NP-RTUWXY][1-9][0-9]{6}[0-9A-HJ-NP-RTUWXY]{10}",  # USCC
    rb"[A-Za-z]{1,2}[0-9]{7,10}",  # passports and permits
)
EMAIL_TRIGGER = rb"[A-Za-z0-9._%+\-]@[A-Za-z0-9\-]+\.[A-Za-z0-9]"

MAX_DIGITS = 19  # the longest numeric value (a 19-digit card)
MAX_GROUPS = 9  # an 18-character ID in groups of two

# Bare-digit Taiwan permit numbers are looked for after a context word only.
TW_CONTEXT_TRIGGER = b"|".join(
    re.escape(w.encode()) for w in DETECTORS["cn_tw_permit"].context_words if not w.isascii()
)
TW_CONTEXT_REACH = 64  # bytes after the context word
_TW_DIGITS = re.compile(rb"(?<![A-Za-z0-9*])[0-9]{8}(?:[0-9]{2})?(?![A-Za-z0-9*])")


@dataclass(frozen=True, slots=True)
class Hit:
    """A candidate at a byte span of the normalised text."""

    start: int
    end: int
    candidate: Candidate


def run_around(data: bytes, pos: int, charset: frozenset[int]) -> tuple[int, int]:
    """The maximal run of `charset` bytes containing data[pos]."""
    start = pos
    while start > 0 and data[start - 1] in charset:
        start -= 1
    end = pos + 1
    n = len(data)
    while end < n and data[end] in charset:
        end += 1
    return start, end


# Multi-group windows must look like the way each kind of number is written,
# so "192.168.13.138" is not a mobile and a row of amounts is not a card.
_MOBILE_GROUPINGS = frozenset({(3, 4, 4), (3, 8), (4, 3, 4), (7, 4), (2, 3, 4, 4), (2, 11)})
_ID15_GROUPINGS = frozenset({(6, 6, 3), (6, 9)})


@functools.lru_cache(maxsize=1024)
def _window_detectors(lengths: tuple[int, ...], size: int) -> frozenset[str]:
    """Detectors a window of several digit groups may be, by its grouping and size.

    Checked before any value is built: a long run of "1 1 1 …" offers many
    windows, and none of them may cost more than this.
    """
    found = set()
    if size in (11, 13, 15) and lengths in _MOBILE_GROUPINGS:
        found.add("cn_mobile")
    if 16 <= size <= 19 and all(n == 4 for n in lengths[:-1]) and 1 <= lengths[-1] <= 4:
        found.add("cn_bank_card")
    if size == 18 and all(n >= 2 for n in lengths):
        found.add("cn_resident_id")
    if size == 15 and lengths in _ID15_GROUPINGS:
        found.add("cn_resident_id_15")
    return frozenset(found)


def numeric_hits(data: bytes, start: int, end: int) -> list[Hit]:
    """Candidates in the digit run data[start:end] (a maximal run of number characters)."""
    hits: list[Hit] = []
    for token in NUM_TOKEN.finditer(data, start, min(len(data), end + 1)):
        text = token.group()
        if text.isalnum():  # one group, no separators: the common case, no windows
            if len(text) >= 11:
                value = text.upper().decode("ascii")
                hits.extend(Hit(token.start(), token.end(), c) for c in numeric_candidates(value))
            continue
        groups = [m.span() for m in _DIGIT_GROUP.finditer(data, *token.span())]
        hits.extend(_window_hits(data, groups, check_x=data[token.end() - 1] in b"Xx"))
    return hits


def _window_hits(data: bytes, groups: list[tuple[int, int]], check_x: bool) -> Iterator[Hit]:
    """Candidates among windows of consecutive digit groups of one token."""
    sizes = [b - a for a, b in groups]
    n = len(groups)
    for i in range(n):
        digits = 0
        for j in range(i, min(n, i + MAX_GROUPS)):
            if j > i and sizes[j - 1] < 2:
                break  # nobody writes a number with a one-digit group inside it
            digits += sizes[j]
            last = j == n - 1
            size = digits + (1 if last and check_x else 0)
            if size > MAX_DIGITS + 1:
                break
            if size < 11:
                continue
            allowed = _window_detectors(tuple(sizes[i : j + 1]), size) if j > i else None
            if allowed is not None and not allowed:
                continue
            value = b"".join(data[a:b] for a, b in groups[i : j + 1])
            span_end = groups[j][1]
            if last and check_x:
                value += b"X"
                span_end += 1
            for cand in numeric_candidates(value.decode("ascii")):
                if allowed is None or cand.detector in allowed:
                    yield Hit(groups[i][0], span_end, cand)


def alnum_hits(data: bytes, start: int, end: int) -> list[Hit]:
    if not 8 <= end - start <= 18:
        return []
    token = data[start:end].decode("ascii")
    if token.isdigit():
        return []  # digit runs are numeric tokens
    return [Hit(start, end, c) for c in alnum_candidates(token)]


def email_hits(data: bytes, start: int, end: int) -> list[Hit]:
    return [
        Hit(m.start(), m.end(), email_candidate(m.group().decode("ascii")))
        for m in EMAIL.finditer(data, start, min(len(data), end + 1))
    ]


def tw_permit_hits(data: bytes, context_end: int) -> list[Hit]:
    """8 or 10 bare digits shortly after a Taiwan-permit context word."""
    stop = min(len(data), context_end + TW_CONTEXT_REACH)
    return [
        Hit(m.start(), m.end(), tw_permit_digits_candidate(m.group().decode("ascii")))
        for m in _TW_DIGITS.finditer(data, context_end, stop)
    ]
