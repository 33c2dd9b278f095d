"""Fast paths of the engine against the slow ones they stand in for.

- JSON/JS escapes are undone in bulk, block by block (`_js_bulk`, `substitute_blocks`),
  with a map refined lazily; the reference is the one-match-at-a-time rewrite.
- Decoding layers rewrite through `substitute_decoded` (split + running sums);
  the reference is `substitute` with a Match callback.
- Per-character layers (full-width, invisible …) take the offsets of their characters
  from the engine's layer pass; the reference searches for them with `re`.
- Keyword detectors share one automaton (`KeywordSearch`), or one hyperscan scan of the
  bytes with case folding spelled out as classes; the reference is each detector's own pass.
- End to end: a text scanned as it is and scanned as a JSON string (escaped once or
  twice, ASCII-only or not) gives the same values, at spans that read back as them.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules.custom import KeywordDetector, KeywordSearch, _lower_keeping_offsets
from rules.engine import Engine, _byte_to_char, _Disguises
from rules.normalize import ALL_LAYERS, DECODING_LAYERS, _js_bulk, normalise
from rules.textmap import substitute, substitute_blocks
from tests.rules import strategies as s

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
JS = next(layer for layer in DECODING_LAYERS if layer.bulk is not None)
ENGINE = Engine(hash_key=s.KEY)
HYPERSCAN = Engine(hash_key=s.KEY, backend="hyperscan")

# Texts rich in backslashes, escapes valid and not, surrogates, non-ASCII, the stand-in.
_PIECES = st.sampled_from(
    [
        "\\", "\\\\", "\\n", "\\r\\n", '\\"', "\\'", "\\/", "\\t", "\\b", "\\f", "\\u0034",
        "\\u8eab", "\\ud83d", "\\ude00", "\\uD83D\\uDE00", "\\x41", "\\x4", "\\u12", "\\d",
        "\\U0001f600", "\\N{DIGIT ONE}", "\\0", "\\a", "\\\n", "\\中", "\\é", "\uf8ff",
        "\ud800", "a", "Z", "7", "u", "x", "/", '"', " ", ",", "身份证", "é", "\U0001d7d2",
    ]
)  # fmt: skip
escape_texts = st.lists(_PIECES, max_size=30).map("".join)


def _json_string(text: str, ascii_only: bool, times: int) -> str:
    for _ in range(times):
        text = json.dumps(text, ensure_ascii=ascii_only)
    return text


@st.composite
def json_texts(draw) -> str:
    """What an upload holds: text with values, as a JSON string, maybe inside another."""
    text = draw(s.fillers) + draw(st.sampled_from(["\n", "\r\n", "\t", '"', "/", "\\"]))
    return _json_string(text + draw(escape_texts), draw(st.booleans()), draw(st.integers(1, 2)))


@SETTINGS
@given(st.one_of(escape_texts, json_texts()))
def test_bulk_decoding_agrees_with_one_match_at_a_time(text):
    bulk = _js_bulk(text)
    exact = JS.apply_exactly(text)
    assert bulk is None or bulk == (exact[0] if exact else text)


def _same_map(fast, exact, length: int, data) -> None:
    for _ in range(5):
        i = data.draw(st.integers(0, length))
        j = data.draw(st.integers(i, length))
        assert fast.start(i) == exact.start(i)
        assert fast.end(j) == exact.end(j)
        assert fast.touches(i, j) == exact.touches(i, j)


@SETTINGS
@given(st.one_of(escape_texts, json_texts()), st.integers(1, 40), st.integers(1, 8), st.data())
def test_block_rewrite_agrees_with_one_match_at_a_time(text, block, small, data):
    exact = JS.apply_exactly(text)

    def small_blocks(piece):
        return substitute_blocks(piece, JS._outside, JS.bulk, JS.apply_exactly, small)

    fast = substitute_blocks(text, JS._outside, JS.bulk, small_blocks, block)
    assert (fast is None) == (exact is None)
    if exact is not None:
        assert fast[0] == exact[0]
        _same_map(fast[1], exact[1], len(exact[0]), data)


@SETTINGS
@given(st.one_of(escape_texts, json_texts(), st.text()), st.data())
def test_split_rewrite_agrees_with_match_callback(text, data):
    for layer in DECODING_LAYERS:
        fast = layer.apply_exactly(text)
        reference = substitute(text, layer.pattern, lambda m, layer=layer: layer.decode(m.group()))
        assert (fast is None) == (reference is None)
        if fast is not None:
            assert fast[0] == reference[0]
            _same_map(fast[1], reference[1], len(fast[0]), data)


def test_bulk_declines_what_it_cannot_be_sure_of():
    for text in ("\\d", "a\\", "\\ud83d\\ude00", "\\U0001f600", "\\x4g", "\uf8ff\\/"):
        assert _js_bulk(text) is None, text
    assert _js_bulk("\\\\d\\n") == "\\d\n"
    assert _js_bulk("no escapes 中") == "no escapes 中"


# -- the engine on JSON ------------------------------------------------------------------

values = st.one_of(
    s.resident_ids.map(lambda v: ("cn_resident_id", v)),
    s.mobiles.map(lambda v: ("cn_mobile", v)),
    s.cards().map(lambda v: ("cn_bank_card", v)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(s.fillers, st.sampled_from(["\n", "\r\n", "\t", " ", '"']), values),
        min_size=1,
        max_size=4,
    ),
    st.booleans(),
    st.integers(1, 2),
)
def test_json_upload_finds_what_the_text_holds(pieces, ascii_only, times):
    text = "".join(filler + sep + value for filler, sep, (_, value) in pieces) + "\n"
    upload = '{"note": ' + _json_string(text, ascii_only, times) + "}"
    plain = {(f.detector, f.value_hash) for f in ENGINE.scan_text(text)}
    found = ENGINE.scan_text(upload)
    assert {(f.detector, f.value_hash) for f in found} == plain
    for detector, value in (v for _, _, v in pieces):
        if s.has(found, detector, value):
            f = next(f for f in found if f.value_hash == s.hash_of(detector, value))
            shown = json.loads('"' + upload[f.start : f.end] + '"')
            for _ in range(times - 1):
                shown = json.loads('"' + shown + '"')
            assert shown == value


def test_value_right_after_an_escaped_line_break():
    value = s.make_resident_id("110101", "19900307", "123")
    upload = json.dumps({"text": f"客户资料\n{value}\r\n13812345678"})
    found = ENGINE.scan_text(upload)
    f = s.the(found, "cn_resident_id", value)
    assert upload[f.start : f.end] == value
    assert s.has(found, "cn_mobile", "13812345678")


# -- keywords --------------------------------------------------------------------------

_ALPHABET = "abAB机密İiIKkK\u212aſSsÉé\U00010400\U00010428 "  # Kelvin sign, long s, Deseret
_WORDS = st.text(_ALPHABET, min_size=1, max_size=4)
keyword_detectors = st.lists(
    st.builds(
        lambda i, words, strict: KeywordDetector(f"k{i}", tuple(words), case_sensitive=strict),
        st.integers(0, 3),
        st.lists(_WORDS, min_size=1, max_size=3),
        st.booleans(),
    ),
    max_size=4,
)


def _naive(detector: KeywordDetector, text: str) -> set[tuple[int, int, str]]:
    """Every occurrence of every word, found with str.find on the (one-for-one) lowered text."""
    fold = (lambda t: t) if detector.case_sensitive else _lower_keeping_offsets
    haystack, out = fold(text), set()
    for word in {fold(w) for w in detector.words}:
        at = haystack.find(word)
        while at >= 0:
            out.add((at, at + len(word), word))
            at = haystack.find(word, at + 1)
    return out


@SETTINGS
@given(keyword_detectors, st.text(_ALPHABET + "xy\ud800", max_size=40))
def test_one_keyword_pass_answers_as_each_detector(detectors, text):
    each = KeywordSearch(detectors).find_each(text)
    assert each == [d.find(text) for d in detectors]
    in_bytes = KeywordSearch(detectors, backend="hyperscan").find_each(
        text, text.encode("utf-8", "replace"), _byte_to_char
    )
    assert in_bytes == each
    for detector, hits in zip(detectors, each, strict=True):
        assert {(a, b, c.value) for a, b, c in hits} == _naive(detector, text)
        assert all(c.detector == detector.id for _, _, c in hits)


# -- per-character layers located by the layer pass ------------------------------------

_DISGUISED_PIECES = st.sampled_from(
    [
        "４", "Ｘ", "\u200b", "\u00ad", "\u3000", "\U0001d7d2", "٤", "—", "&#65300;", "\\uff14",
        "%EF%BC%94", "%E2%80%8B", "&#x200b;", "\\n", "=E4=B8=AD", "=\r\n", "1", "38", "a", "中",
        "幺三八", "一", " ", "&", "%", "\\",
    ]
)  # fmt: skip


@SETTINGS
@given(st.lists(_DISGUISED_PIECES, max_size=25).map("".join), st.data())
def test_located_characters_rewrite_as_the_search_would(text, data):
    data_bytes = text.encode("utf-8", "replace")
    located = _Disguises(HYPERSCAN._layers, text, data_bytes)
    fast = normalise(text, located.needed, located.where)
    slow = normalise(text)  # every layer finds its own matches with `re`
    assert fast.text == slow.text
    for _ in range(5):
        i = data.draw(st.integers(0, len(fast.text)))
        j = data.draw(st.integers(i, len(fast.text)))
        assert fast.back.trace(i, j) == slow.back.trace(i, j)


# -- mail: a single-part message's body taken whole ------------------------------------------

_HEADER_LINES = st.sampled_from(
    [
        b"From: a@firm.example",
        b"Subject: =?utf-8?b?5Lya6K6u?=",
        b"Subject: \xe4\xbc\x9a\xe8\xae\xae",
        b"Content-Type: text/plain; charset=utf-8",
        b"Content-Type: text/html; charset=gbk",
        b"Content-Type: multipart/mixed; boundary=b",
        b"Content-Type: message/rfc822",
        b"Content-Type: application/octet-stream; name=a.bin",
        b"Content-Transfer-Encoding: base64",
        b"Content-Transfer-Encoding: quoted-printable",
        b"Content-Disposition: attachment; filename*=utf-8''%E5%90%8D.txt",
        b" folded on",
        b"not a header line",
        b"",
        b"X-A: b",
    ]
)
_BODY_LINES = st.sampled_from(
    [b"--b", b"--b--", b"hello", b"5Lya6K6u", b"=E4=BC=9A", b"\xe4\xbc\x9a", b"", b".", b"a=b"]
)


@given(
    st.lists(_HEADER_LINES, max_size=8),
    st.lists(_BODY_LINES, max_size=8),
    st.lists(st.sampled_from([b"\r\n", b"\n", b"\r"]), min_size=1, max_size=4),
)
@SETTINGS
def test_a_mail_reads_the_same_through_the_single_part_path(head, body, eols):
    import email.policy
    from email.parser import BytesParser

    from rules.extract.mime import parse_mail

    lines = [*head, b"", *body]  # line endings mixed: CRLF, LF and the bare CR
    raw = b"".join(line + eols[i % len(eols)] for i, line in enumerate(lines))
    fast = parse_mail(raw, keep=True)
    slow = BytesParser(policy=email.policy.compat32).parsebytes(raw)
    assert parse_mail(raw) is fast  # the judge's second look gets the same object
    assert parse_mail(raw) is not fast  # and that look let it go
    assert [(k, str(v)) for k, v in fast.raw_items()] == [(k, str(v)) for k, v in slow.raw_items()]
    assert fast.get_content_type() == slow.get_content_type()
    assert [type(d) for d in fast.defects] == [type(d) for d in slow.defects]
    fast_parts, slow_parts = list(fast.walk()), list(slow.walk())
    assert len(fast_parts) == len(slow_parts)
    for f, s_ in zip(fast_parts, slow_parts, strict=True):
        if not f.is_multipart():
            assert f.get_payload(decode=True) == s_.get_payload(decode=True)


@pytest.mark.parametrize("escape", ["\\n", "\\/", '\\"', "\\u0034"])
def test_an_escape_ending_a_short_input_is_seen_by_the_layer_pass(escape):
    """Hyperscan 5.4 missed the JSON layer's own pattern there (17-34 byte inputs)."""
    json_layer = next(i for i, layer in enumerate(ALL_LAYERS) if "JSON" in layer.name)
    for size in range(48):
        text = "a" * size + escape
        located = _Disguises(HYPERSCAN._layers, text, text.encode())
        assert json_layer in located.needed(text), size
