"""The values the engine hands out: `Finding` and the text `Part`s it scans.

A Finding never carries the raw value: only the masked form and a keyed hash
of the normalised value (for correlation across events without disclosure).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Detector ids for findings that are about the container, not a value in it.
ENCRYPTED_ARCHIVE = "encrypted_archive"
UNINSPECTABLE = "uninspectable"


@dataclass(frozen=True, slots=True)
class Finding:
    """One sensitive value (or one inspection problem) found in content."""

    detector: str  # fixed id: cn_resident_id, cn_bank_card, …, encrypted_archive, uninspectable
    score: float  # 0..1 confidence
    location: str  # e.g. "attachment 债务清单.xlsx › Sheet1!C7"
    start: int  # offsets into the original text of the part (0, 0 for container findings)
    end: int
    masked: str  # the value in the users' masked format ("" for container findings)
    value_hash: str  # HMAC of the normalised value with the installation key ("" if none)
    why: tuple[str, ...] = ()  # human reasons: checks passed, context words, decodings
    data_class: str = ""  # set by the policy (identity, financial, …)
    level: str = ""  # set by the policy: core, important, basic

    def to_dict(self) -> dict:
        out = {
            "type": self.detector,
            "score": round(self.score, 2),
            "location": self.location,
            "start": self.start,
            "end": self.end,
            "masked": self.masked,
            "hash": self.value_hash,
            "why": list(self.why),
        }
        if self.data_class:
            out["class"] = self.data_class
            out["level"] = self.level
        return out


@dataclass(frozen=True, slots=True)
class Segment:
    """A sub-location inside a Part's text, starting at `offset` (e.g. one cell)."""

    offset: int
    location: str


@dataclass(frozen=True, slots=True)
class Part:
    """Text extracted from content, ready to scan.

    `location` names the part ("attachment 债务清单.xlsx › Sheet1"); `segments`,
    sorted by offset, refine it for spans of the text ("… › Sheet1!C7"), so a
    sheet of many cells is one Part and one scan, not thousands.
    """

    location: str
    text: str
    segments: tuple[Segment, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class Problem:
    """Content that could not be inspected: becomes a container Finding."""

    detector: str  # ENCRYPTED_ARCHIVE or UNINSPECTABLE
    location: str
    reason: str

    def to_finding(self) -> Finding:
        return Finding(self.detector, 1.0, self.location, 0, 0, "", "", (self.reason,))
