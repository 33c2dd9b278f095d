"""hyperscan and the pure-`re` fallback must give identical findings."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules import engine as engine_module
from rules import triggers
from rules.custom import KeywordDetector
from rules.engine import Engine
from tests.rules import strategies as s

pytestmark = pytest.mark.skipif(
    not triggers.hyperscan_available(), reason="hyperscan missing: nothing to compare against"
)

CUSTOM = (KeywordDetector("kw", ("机密", "falcon")),)
HS = Engine(hash_key=s.KEY, backend="hyperscan", custom=CUSTOM)
RE = Engine(hash_key=s.KEY, backend="re", custom=CUSTOM)

values = st.one_of(
    s.resident_ids,
    s.cards(),
    s.mobiles,
    s.usccs(),
    s.resident_ids.map(s.wrong_last),
    s.cards().map(s.wrong_luhn),
    st.sampled_from(
        [
            "zhangsan@163.com",
            "E12345678",
            "440301900307123",
            "12345678",
            "440301********1234",
            "138****5678",
            "192.168.13.138",
            "falcon",
        ]
    ),
)


@st.composite
def disguised_values(draw) -> str:
    value = draw(values)
    how = draw(st.sampled_from([*s.VALUE_DISGUISES, *s.TEXT_DISGUISES]))
    if how in s.TEXT_DISGUISES:
        return s.TEXT_DISGUISES[how](value)
    return s.VALUE_DISGUISES[how]("cn_resident_id", value, draw(st.integers(0, 9)))


pieces = st.one_of(
    s.fillers,
    disguised_values(),
    st.sampled_from([" ", "-", ".", "·", "/", "\n", "\r\n", "=\r\n", "=E8", "%", "&#", "\\u"]),
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=8),
    st.text("0123456789 -", max_size=24),
    st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=", max_size=40),
    st.lists(st.one_of(s.fillers, disguised_values()), max_size=3).map("".join).map(s.b64),
)
texts = st.lists(pieces, max_size=10).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts)
def test_backends_give_identical_findings(text):
    assert [f.to_dict() for f in HS.scan_text(text)] == [f.to_dict() for f in RE.scan_text(text)]


_RUN_DATA = st.binary(max_size=200) | st.text(alphabet="aZq09+/ \n\r=xYé", max_size=300).map(
    str.encode
)


@settings(max_examples=100, deadline=None)
@given(_RUN_DATA)
def test_base64_run_finder_agrees(data):
    args = (rb"[A-Za-z0-9+/]", engine_module._BASE64_TRIGGER, engine_module._BASE64_RUN)
    holds = engine_module._holds_base64_trigger
    assert triggers.RunFinder(*args, "hyperscan", holds).runs(data) == triggers.RunFinder(
        *args, "re", holds
    ).runs(data)


SAMPLE = (
    f"身份证 {s.make_resident_id('440301', '19900307', '123')}，"
    f"卡号 {s.make_card('622202', 16, '3')}，手机 &#49;3912345678，"
    f"{s.b64('邮箱 zhangsan@163.com')}"
)


@pytest.mark.parametrize(
    ("backend", "name"), [("hyperscan", "hyperscan"), ("re", "re"), ("auto", "hyperscan")]
)
def test_backend_chosen(backend, name):
    assert Engine(hash_key=s.KEY, backend=backend).backend == name


def test_sample_has_findings_of_every_kind():
    assert {f.detector for f in RE.scan_text(SAMPLE)} == {
        "cn_resident_id",
        "cn_bank_card",
        "cn_mobile",
        "email",
    }


def test_unknown_backend_rejected():
    with pytest.raises(ValueError, match="unknown scan backend"):
        Engine(hash_key=s.KEY, backend="pcre")


def test_without_hyperscan_auto_falls_back_to_re(monkeypatch):
    monkeypatch.setattr(triggers, "hyperscan", None)
    assert Engine(hash_key=s.KEY).backend == "re"


def test_without_hyperscan_findings_unchanged(monkeypatch):
    expected = [f.to_dict() for f in HS.scan_text(SAMPLE)]
    monkeypatch.setattr(triggers, "hyperscan", None)
    fallback = Engine(hash_key=s.KEY, custom=CUSTOM)
    assert [f.to_dict() for f in fallback.scan_text(SAMPLE)] == expected


def test_without_hyperscan_explicit_request_fails(monkeypatch):
    monkeypatch.setattr(triggers, "hyperscan", None)
    with pytest.raises(RuntimeError, match="hyperscan"):
        Engine(hash_key=s.KEY, backend="hyperscan")


@given(st.text(alphabet="aZq09+/xY", max_size=40).map(str.encode))
def test_linear_base64_trigger_check_agrees_with_the_trigger(run):
    expected = re.search(engine_module._BASE64_TRIGGER, run) is not None
    assert engine_module._holds_base64_trigger(run) == expected
