"""Check characters and plausibility tests for Chinese identifiers.

Hand-written because they run in the hot path (python-stdnum's `cn.ric`
costs ~15x more and rejects real 81/82/83 residence-permit numbers); the
tests cross-check these against python-stdnum where it agrees.
"""

from __future__ import annotations

import datetime as _dt
import re

import phonenumbers

# GB 11643-1999: weights 2^(17-i) mod 11, check = (12 - sum mod 11) mod 11, 10 → X.
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"

# Province-level codes (GB/T 2260), plus 71 Taiwan, 81/82/83 residence permits
# for Hong Kong, Macau and Taiwan residents.
PROVINCES = frozenset(
    {11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46}
    | {50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83}
)

# GB 32100-2015 (USCC): 31-character alphabet without I O Z S V, weights 3^i mod 31.
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE = {c: i for i, c in enumerate(USCC_ALPHABET)}
_USCC_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))
# GB 11714 organisation code embedded at positions 9-17.
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
# First character: registration authority (1 机构编制, 5 民政, 9 工商, Y 其他, …).
_USCC_AUTHORITY = frozenset("123456789ANY")

# Mobile numbers: the allocated ranges as phonenumbers (libphonenumber) keeps them.
_CN_MOBILE = re.compile(
    phonenumbers.PhoneMetadata.metadata_for_region("CN").mobile.national_number_pattern
)


def gb11643_check_char(body17: str) -> str:
    return _ID_CHECK[sum(int(c) * w for c, w in zip(body17, _ID_WEIGHTS, strict=True)) % 11]


def valid_birth_date(year: int, month: int, day: int, today: _dt.date | None = None) -> bool:
    """A real calendar date, not before 1880 and not in the future."""
    if year < 1880:
        return False
    try:
        born = _dt.date(year, month, day)
    except ValueError:
        return False
    return born <= (today or _dt.date.today())


def valid_area_prefix(digits: str) -> bool:
    """Province code; foreigners' permanent residence cards (2023) are 9 + province."""
    if int(digits[:2]) in PROVINCES:
        return True
    return digits[0] == "9" and int(digits[1:3]) in PROVINCES


def resident_id_problem(value: str) -> str | None:
    """None when `value` (18 chars, upper-case X) is a valid resident ID, else why not."""
    if len(value) != 18 or not value[:17].isdigit() or value[17] not in "0123456789X":
        return "shape"
    if not valid_area_prefix(value):
        return "province code"
    if not valid_birth_date(int(value[6:10]), int(value[10:12]), int(value[12:14])):
        return "birth date"
    if gb11643_check_char(value[:17]) != value[17]:
        return "check character"
    return None


def resident_id_15_problem(value: str) -> str | None:
    """Legacy 15-digit ID: area, YYMMDD (19YY), sequence; no check character."""
    if len(value) != 15 or not value.isdigit():
        return "shape"
    if not valid_area_prefix(value):
        return "province code"
    if not valid_birth_date(1900 + int(value[6:8]), int(value[8:10]), int(value[10:12])):
        return "birth date"
    return None


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i & 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def org_code_check_char(body8: str) -> str:
    total = sum(
        (int(c) if c.isdigit() else ord(c) - 55) * w
        for c, w in zip(body8, _ORG_WEIGHTS, strict=True)
    )
    c = 11 - total % 11
    return "X" if c == 10 else "0" if c == 11 else str(c)


def uscc_check_char(body17: str) -> str:
    total = sum(_USCC_VALUE[c] * w for c, w in zip(body17, _USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def uscc_problem(value: str) -> str | None:
    """None when `value` (18 upper-case chars) is a valid Unified Social Credit Code."""
    if len(value) != 18 or any(c not in _USCC_VALUE for c in value):
        return "shape"
    if value[0] not in _USCC_AUTHORITY or not value[2:8].isdigit():
        return "registration authority or area code"
    if len(set(value)) == 1:
        return "placeholder"
    if uscc_check_char(value[:17]) != value[17]:
        return "check character"
    if org_code_check_char(value[8:16]) != value[16]:
        return "organisation code check character"
    return None


def mobile_ok(national11: str) -> bool:
    """An 11-digit national number in an allocated mobile range."""
    return len(national11) == 11 and _CN_MOBILE.fullmatch(national11) is not None
