"""The built-in detectors, declared as data, and how a candidate value is judged.

The engine cuts candidate values out of text (digit groups, alphanumeric
runs, e-mail addresses); this module says which detector a value could be,
with what confidence, and why. Confidence has two figures: without and with
a context word (身份证, 卡号, 手机, 护照, …) near the value. Detectors that
need context (legacy IDs, passports, permits) score below the reporting
threshold without it.

Fixed ids — policies, events and the CLI use them:
cn_resident_id, cn_resident_id_15, cn_bank_card, cn_mobile, cn_uscc,
cn_passport, cn_hk_macau_permit, cn_tw_permit, email.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from rules import checks, masking

DEFAULT_MIN_SCORE = 0.5


@dataclass(frozen=True)
class Detector:
    id: str
    title: str
    context_words: tuple[str, ...]
    mask: Callable[[str], str]


_ID_WORDS = (
    "身份证", "身份号", "证件号", "公民身份", "居民身份", "sfz", "id card", "idcard", "id_card",
    "id no", "id_no", "idno", "id number", "identity",
)  # fmt: skip

DETECTORS: dict[str, Detector] = {
    d.id: d
    for d in (
        Detector(
            "cn_resident_id",
            "resident identity card number (18)",
            (*_ID_WORDS, "证件号码", "居住证"),
            masking.mask_resident_id,
        ),
        Detector(
            "cn_resident_id_15",
            "legacy resident identity card number (15)",
            _ID_WORDS,
            masking.mask_resident_id,
        ),
        Detector(
            "cn_bank_card",
            "bank card number",
            (
                "卡号",
                "银行卡",
                "借记卡",
                "信用卡",
                "储蓄卡",
                "工资卡",
                "银联",
                "账号",
                "帐号",
                "账户",
                "帐户",
                "开户",
                "card",
                "account",
                "acct",
            ),
            masking.mask_bank_card,
        ),
        Detector(
            "cn_mobile",
            "mobile phone number",
            (
                "手机",
                "电话",
                "联系方式",
                "联系人",
                "短信",
                "微信",
                "mobile",
                "phone",
                "tel",
                "cell",
                "whatsapp",
                "sms",
            ),
            masking.mask_mobile,
        ),
        Detector(
            "cn_uscc",
            "unified social credit code",
            (
                "统一社会信用代码",
                "信用代码",
                "社会信用",
                "税号",
                "纳税人识别号",
                "uscc",
                "credit code",
            ),
            masking.mask_uscc,
        ),
        Detector(
            "cn_passport",
            "passport number",
            ("护照", "旅行证件", "passport"),
            masking.mask_code,
        ),
        Detector(
            "cn_hk_macau_permit",
            "Hong Kong/Macau travel permit number",
            (
                "港澳通行证",
                "往来港澳",
                "回乡证",
                "来往内地",
                "港澳居民",
                "通行证",
                "home return",
                "permit",
            ),
            masking.mask_code,
        ),
        Detector(
            "cn_tw_permit",
            "Taiwan travel permit number",
            ("台胞证", "台湾居民来往", "往来台湾", "来往大陆", "赴台", "通行证", "mtp", "permit"),
            masking.mask_code,
        ),
        Detector(
            "email",
            "e-mail address",
            ("邮箱", "邮件", "email", "e-mail", "mail"),
            masking.mask_email,
        ),
    )
}

# Detector ids in the order they win when one value fits several.
PRIORITY = tuple(DETECTORS)


@dataclass(frozen=True, slots=True)
class Candidate:
    """What a value could be: scores without and with a context word, and why."""

    detector: str
    value: str  # normalised value: hashed and masked, never shown
    score: float
    score_in_context: float
    why: tuple[str, ...]


# Issuer prefixes of Chinese banks' Visa/Mastercard/JCB cards seen in debt files;
# UnionPay (62) is recognised by prefix alone.
CHINESE_BINS = (
    "436742",
    "436745",
    "456351",
    "427010",
    "427020",
    "524047",
    "512315",
    "518710",
    "356833",
    "438088",
    "491020",
    "402658",
    "410062",
)


def _card(digits: str) -> Candidate | None:
    if checks.luhn_ok(digits):
        if digits.startswith("62"):
            return Candidate(
                "cn_bank_card", digits, 0.85, 1.0, ("Luhn valid", "UnionPay 62 prefix")
            )
        if digits.startswith(CHINESE_BINS):
            return Candidate(
                "cn_bank_card", digits, 0.7, 0.95, ("Luhn valid", "Chinese issuer prefix")
            )
        if digits[0] in "3456":
            return Candidate("cn_bank_card", digits, 0.45, 0.85, ("Luhn valid",))
        return None
    if digits.startswith("62"):
        # A mistyped card beside 卡号 is worth a look, not an alarm.
        return Candidate("cn_bank_card", digits, 0.0, 0.35, ("fails Luhn", "UnionPay 62 prefix"))
    return None


def numeric_candidates(value: str) -> tuple[Candidate, ...]:
    """Candidates for a digit string (an ID may end in X), separators removed."""
    out: list[Candidate] = []
    n = len(value)
    digits_only = value.isdigit()
    if n == 18:
        if checks.resident_id_problem(value) is None:
            out.append(
                Candidate(
                    "cn_resident_id",
                    value,
                    0.85,
                    1.0,
                    ("GB 11643 check character valid", "area code and birth date valid"),
                )
            )
        if digits_only and checks.uscc_problem(value) is None:
            out.append(
                Candidate(
                    "cn_uscc",
                    value,
                    0.85,
                    0.95,
                    ("GB 32100 check character valid", "GB 11714 organisation code valid"),
                )
            )
    if not digits_only:
        return tuple(out)
    if n == 15 and checks.resident_id_15_problem(value) is None:
        out.append(
            Candidate(
                "cn_resident_id_15",
                value,
                0.3,
                0.8,
                ("legacy 15-digit ID: area code and birth date valid",),
            )
        )
    if 16 <= n <= 19 and (card := _card(value)):
        out.append(card)
    if n == 11 and checks.mobile_ok(value):
        out.append(Candidate("cn_mobile", value, 0.75, 0.95, ("allocated mobile prefix",)))
    elif n == 13 and value.startswith("86") and checks.mobile_ok(value[2:]):
        out.append(Candidate("cn_mobile", value[2:], 0.75, 0.95, ("+86 mobile number",)))
    elif n == 15 and value.startswith("0086") and checks.mobile_ok(value[4:]):
        out.append(Candidate("cn_mobile", value[4:], 0.75, 0.95, ("0086 mobile number",)))
    return tuple(out)


def tw_permit_digits_candidate(value: str) -> Candidate:
    """台胞证 numbers are bare 8 (or 10) digits: only ever a candidate after a context word."""
    return Candidate("cn_tw_permit", value, 0.0, 0.75, ("Taiwan permit number shape",))


_PASSPORT = re.compile(r"E[0-9]{8}|E[A-HJ-NP-Z][0-9]{7}|G[0-9]{8}|[DPS]E?[0-9]{7}")
_HK_MACAU = re.compile(r"C[0-9A-HJ-NP-Z][0-9]{7}|W[0-9]{8}|[HM][0-9]{8}(?:[0-9]{2})?")
_TW = re.compile(r"[TL][0-9]{8}")


def alnum_candidates(token: str) -> list[Candidate]:
    """Candidates for an alphanumeric run with at least one letter."""
    out: list[Candidate] = []
    upper = token.upper()
    if len(token) == 18 and token == upper and checks.uscc_problem(token) is None:
        out.append(
            Candidate(
                "cn_uscc",
                token,
                0.85,
                0.95,
                ("GB 32100 check character valid", "GB 11714 organisation code valid"),
            )
        )
    if _PASSPORT.fullmatch(upper):
        out.append(Candidate("cn_passport", upper, 0.2, 0.85, ("passport number shape",)))
    if _HK_MACAU.fullmatch(upper):
        out.append(Candidate("cn_hk_macau_permit", upper, 0.2, 0.85, ("HK/Macau permit shape",)))
    if _TW.fullmatch(upper):
        out.append(Candidate("cn_tw_permit", upper, 0.2, 0.85, ("Taiwan permit shape",)))
    return out


def email_candidate(address: str) -> Candidate:
    return Candidate("email", address.lower(), 0.8, 0.9, ("e-mail address syntax",))
