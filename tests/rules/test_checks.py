"""Check characters and plausibility tests, cross-checked against python-stdnum."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum import luhn
from stdnum.cn import ric, uscc

from rules import checks
from tests.rules import strategies as s

DIGITS = "0123456789"
bodies17 = st.text(DIGITS, min_size=17, max_size=17)

# Province-level codes stdnum knows for any birth year (46 Hainan exists from 1988,
# 50 Chongqing from 1997; 81/82/83 are residence permits, see below).
STDNUM_AREAS = tuple(p + "0000" for p in s.PROVINCES if p not in ("46", "50", "81", "82", "83"))
stdnum_ids = st.builds(
    lambda a, d, q: s.make_resident_id(a, d.strftime("%Y%m%d"), q),
    st.sampled_from(STDNUM_AREAS),
    st.dates(dt.date(1880, 1, 1), dt.date.today()),
    st.text(DIGITS, min_size=3, max_size=3),
)


# -- GB 11643 -------------------------------------------------------------------------


@given(bodies17)
def test_gb11643_check_char_agrees_with_stdnum(body):
    assert checks.gb11643_check_char(body) == ric.calc_check_digit(body + "0")


@given(stdnum_ids)
def test_ids_stdnum_accepts_are_accepted(value):
    assert ric.is_valid(value), value  # the generator makes what stdnum calls valid
    assert checks.resident_id_problem(value) is None


@given(stdnum_ids)
def test_wrong_check_char_rejected_like_stdnum(value):
    wrong = s.wrong_last(value)
    assert (checks.resident_id_problem(wrong), ric.is_valid(wrong)) == ("check character", False)


# Residence-permit numbers of Hong Kong, Macau and Taiwan residents: area 810000/820000/830000
# with the holder's real birth date. stdnum 2.x only knows 81/82 from the handover on and 83
# not at all; our checks accept all of them.
PERMIT_IDS = {
    "hk-born-1990": s.make_resident_id("810000", "19900307", "123"),
    "macau-born-1985": s.make_resident_id("820000", "19850615", "456"),
    "taiwan-born-1990": s.make_resident_id("830000", "19900101", "789"),
    "taiwan-born-2001": s.make_resident_id("830000", "20010101", "012"),
}


@pytest.mark.parametrize("value", PERMIT_IDS.values(), ids=PERMIT_IDS.keys())
def test_stdnum_rejects_residence_permit_ids(value):
    assert not ric.is_valid(value)


@pytest.mark.parametrize("value", PERMIT_IDS.values(), ids=PERMIT_IDS.keys())
def test_checks_accept_residence_permit_ids(value):
    assert checks.resident_id_problem(value) is None


ID_PROBLEMS = {
    "valid": (s.make_resident_id("440301", "19900307", "123"), None),
    "foreigner-9-prefix": (s.make_resident_id("931010", "19900307", "123"), None),
    "too-short": (s.make_resident_id("440301", "19900307", "123")[:-1], "shape"),
    "letter-inside": ("44030119900A071234", "shape"),
    "lower-case-x": (s.make_resident_id("110101", "19851231", "004").lower(), "shape"),
    "unknown-province": (s.make_resident_id("990301", "19900307", "123"), "province code"),
    "foreigner-bad-province": (s.make_resident_id("999010", "19900307", "123"), "province code"),
    "month-13": (s.make_resident_id("440301", "19901307", "123"), "birth date"),
    "feb-30": (s.make_resident_id("440301", "19900230", "123"), "birth date"),
    "year-1879": (s.make_resident_id("440301", "18791231", "123"), "birth date"),
    "wrong-check": (
        s.wrong_last(s.make_resident_id("440301", "19900307", "123")),
        "check character",
    ),
}


@pytest.mark.parametrize(("value", "problem"), ID_PROBLEMS.values(), ids=ID_PROBLEMS.keys())
def test_resident_id_problem(value, problem):
    assert checks.resident_id_problem(value) == problem


def test_lower_case_x_fixture_really_ends_in_x():
    assert ID_PROBLEMS["lower-case-x"][0].endswith("x")


def test_id_born_tomorrow_rejected():
    tomorrow = (dt.date.today() + dt.timedelta(days=1)).strftime("%Y%m%d")
    assert checks.resident_id_problem(s.make_resident_id("440301", tomorrow, "123")) == (
        "birth date"
    )


ID15_PROBLEMS = {
    "valid": ("440301900307123", None),
    "unknown-province": ("990301900307123", "province code"),
    "feb-29-1900": ("440301000229123", "birth date"),
    "leap-1996": ("440301960229123", None),
    "sixteen-digits": ("4403019003071234", "shape"),
    "letter": ("44030190030712X", "shape"),
}


@pytest.mark.parametrize(("value", "problem"), ID15_PROBLEMS.values(), ids=ID15_PROBLEMS.keys())
def test_resident_id_15_problem(value, problem):
    assert checks.resident_id_15_problem(value) == problem


# -- birth dates ----------------------------------------------------------------------

TODAY = dt.date(2024, 6, 1)
BIRTH_DATES = {
    "leap-2000-feb-29": ((2000, 2, 29), True),
    "leap-2024-feb-29": ((2024, 2, 29), True),
    "century-1900-feb-29": ((1900, 2, 29), False),
    "non-leap-2023-feb-29": ((2023, 2, 29), False),
    "lower-bound-1880": ((1880, 1, 1), True),
    "before-1880": ((1879, 12, 31), False),
    "today": ((2024, 6, 1), True),
    "tomorrow": ((2024, 6, 2), False),
    "next-year": ((2025, 1, 1), False),
    "month-0": ((1990, 0, 10), False),
    "april-31": ((1990, 4, 31), False),
}


@pytest.mark.parametrize(("ymd", "ok"), BIRTH_DATES.values(), ids=BIRTH_DATES.keys())
def test_valid_birth_date(ymd, ok):
    assert checks.valid_birth_date(*ymd, today=TODAY) is ok


# -- area prefixes --------------------------------------------------------------------


@pytest.mark.parametrize("province", s.PROVINCES)
def test_province_codes_accepted(province):
    assert checks.valid_area_prefix(province + "0101")


@pytest.mark.parametrize("province", s.PROVINCES)
def test_foreigner_prefix_accepted(province):
    assert checks.valid_area_prefix("9" + province + "010")


@pytest.mark.parametrize("code", s.NOT_PROVINCES)
def test_non_province_codes_rejected(code):
    assert not checks.valid_area_prefix(code + "0101")


@pytest.mark.parametrize("code", [c for c in s.NOT_PROVINCES if c[0] != "9"])
def test_foreigner_prefix_needs_a_province(code):
    assert not checks.valid_area_prefix("9" + code + "010")


# -- Luhn -----------------------------------------------------------------------------


@given(st.text(DIGITS, min_size=2, max_size=24))
def test_luhn_agrees_with_stdnum(number):
    assert checks.luhn_ok(number) == luhn.is_valid(number)


@given(st.text(DIGITS, min_size=1, max_size=23))
def test_generator_luhn_check_agrees_with_stdnum(body):
    assert s.luhn_check(body) == luhn.calc_check_digit(body)


@given(s.cards())
def test_generated_cards_pass_and_altered_ones_fail(card):
    assert (checks.luhn_ok(card), checks.luhn_ok(s.wrong_luhn(card))) == (True, False)


# -- USCC (GB 32100 + GB 11714) -------------------------------------------------------
# stdnum.cn.uscc checks length, alphabet, digits in positions 1-8 and the GB 32100 check
# character; it does not check the embedded GB 11714 organisation code.

uscc_bodies = st.text(s.USCC_ALPHABET, min_size=17, max_size=17)


@given(uscc_bodies)
def test_uscc_check_char_agrees_with_stdnum(body):
    assert checks.uscc_check_char(body) == uscc.calc_check_digit(body)


@given(s.usccs())
def test_generated_uscc_valid_for_both(value):
    assert (checks.uscc_problem(value), uscc.is_valid(value)) == (None, True)


@given(s.usccs())
def test_uscc_wrong_check_char_rejected_by_both(value):
    wrong = s.wrong_last(value, s.USCC_ALPHABET)
    assert (checks.uscc_problem(wrong), uscc.is_valid(wrong)) == ("check character", False)


@given(st.text(s.USCC_ALPHABET, min_size=8, max_size=8))
def test_org_code_check_agrees_with_generator(org8):
    assert checks.org_code_check_char(org8) == s.org_check(org8)


def _uscc_with_bad_org_code() -> str:
    good = s.make_uscc("91", "440300", "MA5ABCDE")
    body = good[:16] + s.wrong_last(good[:17])[-1]
    return body + s.uscc_check(body)


USCC_DIFFERENCES = {
    # (value, ours valid, stdnum valid)
    "bad-org-code": (_uscc_with_bad_org_code(), False, True),
    "authority-Y": (s.make_uscc("Y1", "440300", "MA5ABCDE"), True, False),
    "authority-N": (s.make_uscc("N2", "110000", "12345678"), True, False),
}


@pytest.mark.parametrize(
    ("value", "ours", "theirs"), USCC_DIFFERENCES.values(), ids=USCC_DIFFERENCES.keys()
)
def test_uscc_known_differences_from_stdnum(value, ours, theirs):
    assert ((checks.uscc_problem(value) is None), uscc.is_valid(value)) == (ours, theirs)


USCC_PROBLEMS = {
    "lower-case": (s.make_uscc("91", "440300", "MA5ABCDE").lower(), "shape"),
    "letter-I": ("91440300MA5IBCDE5X", "shape"),
    "authority-0": (s.make_uscc("01", "440300", "MA5ABCDE"), "registration authority or area code"),
    "letter-in-area": (
        s.make_uscc("91", "44A300", "MA5ABCDE"),
        "registration authority or area code",
    ),
    "placeholder": ("1" * 18, "placeholder"),
}


@pytest.mark.parametrize(("value", "problem"), USCC_PROBLEMS.values(), ids=USCC_PROBLEMS.keys())
def test_uscc_problem(value, problem):
    assert checks.uscc_problem(value) == problem


# -- mobile prefixes ------------------------------------------------------------------


@settings(max_examples=200)
@given(s.mobiles)
def test_allocated_mobile_prefixes_accepted(number):
    assert checks.mobile_ok(number)


@given(st.sampled_from(s.UNALLOCATED_MOBILE_PREFIXES), st.text(DIGITS, min_size=8, max_size=8))
def test_unallocated_mobile_prefixes_rejected(prefix, rest):
    assert not checks.mobile_ok(prefix + rest)


@pytest.mark.parametrize(
    "number", ["1381234567", "138123456789", "23812345678"], ids=["10-digits", "12-digits", "not-1"]
)
def test_mobile_shape_rejected(number):
    assert not checks.mobile_ok(number)
