"""Normalisation layers, and the offset maps that lead back to the original text."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.normalize import normalise
from rules.textmap import MapChain, substitute
from tests.rules import strategies as s

QP = "decoded quoted-printable"
URL = "decoded URL escapes"
JS = "decoded JSON/JS escapes"
HTML = "decoded HTML entities"
CHARS = "normalised Unicode digits, full-width and invisible characters"
CN = "read Chinese numerals"

# (original, normalised, layers applied)
LAYERS = {
    "qp-utf8-escapes": ("=E8=BA=AB=E4=BB=BD=E8=AF=81", "身份证", (QP,)),
    "qp-gb18030-escapes": ("=C9=ED=B7=DD=D6=A4", "身份证", (QP,)),
    "qp-soft-break": ("4403=\n0119", "44030119", (QP,)),
    "qp-soft-break-crlf": ("4403=\r\n0119", "44030119", (QP,)),
    "qp-lower-hex": ("=e8=ba=ab", "身", (QP,)),
    "qp-leaves-id-after-equals": ("id=310101199003071230", "id=310101199003071230", ()),
    "qp-leaves-id-after-equals-8": ("id=810000199003071237", "id=810000199003071237", ()),
    "qp-leaves-id-after-equals-9": ("id=931010197511204560", "id=931010197511204560", ()),
    "qp-leaves-lone-8bit": ("sid=9f3a", "sid=9f3a", ()),
    "url-utf8": ("%E8%BA%AB%E4%BB%BD%E8%AF%81", "身份证", (URL,)),
    "url-digits": ("%34%34%30%33", "4403", (URL,)),
    "url-double-digits": ("%2534%2534", "44", (URL,)),
    "url-double-utf8": ("%25E8%25BA%25AB", "身", (URL,)),
    "url-at": ("zhangsan%40qq.com", "zhangsan@qq.com", (URL,)),
    "json-u-digits": ("\\u0034\\u0034", "44", (JS,)),
    "json-u-cjk": ("\\u8eab\\u4efd", "身份", (JS,)),
    "json-surrogate-pair": ("\\ud83d\\ude00", "\U0001f600", (JS,)),
    "json-lone-surrogate": ("\\ud83d x", "\ufffd x", (JS,)),
    "js-x-escape": ("\\x34\\x34", "44", (JS,)),
    "js-escaped-slash": ("a\\/b", "a/b", (JS,)),
    "html-decimal": ("&#52;&#52;", "44", (HTML,)),
    "html-decimal-no-semicolon": ("&#52 ", "4 ", (HTML,)),
    "html-hex": ("&#x34;&#X34;", "44", (HTML,)),
    "html-named": ("a&commat;b&period;cn", "a@b.cn", (HTML,)),
    "html-unknown-named": ("&foo;", "&foo;", ()),
    "url-then-html": ("%26%2352%3B", "4", (URL, HTML)),
    "full-width-digits": ("４４０３", "4403", (CHARS,)),
    "full-width-letters": ("ＡＢＣ＠ｑｑ．ｃｏｍ", "ABC@qq.com", (CHARS,)),
    "full-width-x": ("１２３Ｘ", "123X", (CHARS,)),
    "arabic-indic": ("٤٤٠٣", "4403", (CHARS,)),
    "extended-arabic-indic": ("۴۴۰۳", "4403", (CHARS,)),
    "devanagari": ("४४०३", "4403", (CHARS,)),
    "thai": ("๔๔๐๓", "4403", (CHARS,)),
    "math-bold-astral": ("\U0001d7d2\U0001d7d2\U0001d7ce\U0001d7d1", "4403", (CHARS,)),
    "zero-width-space": ("44\u200b03", "4403", (CHARS,)),
    "zero-width-joiners": ("4\u200c4\u200d0\u20603", "4403", (CHARS,)),
    "soft-hyphen": ("44\u00ad03", "4403", (CHARS,)),
    "bidi-marks": ("\u202e44\u200e03\u202c", "4403", (CHARS,)),
    "bom": ("44\ufeff03", "4403", (CHARS,)),
    "middle-dot-kept": ("4403·0119", "4403·0119", ()),
    "cn-ordinary": ("四四〇三〇一一九九〇", "4403011990", (CN,)),
    "cn-ling": ("一三八零零一二三四五六", "13800123456", (CN,)),
    "cn-yao": ("幺三八幺二三四五六七八", "13812345678", (CN,)),
    "cn-financial": ("肆肆零叁零壹壹玖玖零", "4403011990", (CN,)),
    "cn-traditional-financial": ("壹貳參肆伍陸柒捌玖零", "1234567890", (CN,)),
    "cn-spoken-spaces": ("幺三八 五五幺四 五三三幺", "138 5514 5331", (CN,)),
    "cn-spoken-dashes": ("幺三八-一二三四-五六七八", "138-1234-5678", (CN,)),
    "cn-year-not-read": ("二〇二四年三月七日", "二〇二四年三月七日", ()),
    "cn-counting-not-read": ("第一百二十三号", "第一百二十三号", ()),
    "cn-six-not-read": ("一二三四五六", "一二三四五六", ()),
    "plain-untouched": ("身份证 440301", "身份证 440301", ()),
}


@pytest.mark.parametrize(("original", "normalised", "applied"), LAYERS.values(), ids=LAYERS.keys())
def test_layer_text(original, normalised, applied):
    assert normalise(original).text == normalised


@pytest.mark.parametrize(("original", "normalised", "applied"), LAYERS.values(), ids=LAYERS.keys())
def test_layer_named(original, normalised, applied):
    norm = normalise(original)
    assert set(norm.back.trace(0, len(norm.text))[2]) == set(applied)


ID = s.make_resident_id("440301", "19900307", "123")

# (original text, the value as it reads after normalisation, the exact original span)
SPANS = {
    "entities-prefix": (f"身份证&#52;&#52;{ID[2:]}号", ID, f"&#52;&#52;{ID[2:]}"),
    "url-whole": (f"号码{s.url_all(ID)}。", ID, s.url_all(ID)),
    "url-double": (
        "号码" + "".join(f"%25{ord(c):02X}" for c in ID) + "。",
        ID,
        "".join(f"%25{ord(c):02X}" for c in ID),
    ),
    "json-whole": (f"号{s.json_escape_all(ID)}号", ID, s.json_escape_all(ID)),
    "full-width": (f"号码{s.map_chars(ID, s.FULL_WIDTH)}，", ID, s.map_chars(ID, s.FULL_WIDTH)),
    "zero-width-inside": (f"号{ID[:9]}\u200b{ID[9:]}号", ID, f"{ID[:9]}\u200b{ID[9:]}"),
    "zero-width-around": (f"号\u200b{ID}\u200b号", ID, ID),
    "qp-soft-break": (f"号 {ID[:4]}=\r\n{ID[4:]} 号", ID, f"{ID[:4]}=\r\n{ID[4:]}"),
    "cn-numerals": (f"号码{s.map_chars(ID, s.CN_ORDINARY)}。", ID, s.map_chars(ID, s.CN_ORDINARY)),
    "url-then-entity": ("号" + "%26%2352%3B" * 2 + ID[2:] + "号", ID, "%26%2352%3B" * 2 + ID[2:]),
    "entity-then-full-width": (
        f"号&#65300;{s.map_chars(ID[1:], s.FULL_WIDTH)}号",
        ID,
        f"&#65300;{s.map_chars(ID[1:], s.FULL_WIDTH)}",
    ),
    "cjk-around-plain": (f"你好{ID}谢谢", ID, ID),
}


@pytest.mark.parametrize(("original", "value", "span"), SPANS.values(), ids=SPANS.keys())
def test_back_span_is_exact_original(original, value, span):
    norm = normalise(original)
    start = norm.text.index(value)
    a, b = norm.back.span(start, start + len(value))
    assert original[a:b] == span


# -- property: pieces with known disguises map back to exactly their own span ---------

PIECE_DISGUISES = {
    "plain": lambda v: v,
    "full-width": lambda v: s.map_chars(v, s.FULL_WIDTH),
    "zero-width": lambda v: s.insert_every(v, "".join(s.ZW), len(v)),
    "html": s.html_entities,
    "url": s.url_all,
    "url-double": lambda v: "".join(f"%25{b:02X}" for b in v.encode()),
    "json": s.json_escape_all,
    "cn-ordinary": lambda v: s.map_chars(v, s.CN_ORDINARY),
    "cn-financial": lambda v: s.map_chars(v, s.CN_FINANCIAL),
    "arabic-indic": lambda v: s.map_chars(v, {str(i): chr(0x660 + i) for i in range(10)}),
}
_PER_CHAR = ("plain", "full-width", "html", "url", "json", "arabic-indic")


@st.composite
def disguised(draw, value):
    """(text, value) where the value is one disguised piece between filler pieces."""
    if draw(st.booleans()):
        how = draw(st.sampled_from(sorted(PIECE_DISGUISES)))
        piece = PIECE_DISGUISES[how](value)
    else:  # each character its own way
        piece = "".join(PIECE_DISGUISES[draw(st.sampled_from(_PER_CHAR))](c) for c in value)
    before = draw(s.fillers)
    after = draw(s.fillers)
    return f"{before}，{piece}，{after}", piece


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_value_piece_maps_back_to_its_own_span(data):
    value = data.draw(st.one_of(s.resident_ids, s.mobiles, s.cards()))
    text, piece = data.draw(disguised(value))
    norm = normalise(text)
    start = norm.text.index(value)
    a, b = norm.back.span(start, start + len(value))
    assert (a, b) == (text.index(piece), text.index(piece) + len(piece))


# -- textmap: SpanMap, substitute, MapChain against a reference model -----------------

_MARK = re.compile(r"<([0-3])>")


def _reference(text: str) -> tuple[str, list[tuple[int, int]]]:
    """Rewrite every <n> to n copies of '#'; provenance (src start, src end) per output char."""
    out, prov, pos = [], [], 0
    for m in _MARK.finditer(text):
        for i in range(pos, m.start()):
            out.append(text[i])
            prov.append((i, i + 1))
        n = int(m.group(1))
        out.append("#" * n)
        prov.extend([m.span()] * n)
        pos = m.end()
    for i in range(pos, len(text)):
        out.append(text[i])
        prov.append((i, i + 1))
    return "".join(out), prov


def _replace(m: re.Match[str]) -> str:
    return "#" * int(m.group(1))


marked_texts = st.lists(
    st.one_of(st.sampled_from(["<0>", "<1>", "<2>", "<3>"]), st.text("ab字", max_size=3)),
    max_size=12,
).map("".join)


@given(marked_texts)
def test_substitute_text_matches_reference(text):
    result = substitute(text, _MARK, _replace)
    expected = _reference(text)[0] if _MARK.search(text) else None
    assert (result[0] if result else None) == expected


@given(marked_texts, st.data())
def test_spanmap_matches_reference(text, data):
    result = substitute(text, _MARK, _replace)
    out, prov = _reference(text)
    if result is None or not out:
        return
    spans = result[1]
    i = data.draw(st.integers(0, len(out) - 1))
    j = data.draw(st.integers(i + 1, len(out)))
    assert (spans.start(i), spans.end(j)) == (prov[i][0], prov[j - 1][1])


@given(marked_texts)
def test_unchanged_characters_map_exactly(text):
    result = substitute(text, _MARK, _replace)
    if result is None:
        return
    out, spans = result
    for i, ch in enumerate(out):
        if ch != "#":
            k = spans.start(i)
            assert (text[k], spans.end(i + 1)) == (ch, k + 1)


@given(marked_texts)
def test_replaced_region_maps_to_whole_source(text):
    result = substitute(text, _MARK, _replace)
    if result is None:
        return
    out, spans = result
    regions = [(m.start(), m.end()) for m in _MARK.finditer(text) if m.group(1) != "0"]
    dst = [i for i, ch in enumerate(out) if ch == "#"]
    got = {(spans.start(i), spans.end(i + 1)) for i in dst}
    assert got == set(regions)


_SECOND = re.compile(r"#+|a")


def _second(m: re.Match[str]) -> str:
    return "@" if m.group() != "a" else "AA"


@given(marked_texts, st.data())
def test_mapchain_composes_newest_first(text, data):
    first = substitute(text, _MARK, _replace)
    if first is None:
        return
    mid, map1 = first
    prov1 = _reference(text)[1]
    second = substitute(mid, _SECOND, _second)
    if second is None:
        return
    out, map2 = second
    # provenance of the second rewrite, in the middle text
    prov2, pos = [], 0
    for m in _SECOND.finditer(mid):
        prov2.extend((k, k + 1) for k in range(pos, m.start()))
        prov2.extend([m.span()] * len(_second(m)))
        pos = m.end()
    prov2.extend((k, k + 1) for k in range(pos, len(mid)))
    i = data.draw(st.integers(0, len(out) - 1))
    j = data.draw(st.integers(i + 1, len(out)))
    expected = (prov1[prov2[i][0]][0], prov1[prov2[j - 1][1] - 1][1])
    assert MapChain().then("first", map1).then("second", map2).span(i, j) == expected


def test_empty_mapchain_is_identity():
    assert MapChain().span(3, 9) == (3, 9)


def test_substitute_skips_declined_matches():
    assert substitute("a<1>b", _MARK, lambda m: None) is None
