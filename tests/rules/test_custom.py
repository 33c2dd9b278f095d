"""Policy-declared detectors: keyword dictionaries and validated custom regexes."""

from __future__ import annotations

import pytest

from rules.custom import VALIDATORS, KeywordDetector, RegexDetector, resolve_validator
from rules.engine import Engine
from tests.rules import strategies as s

ID = s.make_resident_id("110101", "19900307", "123")  # a county stdnum knows
ID_X = next(
    v for i in range(1000) if (v := s.make_resident_id("110101", "19851231", f"{i:03d}"))[-1] == "X"
)
ID_HK = s.make_resident_id("810000", "19900307", "123")  # stdnum rejects 81 before 1997
CARD = s.make_card("622202", 16, "3")
USCC = s.make_uscc("91", "440300", "MA5ABCDE")


def _engine(*custom) -> Engine:
    return Engine(hash_key=s.KEY, custom=custom)


# -- keywords -------------------------------------------------------------------------

FALCON = KeywordDetector("project", ("Project Falcon", "机密"))
FALCON_ENGINE = _engine(FALCON)

# (text, the exact original span of the keyword, normalised value)
KEYWORD_FOUND = {
    "same-case": ("re: Project Falcon plan", "Project Falcon", "project falcon"),
    "upper-case": ("RE: PROJECT FALCON", "PROJECT FALCON", "project falcon"),
    "mixed-case": ("the pRoJeCt fAlCoN", "pRoJeCt fAlCoN", "project falcon"),
    "cjk": ("本文件机密，请勿外传", "机密", "机密"),
    "full-width": ("ＰＲＯＪＥＣＴ ＦＡＬＣＯＮ", "ＰＲＯＪＥＣＴ ＦＡＬＣＯＮ", "project falcon"),
    "html-entity-space": ("PROJECT&#32;FALCON", "PROJECT&#32;FALCON", "project falcon"),
    "url-escaped": ("q=Project%20Falcon&x=1", "Project%20Falcon", "project falcon"),
    "base64": (s.b64("the project falcon plan"), None, "project falcon"),
    "ideographic-space": (
        "ＰＲＯＪＥＣＴ\u3000ＦＡＬＣＯＮ",
        "ＰＲＯＪＥＣＴ\u3000ＦＡＬＣＯＮ",
        "project falcon",
    ),
}


@pytest.mark.parametrize(
    ("text", "span", "value"), KEYWORD_FOUND.values(), ids=KEYWORD_FOUND.keys()
)
def test_keyword_found_through_engine(text, span, value):
    assert s.has(FALCON_ENGINE.scan_text(text), "project", value)


_SPAN_ROWS = {k: v for k, v in KEYWORD_FOUND.items() if k != "base64"}


@pytest.mark.parametrize(("text", "span", "value"), _SPAN_ROWS.values(), ids=_SPAN_ROWS.keys())
def test_keyword_span(text, span, value):
    f = s.the(FALCON_ENGINE.scan_text(text), "project", value)
    assert text[f.start : f.end] == span


def test_keyword_span_after_dotted_capital_i():
    text = "İstanbul office: project falcon"
    f = s.the(FALCON_ENGINE.scan_text(text), "project", "project falcon")
    assert text[f.start : f.end] == "project falcon"


def test_case_sensitive_keyword_ignores_other_case():
    strict = KeywordDetector("code", ("Falcon",), case_sensitive=True)
    assert strict.find("FALCON falcon") == []


def test_keyword_detector_needs_words():
    with pytest.raises(ValueError, match="no words"):
        KeywordDetector("empty", ())


def test_keyword_masked_shows_first_character_only():
    f = s.the(FALCON_ENGINE.scan_text("Project Falcon"), "project", "project falcon")
    assert (f.masked[0], set(f.masked[1:])) == ("p", {"*"})


def test_keyword_finding_holds_no_raw_value():
    f = s.the(FALCON_ENGINE.scan_text("Project Falcon"), "project", "project falcon")
    assert "falcon" not in repr(f.to_dict()).lower()


# -- regexes with validators ----------------------------------------------------------

ID_PATTERN = r"\d{6}[ -]?\d{8}[ -]?\d{3}[\dXx]"

# (validator, pattern, text, value it should report or None)
VALIDATED = {
    "luhn-valid": ("luhn", r"\d{16}", f"acct {CARD}", CARD),
    "luhn-invalid": ("luhn", r"\d{16}", f"acct {s.wrong_luhn(CARD)}", None),
    "gb11643-valid": ("gb11643", ID_PATTERN, f"no {ID}", ID),
    "gb11643-grouped": ("gb11643", ID_PATTERN, f"no {s.group(ID, (6, 8), ' ')}", ID),
    "gb11643-lower-x": ("gb11643", ID_PATTERN, f"no {ID_X.lower()}", ID_X.lower()),
    "gb11643-hk-permit": ("gb11643", ID_PATTERN, f"no {ID_HK}", ID_HK),
    "gb11643-invalid": ("gb11643", ID_PATTERN, f"no {s.wrong_last(ID)}", None),
    "stdnum-ric-valid": ("stdnum:cn.ric", ID_PATTERN, f"no {ID}", ID),
    "stdnum-ric-dashes": ("stdnum:cn.ric", ID_PATTERN, f"no {s.group(ID, (6, 8), '-')}", ID),
    "stdnum-ric-invalid": ("stdnum:cn.ric", ID_PATTERN, f"no {s.wrong_last(ID)}", None),
    "stdnum-ric-hk-permit": ("stdnum:cn.ric", ID_PATTERN, f"no {ID_HK}", None),
    "gb32100-valid": ("gb32100", r"[0-9A-Z]{18}", f"code {USCC}", USCC),
    "gb32100-invalid": (
        "gb32100",
        r"[0-9A-Z]{18}",
        f"code {s.wrong_last(USCC, s.USCC_ALPHABET)}",
        None,
    ),
    "cn-mobile-valid": ("cn_mobile", r"1\d{10}", "m 13912345678", "13912345678"),
    "cn-mobile-unallocated": ("cn_mobile", r"1\d{10}", "m 15412345678", None),
}


@pytest.mark.parametrize(
    ("validator", "pattern", "text", "value"), VALIDATED.values(), ids=VALIDATED.keys()
)
def test_regex_validator(validator, pattern, text, value):
    found = RegexDetector("custom", pattern, validator=validator).find(text)
    assert [c.value for _, _, c in found] == ([value] if value else [])


def test_regex_without_validator_reports_every_match():
    found = RegexDetector("emp", r"EMP-\d{6}").find("EMP-123456, EMP-654321")
    assert [c.value for _, _, c in found] == ["EMP123456", "EMP654321"]


def test_regex_through_engine_finds_full_width_text():
    emp = RegexDetector("emp", r"EMP-\d{6}", score=0.9)
    assert s.has(_engine(emp).scan_text("工号：ＥＭＰ－１２３４５６"), "emp", "EMP123456")


def test_regex_through_engine_masks_with_its_own_ends():
    emp = RegexDetector("emp", r"EMP-\d{6}", keep_head=3, keep_tail=1)
    assert s.the(_engine(emp).scan_text("EMP-123456"), "emp", "EMP123456").masked == "EMP*****6"


def test_regex_through_engine_names_the_validator():
    ric = RegexDetector("ric", ID_PATTERN, score=0.95, validator="stdnum:cn.ric")
    f = s.the(_engine(ric).scan_text(f"no {ID}"), "ric", ID)
    assert "validator stdnum:cn.ric" in f.why


def test_unknown_validator_names_the_known_ones():
    with pytest.raises(ValueError) as err:
        RegexDetector("x", r"\d+", validator="mod97")
    assert all(name in str(err.value) for name in [*VALIDATORS, "stdnum:<module>"])


def test_unknown_stdnum_module_is_a_value_error():
    with pytest.raises(ValueError):
        RegexDetector("x", r"\d+", validator="stdnum:cn.no_such_format")


def test_stdnum_package_without_is_valid_is_a_value_error():
    with pytest.raises(ValueError):
        resolve_validator("stdnum:cn")


@pytest.mark.parametrize(
    "pattern",
    [r"(\d+", r"[0-9", r"*abc", r"(?P<x>a)(?P<x>b)"],
    ids=["open-group", "open-class", "nothing-to-repeat", "dup-name"],
)
def test_invalid_regex_is_a_value_error(pattern):
    with pytest.raises(ValueError, match="invalid regex"):
        RegexDetector("bad", pattern)
