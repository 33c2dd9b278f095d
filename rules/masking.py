"""Masked forms in the users' own formats, and the keyed hash used for correlation.

A masked value shows no more than its format allows: `440301********1234`,
`6222 **** **** 1234`, `138****5678`, `z***@163.com`. The keyed hash lets two
events about the same value be linked without either holding the value.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rules.findings import Finding


def keep_ends(value: str, head: int, tail: int, stars: int | None = None) -> str:
    """`head` first and `tail` last characters, the rest as '*' (at least 3)."""
    if len(value) <= head + tail + 2:  # too short to show anything safely
        head, tail = min(head, 1), min(tail, 1) if len(value) > 4 else 0
    hidden = stars if stars is not None else max(3, len(value) - head - tail)
    return value[:head] + "*" * hidden + (value[-tail:] if tail else "")


def mask_resident_id(value: str) -> str:
    # 15-digit IDs end in a 3-digit sequence: showing 4 would reveal a birth-date digit.
    return keep_ends(value, 6, 4 if len(value) == 18 else 3)


def mask_bank_card(value: str) -> str:
    # Always four groups: the card's length is not disclosed either.
    return f"{value[:4]} **** **** {value[-4:]}"


def mask_mobile(value: str) -> str:
    return keep_ends(value, 3, 4)


def mask_email(value: str) -> str:
    local, _, domain = value.partition("@")
    return f"{local[:1]}***@{domain}"


def mask_code(value: str) -> str:
    """Passports, permits, organisation codes: kind letter(s) and last two."""
    return keep_ends(value, 2, 2)


def mask_uscc(value: str) -> str:
    return keep_ends(value, 6, 4)


def mask_word(value: str) -> str:
    return keep_ends(value, 1, 0)


def value_hash(key: bytes, detector: str, normalised_value: str) -> str:
    """HMAC-SHA256 over detector id and normalised value, 128 bits in hex."""
    msg = f"{detector}\x00{normalised_value}".encode()
    return hmac.new(key, msg, hashlib.sha256).hexdigest()[:32]


class CannotMask(Exception):
    """Content that cannot be rewritten safely; `reason` names the place, never a value."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def replace_spans(text: str, findings: Sequence[Finding]) -> str:
    """`text` with each finding's span replaced by its masked form (the proxy's bodies and the
    relay's mail parts alike)."""
    out, pos = [], 0
    for f in sorted(findings, key=lambda f: f.start):
        if f.start < pos:
            continue  # overlapping spans: the first one already covers it
        if "inside base64" in f.why:
            raise CannotMask("a value inside base64-encoded content cannot be masked in place")
        out += [text[pos : f.start], f.masked]
        pos = f.end
    return "".join([*out, text[pos:]])
