"""Synthetic PII for the audit tests: resident ID numbers that pass GB 11643's check.

Made up — region 110105 with generated birth dates and sequence numbers, the check
character computed — so none belongs to a person."""

from __future__ import annotations

from datetime import date, timedelta

WEIGHTS = [2 ** (17 - i) % 11 for i in range(17)]
CHECK = "10X98765432"


def resident_id(n: int, region: str = "110105") -> str:
    """The n-th synthetic 18-character resident ID number (n ≥ 0), each one different."""
    born = date(1970, 1, 1) + timedelta(days=n // 900)
    body = f"{region}{born:%Y%m%d}{100 + n % 900:03d}"
    return body + CHECK[sum(int(c) * w for c, w in zip(body, WEIGHTS, strict=True)) % 11]
