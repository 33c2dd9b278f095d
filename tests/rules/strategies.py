"""Synthetic identifiers, written independently of `rules.checks`, and their disguises.

Every value here is made with the published check algorithms (GB 11643, Luhn,
GB 32100 + GB 11714) implemented afresh, so the tests compare two
implementations instead of one with itself. Nothing here is a real person's data.
"""

from __future__ import annotations

import base64
import datetime as dt
import random
from urllib.parse import quote

from hypothesis import strategies as st

from rules.masking import value_hash

KEY = b"leakguard-test-key-0123456789abcdef"

# GB/T 2260 province-level codes, plus 71 Taiwan and 81/82/83 (residence permits).
PROVINCES = tuple(
    str(p)
    for p in (
        *range(11, 16),
        *range(21, 24),
        *range(31, 38),
        *range(41, 47),
        *range(50, 55),
        *range(61, 66),
        71,
        81,
        82,
        83,
    )
)
NOT_PROVINCES = (
    "00",
    "10",
    "20",
    "24",
    "30",
    "38",
    "40",
    "49",
    "55",
    "60",
    "66",
    "70",
    "80",
    "84",
    "90",
    "99",
)

# Allocated mobile prefixes (174 is only partly allocated, so it is left out).
MOBILE_PREFIXES = tuple(
    str(p)
    for p in [
        *range(130, 140),
        *range(150, 154),
        *range(155, 160),
        166,
        *range(170, 174),
        *range(175, 179),
        *range(180, 190),
        191,
        193,
        *range(195, 200),
    ]
)
UNALLOCATED_MOBILE_PREFIXES = ("120", "127", "140", "154", "194")

TODAY = dt.date.today()


# -- check characters, implemented independently ------------------------------------------


def gb11643_check(body17: str) -> str:
    """ISO 7064 MOD 11-2 as the standard states it: sum of d_i * 2^(17-i) mod 11."""
    total = sum(int(d) * pow(2, 17 - i, 11) for i, d in enumerate(body17))
    return "10X98765432"[total % 11]


def luhn_check(body: str) -> str:
    """The digit that makes body + digit pass Luhn."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:  # these are doubled once the check digit is appended
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    return luhn_check(number[:-1]) == number[-1]


USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_ORG_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def uscc_check(body17: str) -> str:
    total = sum(USCC_ALPHABET.index(c) * pow(3, i, 31) for i, c in enumerate(body17))
    return USCC_ALPHABET[-total % 31]


def org_check(body8: str) -> str:
    weights = (3, 7, 9, 10, 5, 8, 4, 2)
    total = sum(_ORG_ALPHABET.index(c) * w for c, w in zip(body8, weights, strict=True))
    c = (11 - total % 11) % 11
    return "X" if c == 10 else str(c)


# -- building values ------------------------------------------------------------------


def make_resident_id(area: str, born: str, seq: str) -> str:
    body = area + born + seq
    assert len(body) == 17 and body.isdigit(), body
    return body + gb11643_check(body)


def make_card(prefix: str, length: int, fill: str = "0") -> str:
    body = (prefix + fill * length)[: length - 1]
    return body + luhn_check(body)


def make_uscc(authority_type: str, area: str, org8: str) -> str:
    org = org8 + org_check(org8)
    body = authority_type + area + org
    assert len(body) == 17, body
    return body + uscc_check(body)


def wrong_last(value: str, alphabet: str = "0123456789X") -> str:
    """The same value with a different (wrong) last character."""
    return value[:-1] + next(c for c in alphabet if c != value[-1])


def wrong_luhn(card: str) -> str:
    return card[:-1] + str((int(card[-1]) + 1) % 10)


# -- hypothesis strategies ------------------------------------------------------------

birth_dates = st.dates(min_value=dt.date(1880, 1, 1), max_value=TODAY)
areas = st.one_of(
    st.builds(
        lambda p, rest: p + rest,
        st.sampled_from(PROVINCES),
        st.text("0123456789", min_size=4, max_size=4),
    ),
    # foreigners' permanent residence cards: 9 + province code + 3 digits
    st.builds(
        lambda p, rest: "9" + p + rest,
        st.sampled_from(PROVINCES),
        st.text("0123456789", min_size=3, max_size=3),
    ),
)
resident_ids = st.builds(
    lambda a, d, s: make_resident_id(a, d.strftime("%Y%m%d"), s),
    areas,
    birth_dates,
    st.text("0123456789", min_size=3, max_size=3),
)


@st.composite
def cards(draw) -> str:
    """Luhn-valid UnionPay (62…) cards, 16-19 digits."""
    n = draw(st.integers(16, 19))
    body = "62" + draw(st.text("0123456789", min_size=n - 3, max_size=n - 3))
    return body + luhn_check(body)


mobiles = st.builds(
    lambda p, rest: p + rest,
    st.sampled_from(MOBILE_PREFIXES),
    st.text("0123456789", min_size=8, max_size=8),
)


@st.composite
def usccs(draw) -> str:
    authority = draw(st.sampled_from("1235789"))
    kind = draw(st.sampled_from("123"))
    area = draw(st.sampled_from(PROVINCES)) + draw(st.text("0123456789", min_size=4, max_size=4))
    org = draw(st.text("0123456789ABCDEFGHJKLMNPQRTUWXY", min_size=8, max_size=8))
    return make_uscc(authority + kind, area, org)


# Filler without digits or escapes (a value is always set off from it by a separator).
FILLER_WORDS = (
    "你好",
    "请查收",
    "附件如下",
    "谢谢",
    "今天",
    "下午开会",
    "客户资料",
    "已经核对",
    "见下表",
    "。",
    "，",
    "：",
    "（",
    "）",
    "hello",
    "please see",
    "ok",
    "thanks",
    "regards",
    "FYI",
    "notes",
    " ",
    "\n",
)
_FILLER_CHARS = st.one_of(
    st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF),  # CJK ideographs
    st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ ,.!?:;()'\"，。：、"),
)
fillers = st.one_of(
    st.lists(st.sampled_from(FILLER_WORDS), max_size=6).map("".join),
    st.text(_FILLER_CHARS, max_size=12),
)


# -- disguises ------------------------------------------------------------------------

FULL_WIDTH = {c: chr(ord(c) + 0xFEE0) for c in "0123456789X"}
CN_ORDINARY = dict(zip("0123456789", "〇一二三四五六七八九", strict=True))
CN_FINANCIAL = dict(zip("0123456789", "零壹贰叁肆伍陆柒捌玖", strict=True))
CN_SPOKEN = {**CN_ORDINARY, "1": "幺", "0": "零"}  # read aloud: 幺三八 五五幺四 …
ZW = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u200e", "\u202c")


def group(value: str, sizes: tuple[int, ...], sep: str) -> str:
    out, pos = [], 0
    for n in sizes:
        out.append(value[pos : pos + n])
        pos += n
    if pos < len(value):
        out.append(value[pos:])
    return sep.join(out)


def natural_groups(detector: str, value: str) -> tuple[int, ...]:
    """How people group each kind of number when they write it."""
    if detector == "cn_resident_id":
        return (6, 8, 4)
    if detector == "cn_mobile":
        return (3, 4, 4)
    return (4,) * (len(value) // 4)


def map_chars(value: str, table: dict[str, str]) -> str:
    return "".join(table.get(c, c) for c in value)


def insert_every(value: str, marks: str, seed: int) -> str:
    rng = random.Random(seed)
    return "".join(
        c + (rng.choice(marks) if i < len(value) - 1 else "") for i, c in enumerate(value)
    )


def html_entities(value: str) -> str:
    return "".join(f"&#{ord(c)};" if i % 2 else f"&#x{ord(c):x};" for i, c in enumerate(value))


def url_all(text: str) -> str:
    """Every byte percent-encoded, digits included."""
    return "".join(f"%{b:02X}" for b in text.encode())


def _utf16_units(text: str) -> list[int]:
    raw = text.encode("utf-16-be")
    return [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]


def json_escape_all(text: str) -> str:
    return "".join(f"\\u{u:04x}" for u in _utf16_units(text))


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def url_quote(text: str) -> str:
    return quote(text, safe="")


# Disguises of the value alone: (name, function(detector, value, seed) -> text).
VALUE_DISGUISES = {
    "plain": lambda det, v, s: v,
    "spaces": lambda det, v, s: group(v, natural_groups(det, v), " "),
    "dashes": lambda det, v, s: group(v, natural_groups(det, v), "-"),
    "full-width": lambda det, v, s: map_chars(v, FULL_WIDTH),
    "zero-width": lambda det, v, s: insert_every(v, "".join(ZW), s),
    "html-entities": lambda det, v, s: html_entities(v),
    "cn-ordinary": lambda det, v, s: map_chars(v, CN_ORDINARY),
    "cn-financial": lambda det, v, s: map_chars(v, CN_FINANCIAL),
    "cn-spoken-groups": lambda det, v, s: group(
        map_chars(v, CN_SPOKEN), natural_groups(det, v), " "
    ),
}
# Disguises of the whole sentence.
TEXT_DISGUISES = {
    "url-all-bytes": url_all,
    "url-quote": url_quote,
    "json-u-escapes": json_escape_all,
    "base64": b64,
}


# -- comparing findings without raw values ----------------------------------------------


def hash_of(detector: str, value: str) -> str:
    return value_hash(KEY, detector, value)


def has(findings, detector: str, value: str) -> bool:
    """Whether `findings` report `value` as `detector` (compared by keyed hash)."""
    wanted = hash_of(detector, value)
    return any(f.detector == detector and f.value_hash == wanted for f in findings)


def the(findings, detector: str, value: str):
    """The one finding reporting `value` as `detector`."""
    wanted = hash_of(detector, value)
    matches = [f for f in findings if f.detector == detector and f.value_hash == wanted]
    assert len(matches) == 1, [f.to_dict() for f in findings]
    return matches[0]
