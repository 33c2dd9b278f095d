"""Per-detector tables: what each built-in detector finds, what it must not, how it masks."""

from __future__ import annotations

import pytest

from rules.engine import Engine
from tests.rules import strategies as s

ID = s.make_resident_id("440301", "19900307", "123")
ID_X = next(
    v for i in range(1000) if (v := s.make_resident_id("110101", "19851231", f"{i:03d}"))[-1] == "X"
)
ID_HK = s.make_resident_id("810000", "19900307", "123")
ID_FOREIGN = s.make_resident_id("931010", "19751120", "456")
ID15 = "440301900307123"
CARD16 = s.make_card("622202", 16, "3")
CARD19 = s.make_card("621700", 19, "5")
CARD_BAD = s.wrong_luhn(CARD16)
MOBILE = "13912345678"
MOBILE_VIRTUAL = "17012345678"
USCC = s.make_uscc("91", "440300", "MA5ABCDE")
USCC_DIGITS = next(
    v for i in range(1000) if (v := s.make_uscc("12", "110000", f"4000{i:04d}")).isdigit()
)
EMAIL = "zhangsan@163.com"


def g(value: str, sizes: tuple[int, ...], sep: str) -> str:
    return s.group(value, sizes, sep)


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(hash_key=s.KEY)


# (text, detector, normalised value, exact original span)
FOUND = {
    # cn_resident_id
    "id-plain": (ID, "cn_resident_id", ID, ID),
    "id-glued-cjk-context": (f"身份证号{ID}请核对", "cn_resident_id", ID, ID),
    "id-glued-cjk": (f"客户{ID}已核对", "cn_resident_id", ID, ID),
    # Markdown bold is not masking: '*' beside a whole value must not hide it.
    "id-in-bold": (f"**{ID}**", "cn_resident_id", ID, ID),
    "mobile-after-star": (f"手机：*{MOBILE}*", "cn_mobile", MOBILE, MOBILE),
    "email-in-bold": ("**zhang@163.com**", "email", "zhang@163.com", "zhang@163.com"),
    # Grouped values after many short groups (a PDF table row) are windows too.
    "mobile-after-short-groups": (
        "0 " * 19 + "138 1234 5678",
        "cn_mobile",
        "13812345678",
        "138 1234 5678",
    ),
    "id-x-in-pairs": (
        "身份证 11 01 05 19 49 12 31 00 2X",
        "cn_resident_id",
        "11010519491231002X",
        "11 01 05 19 49 12 31 00 2X",
    ),
    "id-group-inside-year": (f"{ID[:7]} {ID[7:]}", "cn_resident_id", ID, f"{ID[:7]} {ID[7:]}"),
    "id-after-equals": (f"id={ID}&x=1", "cn_resident_id", ID, ID),
    "id-hk-after-equals": (f"sfz={ID_HK}", "cn_resident_id", ID_HK, ID_HK),
    "id-foreigner-after-equals": (f"id={ID_FOREIGN}&a=1", "cn_resident_id", ID_FOREIGN, ID_FOREIGN),
    "id-base64-twice": (s.b64(s.b64(f"证件 {ID} 谢谢")), "cn_resident_id", ID, None),
    "id-upper-x": (f"证件 {ID_X}", "cn_resident_id", ID_X, ID_X),
    "id-lower-x": (f"证件 {ID_X.lower()}", "cn_resident_id", ID_X, ID_X.lower()),
    "id-hk-permit-81": (f"居住证{ID_HK}", "cn_resident_id", ID_HK, ID_HK),
    "id-foreigner-9": (f"永居证 {ID_FOREIGN}", "cn_resident_id", ID_FOREIGN, ID_FOREIGN),
    "id-space": (g(ID, (6, 8, 4), " "), "cn_resident_id", ID, g(ID, (6, 8, 4), " ")),
    "id-dash": (g(ID, (6, 8, 4), "-"), "cn_resident_id", ID, g(ID, (6, 8, 4), "-")),
    "id-dot": (g(ID, (6, 8, 4), "."), "cn_resident_id", ID, g(ID, (6, 8, 4), ".")),
    "id-middle-dot": (g(ID, (6, 8, 4), "·"), "cn_resident_id", ID, g(ID, (6, 8, 4), "·")),
    "id-slash": (g(ID, (6, 8, 4), "/"), "cn_resident_id", ID, g(ID, (6, 8, 4), "/")),
    "id-newline": (g(ID, (6, 8, 4), "\n"), "cn_resident_id", ID, g(ID, (6, 8, 4), "\n")),
    "id-crlf": (g(ID, (6, 8, 4), "\r\n"), "cn_resident_id", ID, g(ID, (6, 8, 4), "\r\n")),
    "id-x-grouped-lower": (
        g(ID_X.lower(), (6, 4, 4, 4), " "),
        "cn_resident_id",
        ID_X,
        g(ID_X.lower(), (6, 4, 4, 4), " "),
    ),
    # cn_resident_id_15 (context required)
    "id15-context": (f"身份证 {ID15}", "cn_resident_id_15", ID15, ID15),
    "id15-context-en": (f"ID number: {ID15}", "cn_resident_id_15", ID15, ID15),
    "id15-grouped": (
        f"身份证 {g(ID15, (6, 6, 3), ' ')}",
        "cn_resident_id_15",
        ID15,
        g(ID15, (6, 6, 3), " "),
    ),
    # cn_bank_card
    "card16": (CARD16, "cn_bank_card", CARD16, CARD16),
    "card19": (CARD19, "cn_bank_card", CARD19, CARD19),
    "card-glued-cjk": (f"卡号{CARD16}，请转账", "cn_bank_card", CARD16, CARD16),
    "card-space": (
        g(CARD16, (4, 4, 4, 4), " "),
        "cn_bank_card",
        CARD16,
        g(CARD16, (4, 4, 4, 4), " "),
    ),
    "card19-space": (
        g(CARD19, (4, 4, 4, 4), " "),
        "cn_bank_card",
        CARD19,
        g(CARD19, (4, 4, 4, 4), " "),
    ),
    "card-dash": (g(CARD16, (4, 4, 4), "-"), "cn_bank_card", CARD16, g(CARD16, (4, 4, 4), "-")),
    "card-middle-dot": (
        g(CARD16, (4, 4, 4), "·"),
        "cn_bank_card",
        CARD16,
        g(CARD16, (4, 4, 4), "·"),
    ),
    "card-newline": (
        g(CARD16, (4, 4, 4), "\n"),
        "cn_bank_card",
        CARD16,
        g(CARD16, (4, 4, 4), "\n"),
    ),
    # cn_mobile
    "mobile-plain": (MOBILE, "cn_mobile", MOBILE, MOBILE),
    "mobile-virtual-170": (MOBILE_VIRTUAL, "cn_mobile", MOBILE_VIRTUAL, MOBILE_VIRTUAL),
    "mobile-glued-cjk": (f"手机{MOBILE}联系我", "cn_mobile", MOBILE, MOBILE),
    "mobile-344-space": (g(MOBILE, (3, 4), " "), "cn_mobile", MOBILE, g(MOBILE, (3, 4), " ")),
    "mobile-344-dash": (g(MOBILE, (3, 4), "-"), "cn_mobile", MOBILE, g(MOBILE, (3, 4), "-")),
    "mobile-plus86-space": (f"+86 {MOBILE}", "cn_mobile", MOBILE, f"86 {MOBILE}"),
    "mobile-plus86-glued": (f"+86{MOBILE}", "cn_mobile", MOBILE, f"86{MOBILE}"),
    "mobile-plus86-dashes": (
        f"+86-{g(MOBILE, (3, 4), '-')}",
        "cn_mobile",
        MOBILE,
        f"86-{g(MOBILE, (3, 4), '-')}",
    ),
    "mobile-0086": (f"0086{MOBILE}", "cn_mobile", MOBILE, f"0086{MOBILE}"),
    "mobile-0086-space": (f"电话 0086 {MOBILE}", "cn_mobile", MOBILE, MOBILE),
    "mobile-paren-86": (f"(+86){MOBILE}", "cn_mobile", MOBILE, MOBILE),
    # cn_uscc
    "uscc-alnum": (f"统一社会信用代码：{USCC}", "cn_uscc", USCC, USCC),
    "uscc-no-context": (f"公司 {USCC} 已注册", "cn_uscc", USCC, USCC),
    "uscc-digits": (f"税号{USCC_DIGITS}", "cn_uscc", USCC_DIGITS, USCC_DIGITS),
    # context-only detectors
    "passport-E": ("护照号码：E12345678", "cn_passport", "E12345678", "E12345678"),
    "passport-EA": ("护照 EA1234567", "cn_passport", "EA1234567", "EA1234567"),
    "passport-en": ("passport G12345678", "cn_passport", "G12345678", "G12345678"),
    "passport-lower": ("护照e12345678", "cn_passport", "E12345678", "e12345678"),
    "hk-macau-C": ("港澳通行证 C12345678", "cn_hk_macau_permit", "C12345678", "C12345678"),
    "hk-macau-H11": ("回乡证：H1234567890", "cn_hk_macau_permit", "H1234567890", "H1234567890"),
    "tw-T": ("台胞证 T12345678", "cn_tw_permit", "T12345678", "T12345678"),
    "tw-digits-8": ("台胞证号12345678", "cn_tw_permit", "12345678", "12345678"),
    "tw-digits-10": ("台胞证号码：1234567890", "cn_tw_permit", "1234567890", "1234567890"),
    # email
    "email-plain": (EMAIL, "email", EMAIL, EMAIL),
    "email-upper": ("ZhangSan@QQ.COM", "email", "zhangsan@qq.com", "ZhangSan@QQ.COM"),
    "email-glued-cjk": (
        "请发到zhang.san@163.com谢谢",
        "email",
        "zhang.san@163.com",
        "zhang.san@163.com",
    ),
    "email-plus-tag": (
        "<li.si+dlp@corp.example.cn>",
        "email",
        "li.si+dlp@corp.example.cn",
        "li.si+dlp@corp.example.cn",
    ),
}


@pytest.mark.parametrize(("text", "detector", "value", "span"), FOUND.values(), ids=FOUND.keys())
def test_found(engine, text, detector, value, span):
    assert s.has(engine.scan_text(text), detector, value)


_WITH_SPAN = {k: v for k, v in FOUND.items() if v[3] is not None}


@pytest.mark.parametrize(
    ("text", "detector", "value", "span"), _WITH_SPAN.values(), ids=_WITH_SPAN.keys()
)
def test_found_span(engine, text, detector, value, span):
    f = s.the(engine.scan_text(text), detector, value)
    assert text[f.start : f.end] == span


@pytest.mark.parametrize(("text", "detector", "value", "span"), FOUND.values(), ids=FOUND.keys())
def test_found_alone(engine, text, detector, value, span):
    """Overlapping candidates are resolved: one finding per value."""
    assert [f.detector for f in engine.scan_text(text)] == [detector]


@pytest.mark.parametrize(("text", "detector", "value", "span"), FOUND.values(), ids=FOUND.keys())
def test_finding_has_reasons(engine, text, detector, value, span):
    assert all(f.why and all(f.why) for f in engine.scan_text(text))


@pytest.mark.parametrize(("text", "detector", "value", "span"), FOUND.values(), ids=FOUND.keys())
def test_finding_score_in_range(engine, text, detector, value, span):
    assert all(0 < f.score <= 1 for f in engine.scan_text(text))


# The value is not reported as this detector (something else may be, e.g. a longer number).
NOT_FOUND = {
    "id-digit-before": (f"1{ID}", "cn_resident_id", ID),
    "id-digit-after": (f"{ID}1", "cn_resident_id", ID),
    "id-in-order-number": (f"订单号2024{ID}88", "cn_resident_id", ID),
    "id-letter-before": (f"x{ID}", "cn_resident_id", ID),
    "id-letter-after": (f"{ID}abc", "cn_resident_id", ID),
    "id-wrong-check": (s.wrong_last(ID), "cn_resident_id", s.wrong_last(ID)),
    "id15-no-context": (f"编号 {ID15}", "cn_resident_id_15", ID15),
    "card-luhn-fails": (CARD_BAD, "cn_bank_card", CARD_BAD),
    "card-luhn-fails-context": (f"卡号 {CARD_BAD}", "cn_bank_card", CARD_BAD),
    "card-in-longer-run": (f"9{CARD16}", "cn_bank_card", CARD16),
    "card-odd-grouping": (g(CARD16, (3, 5, 4), " "), "cn_bank_card", CARD16),
    "mobile-in-longer-run": (f"2024{MOBILE}01", "cn_mobile", MOBILE),
    "mobile-letter-before": (f"a{MOBILE}", "cn_mobile", MOBILE),
    "mobile-unallocated-154": ("15412345678", "cn_mobile", "15412345678"),
    "mobile-unallocated-120": ("手机 12012345678", "cn_mobile", "12012345678"),
    "mobile-ip-like": ("138.123.456.78", "cn_mobile", "13812345678"),
    "uscc-lower-case": (USCC.lower(), "cn_uscc", USCC),
    "uscc-letter-before": (f"x{USCC}", "cn_uscc", USCC),
    "passport-no-context": ("编号 E12345678", "cn_passport", "E12345678"),
    "hk-macau-no-context": ("编号 C12345678", "cn_hk_macau_permit", "C12345678"),
    "tw-no-context": ("编号 T12345678", "cn_tw_permit", "T12345678"),
    "tw-digits-no-context": ("编号 12345678", "cn_tw_permit", "12345678"),
}


@pytest.mark.parametrize(("text", "detector", "value"), NOT_FOUND.values(), ids=NOT_FOUND.keys())
def test_not_found(engine, text, detector, value):
    assert not s.has(engine.scan_text(text), detector, value)


# Numbers that are not personal data, and values already masked: nothing at all.
NOTHING = {
    "masked-id": "440301********1234",
    "masked-id-context": "身份证号：440301********1234",
    "masked-id-x": "110101********123X",
    "masked-card": "6222 **** **** 1234",
    "masked-card-context": "卡号 6222 **** **** 1234",
    "masked-card-glued": "6222********1234",
    "masked-mobile": "138****5678",
    "masked-mobile-context": "手机：138****5678",
    "masked-email": "z***@163.com",
    "masked-email-middle": "w****g@qq.com",
    "masked-email-context": "邮箱 z***@163.com",
    "masked-id-spaced": "440301 ******** 1234",
    "masked-id-tail": "身份证 44030119900307****",
    "masked-card-dashes": "6222-****-****-1234",
    "masked-card-middle": "卡号 622202******1234",
    "masked-mobile-spaced": "138 **** 5678",
    "masked-mobile-plus86": "+86 138****5678",
    "masked-email-prefix": "zhang***@163.com",
    "order-number": "订单号 202403071530001234",
    "order-number-long": "订单编号：2024030712345678901234",
    "timestamp-ms": "ts=1709712345678",
    "timestamp-s": "1709712345",
    "timestamp-compact": "20240307153045",
    "datetime": "2024-03-07 15:30:45",
    "ipv4": "192.168.13.138",
    "ipv4-mobile-digits": "IP 13.138.123.45",
    "ipv4-many": "10.138.123.45, 110.101.199.12",
    "isbn13-dashes": "ISBN 978-7-115-42802-8",
    "isbn13": "ISBN 9787115428028",
    "isbn10": "ISBN 7-115-42802-2",
    "amount": "金额 1,234,567.89 元",
    "landline": "电话 010-62345678",
    "version": "v1.2.3.4567.8901",
}


@pytest.mark.parametrize("text", NOTHING.values(), ids=NOTHING.keys())
def test_nothing_found(engine, text):
    assert [f.to_dict() for f in engine.scan_text(text)] == []


# -- scores and thresholds ------------------------------------------------------------


def test_luhn_failing_card_beside_context_reported_below_default_threshold():
    low = Engine(hash_key=s.KEY, min_score=0.3)
    assert s.has(low.scan_text(f"卡号 {CARD_BAD}"), "cn_bank_card", CARD_BAD)


def test_luhn_failing_card_without_context_never_reported():
    low = Engine(hash_key=s.KEY, min_score=0.01)
    assert not s.has(low.scan_text(f"编号 {CARD_BAD}"), "cn_bank_card", CARD_BAD)


CONTEXT_RAISES = {
    "id": (f"身份证 {ID}", ID, "cn_resident_id"),
    "card": (f"卡号 {CARD16}", CARD16, "cn_bank_card"),
    "mobile": (f"手机 {MOBILE}", MOBILE, "cn_mobile"),
    "email": (f"邮箱 {EMAIL}", EMAIL, "email"),
    "uscc": (f"信用代码 {USCC}", USCC, "cn_uscc"),
}


@pytest.mark.parametrize(
    ("text", "value", "detector"), CONTEXT_RAISES.values(), ids=CONTEXT_RAISES.keys()
)
def test_context_word_raises_score(engine, text, value, detector):
    with_word = s.the(engine.scan_text(text), detector, value).score
    without = s.the(engine.scan_text(value), detector, value).score
    assert with_word > without


@pytest.mark.parametrize(
    ("text", "value", "detector"), CONTEXT_RAISES.values(), ids=CONTEXT_RAISES.keys()
)
def test_context_word_named_in_why(engine, text, value, detector):
    why = s.the(engine.scan_text(text), detector, value).why
    assert any(reason.startswith("context word") for reason in why)


def test_context_word_too_far_is_ignored(engine):
    text = "身份证" + "。" * 100 + ID15
    assert not s.has(engine.scan_text(text), "cn_resident_id_15", ID15)


def test_disabled_detector_not_reported():
    only_mobile = Engine(hash_key=s.KEY, detectors=["cn_mobile"])
    assert [f.detector for f in only_mobile.scan_text(f"{ID} {MOBILE}")] == ["cn_mobile"]


def test_unknown_detector_id_rejected():
    with pytest.raises(ValueError, match="no_such"):
        Engine(hash_key=s.KEY, detectors=["cn_mobile", "no_such"])


# -- masked forms in the users' formats -----------------------------------------------

MASKED = {
    "id": (ID, "cn_resident_id", ID, ID[:6] + "*" * 8 + ID[-4:]),
    "id-lower-x": (ID_X.lower(), "cn_resident_id", ID_X, ID_X[:6] + "*" * 8 + ID_X[-4:]),
    "card16": (CARD16, "cn_bank_card", CARD16, f"{CARD16[:4]} **** **** {CARD16[-4:]}"),
    "card19": (CARD19, "cn_bank_card", CARD19, f"{CARD19[:4]} **** **** {CARD19[-4:]}"),
    "mobile": (MOBILE, "cn_mobile", MOBILE, MOBILE[:3] + "****" + MOBILE[-4:]),
    "mobile-plus86": (f"+86 {MOBILE}", "cn_mobile", MOBILE, MOBILE[:3] + "****" + MOBILE[-4:]),
    "email": (EMAIL, "email", EMAIL, "z***@163.com"),
    "email-upper": ("WangXiaoMing@QQ.com", "email", "wangxiaoming@qq.com", "w***@qq.com"),
    "uscc": (USCC, "cn_uscc", USCC, USCC[:6] + "*" * 8 + USCC[-4:]),
    "passport": ("护照 E12345678", "cn_passport", "E12345678", "E1*****78"),
}


@pytest.mark.parametrize(
    ("text", "detector", "value", "masked"), MASKED.values(), ids=MASKED.keys()
)
def test_masked_format(engine, text, detector, value, masked):
    assert s.the(engine.scan_text(text), detector, value).masked == masked


@pytest.mark.parametrize("card", [CARD16, CARD19], ids=["16", "19"])
def test_card_mask_hides_length(engine, card):
    assert len(s.the(engine.scan_text(card), "cn_bank_card", card).masked) == len(
        "6222 **** **** 1234"
    )


def test_segments_refine_location(engine):
    from rules.findings import Part, Segment

    text = f"A1 {MOBILE}\tB1 {ID}"
    part = Part("sheet", text, (Segment(0, "sheet!A1"), Segment(text.index("B1"), "sheet!B1")))
    assert [(f.detector, f.location) for f in engine.scan_part(part)] == [
        ("cn_mobile", "sheet!A1"),
        ("cn_resident_id", "sheet!B1"),
    ]


# -- overlapping windows of one grouped card ------------------------------------------

CARD17 = CARD16 + s.luhn_check(CARD16)  # its first 16 digits are a valid card too
CARD17_GROUPED = g(CARD17, (4, 4, 4, 4), " ")
CARD17_TEXTS = {
    "plain": CARD17_GROUPED,
    "url-quote": s.url_quote(CARD17_GROUPED),
    "html-entity-spaces": CARD17_GROUPED.replace(" ", "&#32;"),
    # The whole number is one rewritten region: prefix and card map to the same span.
    "url-all-bytes": s.url_all(CARD17_GROUPED),
    "json-u-escapes": s.json_escape_all(CARD17_GROUPED),
    "cn-numerals-spoken": s.group(s.map_chars(CARD17, s.CN_SPOKEN), (4, 4, 4, 4), " "),
}


@pytest.mark.parametrize("text", CARD17_TEXTS.values(), ids=CARD17_TEXTS.keys())
def test_grouped_card_in_escaped_text_reported_whole(engine, text):
    assert s.has(engine.scan_text(text), "cn_bank_card", CARD17)


# -- reasons name only the disguises a finding went through ---------------------------

HTML_LAYER = "decoded HTML entities"
MIXED = f"手机 {s.html_entities(MOBILE)}，身份证 {ID}"


def test_disguised_value_names_its_disguise(engine):
    assert HTML_LAYER in s.the(engine.scan_text(MIXED), "cn_mobile", MOBILE).why


def test_plain_value_beside_disguised_one_names_no_disguise(engine):
    assert HTML_LAYER not in s.the(engine.scan_text(MIXED), "cn_resident_id", ID).why


# -- bare-digit Taiwan permit numbers: only after a context word ----------------------

TW_DIGITS = {
    "after-word": ("台胞证：12345678", True),
    "after-word-10": ("往来台湾通行证 1234567890", True),
    "word-far-before": ("台胞证" + "。" * 40 + "12345678", False),
    "no-word": ("编号 12345678", False),
    "nine-digits": ("台胞证 123456789", False),
    "inside-longer-run": ("台胞证 1234567890123", False),
}


@pytest.mark.parametrize(("text", "found"), TW_DIGITS.values(), ids=TW_DIGITS.keys())
def test_tw_permit_digits_need_a_preceding_context_word(engine, text, found):
    assert any(f.detector == "cn_tw_permit" for f in engine.scan_text(text)) is found
