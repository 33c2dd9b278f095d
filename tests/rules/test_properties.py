"""Properties over generated values: found under every disguise, never when invalid, masked."""

from __future__ import annotations

import base64
import binascii
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules.engine import Engine
from rules.normalize import normalise
from tests.rules import strategies as s

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KINDS = {
    "cn_resident_id": s.resident_ids,
    "cn_bank_card": s.cards(),
    "cn_mobile": s.mobiles,
}
SEPARATORS = (" ", "，", "\n", "：", "（")
_SEP = re.compile(r"[ \-./\r\n·]")

ENGINE = Engine(hash_key=s.KEY)


@st.composite
def sentences(draw, detector: str, value: str, value_disguise: str, text_disguise: str | None):
    piece = s.VALUE_DISGUISES[value_disguise](detector, value, draw(st.integers(0, 99)))
    text = "".join(
        (
            draw(s.fillers),
            draw(st.sampled_from(SEPARATORS)),
            piece,
            draw(st.sampled_from(SEPARATORS)),
            draw(s.fillers),
        )
    )
    return s.TEXT_DISGUISES[text_disguise](text) if text_disguise else text


def _reveal(span: str, base64_encoded: bool) -> str:
    """What a finding's original span reads as once normalised, separators dropped."""
    if base64_encoded:
        joined = span.replace("\r", "").replace("\n", "").rstrip("=")
        joined = joined[: len(joined) - (len(joined) % 4 == 1)]
        joined += "=" * (-len(joined) % 4)
        try:
            span = base64.b64decode(joined).decode("utf-8", "ignore")
        except binascii.Error:
            return ""
    return _SEP.sub("", normalise(span).text).upper()


@pytest.mark.parametrize("text_disguise", [None, *s.TEXT_DISGUISES])
@pytest.mark.parametrize("value_disguise", list(s.VALUE_DISGUISES))
@pytest.mark.parametrize("detector", list(KINDS))
@SETTINGS
@given(data=st.data())
def test_valid_value_found_under_every_disguise(detector, value_disguise, text_disguise, data):
    value = data.draw(KINDS[detector], label="value")
    text = data.draw(sentences(detector, value, value_disguise, text_disguise), label="text")
    assert s.has(ENGINE.scan_text(text), detector, value)


@pytest.mark.parametrize("text_disguise", [None, *s.TEXT_DISGUISES])
@pytest.mark.parametrize("value_disguise", list(s.VALUE_DISGUISES))
@pytest.mark.parametrize("detector", list(KINDS))
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_finding_span_reads_as_the_value(detector, value_disguise, text_disguise, data):
    value = data.draw(KINDS[detector], label="value")
    text = data.draw(sentences(detector, value, value_disguise, text_disguise), label="text")
    f = s.the(ENGINE.scan_text(text), detector, value)
    assert value in _reveal(text[f.start : f.end], text_disguise == "base64")


def _wrong(detector: str, value: str, data) -> str:
    if detector == "cn_resident_id":
        return s.wrong_last(value)
    if detector == "cn_bank_card":
        return s.wrong_luhn(value)
    return data.draw(st.sampled_from(s.UNALLOCATED_MOBILE_PREFIXES)) + value[3:]


@pytest.mark.parametrize("text_disguise", [None, *s.TEXT_DISGUISES])
@pytest.mark.parametrize("value_disguise", list(s.VALUE_DISGUISES))
@pytest.mark.parametrize("detector", list(KINDS))
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_invalid_value_never_reported(detector, value_disguise, text_disguise, data):
    wrong = _wrong(detector, data.draw(KINDS[detector], label="value"), data)
    text = data.draw(sentences(detector, wrong, value_disguise, text_disguise), label="text")
    assert not s.has(ENGINE.scan_text(text), detector, wrong)


# Without separators there is no shorter window that could be a valid value of its own
# (a grouped 19-digit card may legitimately hold a Luhn-valid 16-digit card).
@pytest.mark.parametrize("text_disguise", [None, *s.TEXT_DISGUISES])
@pytest.mark.parametrize(
    "value_disguise",
    [d for d in s.VALUE_DISGUISES if d not in ("spaces", "dashes", "cn-spoken-groups")],
)
@pytest.mark.parametrize("detector", list(KINDS))
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_invalid_value_reports_nothing_of_its_kind(detector, value_disguise, text_disguise, data):
    wrong = _wrong(detector, data.draw(KINDS[detector], label="value"), data)
    text = data.draw(sentences(detector, wrong, value_disguise, text_disguise), label="text")
    assert [f.to_dict() for f in ENGINE.scan_text(text) if f.detector == detector] == []


# -- masking reveals no more than the format ------------------------------------------


def _shown(masked: str) -> str:
    return masked.replace("*", "").replace(" ", "")


@SETTINGS
@given(s.resident_ids)
def test_id_mask_shows_at_most_first_six_and_last_four(value):
    masked = s.the(ENGINE.scan_text(f"证件 {value}"), "cn_resident_id", value).masked
    assert (len(masked), masked[:6], masked[6:14], masked[14:]) == (
        len(value),
        value[:6],
        "*" * 8,
        value[14:],
    )


@SETTINGS
@given(s.cards())
def test_card_mask_shows_at_most_first_and_last_four(value):
    masked = s.the(ENGINE.scan_text(f"卡 {value}"), "cn_bank_card", value).masked
    assert (len(masked), _shown(masked)) == (len("6222 **** **** 1234"), value[:4] + value[-4:])


@SETTINGS
@given(s.mobiles)
def test_mobile_mask_shows_at_most_first_three_and_last_four(value):
    masked = s.the(ENGINE.scan_text(f"号 {value}"), "cn_mobile", value).masked
    assert (masked[:3], masked[3:7], masked[7:]) == (value[:3], "****", value[7:])


@SETTINGS
@given(st.from_regex(r"[a-z][a-z0-9._]{0,15}[a-z0-9]@[a-z0-9]{1,10}\.(com|cn|net)", fullmatch=True))
def test_email_mask_shows_first_letter_and_domain(value):
    masked = s.the(ENGINE.scan_text(f"邮 {value} 谢"), "email", value).masked
    assert masked == value[0] + "***@" + value.split("@")[1]


@pytest.mark.parametrize("detector", list(KINDS))
@SETTINGS
@given(data=st.data())
def test_no_finding_field_holds_the_raw_value(detector, data):
    value = data.draw(KINDS[detector], label="value")
    disguise = data.draw(st.sampled_from(list(s.VALUE_DISGUISES)), label="disguise")
    text = data.draw(sentences(detector, value, disguise, None), label="text")
    dumped = json.dumps(
        [f.to_dict() for f in ENGINE.scan_text(text, "doc › 正文")], ensure_ascii=False
    )
    assert value not in dumped


@pytest.mark.parametrize(
    ("detector", "hidden"),
    [("cn_resident_id", slice(6, 14)), ("cn_bank_card", slice(4, -4))],
    ids=["id-birth-date", "card-middle"],
)
@SETTINGS
@given(data=st.data())
def test_no_finding_field_holds_the_hidden_part(detector, hidden, data):
    value = data.draw(KINDS[detector], label="value")
    dumped = json.dumps(
        [f.to_dict() for f in ENGINE.scan_text(f"见 {value} 。")], ensure_ascii=False
    )
    assert value[hidden] not in dumped
