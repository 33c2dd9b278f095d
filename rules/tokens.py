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

# Digit groups with 1-3 separators between them; which groups are glued to letters
# (ID12345…) and whether an ID's X follows is decided in Python around the run.
_GROUP_RUN = re.compile(rb"[0-9]+(?:" + _SEP + rb"{1,3}[0-9]+)*")
_DIGIT_GROUP = re.compile(rb"[0-9]+")
EMAIL = re.compile(
    rb"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9][A-Za-z0-9._%+\-]{0,63}"
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
# The last 12 characters of an ID (full year) or its last 11 (a group can start
# inside the year: 4403011 99003071230).
ID_TAIL = rb"(?:(?:18|19|20)[0-9]|[0-9]{2})[0-9]" + _DAY + rb"[0-9]{3}[0-9Xx]"
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
_TW_DIGITS = re.compile(rb"(?<![A-Za-z0-9])[0-9]{8}(?:[0-9]{2})?(?![A-Za-z0-9])")


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
def _window_detectors(lengths: tuple[int, ...], size: int, breaks: int) -> frozenset[str]:
    """Detectors a window of several digit groups may be, by its grouping and size.

    Checked before any value is built: a long run of "1 1 1 …" offers many
    windows, and none of them may cost more than this. Line breaks may wrap
    an ID or a card (checksums keep lists of numbers out); a mobile has no
    checksum, and one across lines is far more often a list of numbers.
    """
    found = set()
    if size in (11, 13, 15) and lengths in _MOBILE_GROUPINGS and not breaks:
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
    n = len(data)
    for run in _GROUP_RUN.finditer(data, start, end):
        first, stop = run.span()
        groups = [m.span() for m in _DIGIT_GROUP.finditer(data, first, stop)]
        if first > 0 and data[first - 1] in ALNUM_CLASS:
            groups = groups[1:]  # glued to a word: ID12345…
        check_x = stop < n and data[stop] in b"Xx"
        if check_x and stop + 1 < n and data[stop + 1] in ALNUM_CLASS:
            check_x = False
        if not check_x and stop < n and data[stop] in ALNUM_CLASS:
            groups = groups[:-1]
        if len(groups) == 1:  # the common case: no windows
            a, b = groups[0]
            if b - a + check_x >= 11:
                value = (data[a:b] + (b"X" if check_x else b"")).decode("ascii")
                hits.extend(Hit(a, b + check_x, c) for c in numeric_candidates(value))
        elif groups:
            hits.extend(_window_hits(data, groups, check_x))
    return hits


def _window_hits(data: bytes, groups: list[tuple[int, int]], check_x: bool) -> Iterator[Hit]:
    """Candidates among windows of consecutive digit groups of one run."""
    sizes = [b - a for a, b in groups]
    if check_x:
        sizes[-1] += 1  # the X is the ID's last character
    # breaks[j]: a line break between group j-1 and group j
    breaks = [0] + [b"\n" in data[groups[j - 1][1] : groups[j][0]] for j in range(1, len(groups))]
    n = len(groups)
    for i in range(n):
        digits = 0
        lines = 0
        for j in range(i, min(n, i + MAX_GROUPS)):
            if j > i:
                if sizes[j - 1] < 2:
                    break  # nobody writes a number with a one-digit group inside it
                lines += breaks[j]
            digits += sizes[j]
            size = digits
            if size > MAX_DIGITS + 1:
                break
            if size < 11:
                continue
            allowed = _window_detectors(tuple(sizes[i : j + 1]), size, lines) if j > i else None
            if allowed is not None and not allowed:
                continue
            last = j == n - 1
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


_STARS_AFTER_A_WORD = re.compile(rb"[A-Za-z0-9]\*+$")


def email_hits(data: bytes, start: int, end: int) -> list[Hit]:
    hits = []
    for m in EMAIL.finditer(data, start, min(len(data), end + 1)):
        if _STARS_AFTER_A_WORD.search(data, max(0, m.start() - 16), m.start()):
            continue  # w****g@qq.com is masked; **zhang@163.com** (bold) is not
        hits.append(Hit(m.start(), m.end(), email_candidate(m.group().decode("ascii"))))
    return hits


def tw_permit_hits(data: bytes, context_end: int) -> list[Hit]:
    """8 or 10 bare digits shortly after a Taiwan-permit context word."""
    stop = min(len(data), context_end + TW_CONTEXT_REACH)
    return [
        Hit(m.start(), m.end(), tw_permit_digits_candidate(m.group().decode("ascii")))
        for m in _TW_DIGITS.finditer(data, context_end, stop)
    ]
