"""Streaming scan: values across chunk borders are found exactly once, memory stays flat."""

from __future__ import annotations

import gzip
import json
import tracemalloc
import zlib
from pathlib import Path

import brotli
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules.engine import Engine
from rules.extract.limits import ExtractionError, Limits
from rules.stream import CHUNK, BytesStream, ContentDecoder, TextStream

CORPUS = Path(__file__).parent.parent / "data" / "corpus" / "text.jsonl"
KEY = b"stream-test-key-0123456789abcdef"
ENGINE = Engine(hash_key=KEY)

# Small steps so that the labelled corpus (every disguise, end to end) spans many of them.
STEP, WINDOW = 4 * 1024, 1024
_CASES = [json.loads(line)["text"] for line in CORPUS.read_text("utf-8").splitlines()]
TEXT = "\n".join(_CASES)
WHOLE = [f.to_dict() for f in ENGINE.scan_text(TEXT, "upload")]


def _stream(chunks) -> list[dict]:
    stream = TextStream(ENGINE, "upload", step=STEP, window=WINDOW)
    found = []
    for chunk in chunks:
        found += stream.feed(chunk)
    found += stream.close()
    return [f.to_dict() for f in found]


def _split(text: str, sizes: list[int]) -> list[str]:
    chunks, pos, i = [], 0, 0
    while pos < len(text):
        size = sizes[i % len(sizes)]
        chunks.append(text[pos : pos + size])
        pos += size
        i += 1
    return chunks


def test_corpus_text_is_long_enough_for_several_steps():
    assert len(TEXT) > 5 * (STEP + WINDOW)
    assert len(WHOLE) > 500


@pytest.mark.parametrize("size", [1, 7, 1000, STEP + 1, 10**7], ids=str)
def test_fixed_chunk_sizes_give_the_whole_scan(size):
    text = TEXT if size > 1 else TEXT[: 3 * (STEP + WINDOW)]  # 1-char chunks: keep it quick
    expected = WHOLE if size > 1 else [f.to_dict() for f in ENGINE.scan_text(text, "upload")]
    assert _stream(_split(text, [size])) == expected


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(min_value=1, max_value=20_000), min_size=1, max_size=20))
def test_random_chunking_gives_the_whole_scan(sizes):
    assert _stream(_split(TEXT, sizes)) == WHOLE


def test_a_value_split_at_every_position_of_a_border_is_reported_once():
    value = "11010519491231002X"
    filler = "备注：正常还款。" * ((STEP + WINDOW) // 8 + 1)
    text = filler + "身份证 " + value + "，" + filler
    at = len(filler) + 4
    for split in range(at - 2, at + len(value) + 2):
        found = _stream([text[:split], text[split:]])
        ids = [f for f in found if f["type"] == "cn_resident_id"]
        assert len(ids) == 1, f"split at {split - at}: {len(ids)} findings"
        assert text[ids[0]["start"] : ids[0]["end"]] == value


def test_bytes_stream_decodes_across_chunk_borders():
    text = "联系人手机：13912345678，身份证 11010519491231002X"
    data = text.encode("gb18030")
    stream = BytesStream(ENGINE, "body", encoding="gb18030", step=STEP, window=WINDOW)
    found = []
    for i in range(len(data)):  # one byte at a time: multi-byte characters split everywhere
        found += stream.feed(data[i : i + 1])
    found += stream.close()
    assert sorted(f.detector for f in found) == ["cn_mobile", "cn_resident_id"]


def test_memory_stays_bounded_over_a_long_stream():
    # Ordinary prose with a value now and then, at the default step and window.
    block = "债务人已按协议分期还款，合同编号 HT-2024-0315，金额 12,345.67 元。" * 40
    block += "身份证 11010519491231002X\n"
    chunk = (block * (65536 // len(block) + 1))[:65536]
    stream = TextStream(ENGINE, "big")
    tracemalloc.start()
    try:
        count = 0
        for _ in range(256):  # 16 Mi characters
            count += len(stream.feed(chunk))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count > 0
    assert stream.chars == 256 * 65536
    assert peak < 24 * 2**20, f"peak {peak / 2**20:.1f} MiB while streaming 16 Mi characters"


def test_safe_offset_is_never_passed_by_a_later_finding():
    """What is before safe_offset may be let go: no finding reported later starts there."""
    stream = TextStream(ENGINE, "upload", step=STEP, window=WINDOW)
    safe = 0
    for chunk in _split(TEXT, [997, 5003, 64]):
        for f in stream.feed(chunk):
            assert f.start >= safe, (f.start, safe)
        assert stream.safe_offset >= safe  # it only moves forward
        assert stream.safe_offset <= stream.chars
        safe = stream.safe_offset
    for f in stream.close():
        assert f.start >= safe
    assert stream.safe_offset == len(TEXT)


def test_bytes_stream_counts_only_whole_characters():
    stream = BytesStream(ENGINE, "body", step=STEP, window=WINDOW)
    data = "身份证".encode()
    stream.feed(data[:4])  # one character and a third of the next
    assert stream.chars == 1
    stream.feed(data[4:])
    assert stream.chars == 3


# -- Content-Encoding, as the body arrives ---------------------------------------------------

BODY = TEXT.encode()


def _compressed() -> dict[str, bytes]:
    deflater = zlib.compressobj(wbits=-15)
    return {
        "gzip": gzip.compress(BODY) + gzip.compress(b"second member") + b"\0" * 8,
        "deflate": zlib.compress(BODY),
        "deflate (raw)": deflater.compress(BODY) + deflater.flush(),
        "br": brotli.compress(BODY),
        "zstd": zstandard.ZstdCompressor().compress(BODY)
        + zstandard.ZstdCompressor().compress(b"second frame"),
        "gzip, br": brotli.compress(gzip.compress(BODY)),
    }


COMPRESSED = _compressed()
EXTRA = {"gzip": b"second member", "zstd": b"second frame"}


def _decode(coding: str, data: bytes, sizes: list[int]) -> list[bytes]:
    decoder = ContentDecoder(coding.split(" (")[0])
    out: list[bytes] = []
    for piece in _split_bytes(data, sizes):
        decoder.feed(piece, out.append)
    fed = b"".join(out)
    decoder.close(out.append)
    # Output is handed on as its input is consumed, not kept back for later calls.
    assert fed == b"".join(out)
    return out


def _split_bytes(data: bytes, sizes: list[int]) -> list[bytes]:
    pieces, pos, i = [], 0, 0
    while pos < len(data):
        pieces.append(data[pos : pos + sizes[i % len(sizes)]])
        pos += sizes[i % len(sizes)]
        i += 1
    return pieces


@pytest.mark.parametrize("coding", COMPRESSED)
@pytest.mark.parametrize("sizes", [[1], [7, 4096], [65536]], ids=["1", "7-4096", "64k"])
def test_content_decoder_undoes_each_coding_in_any_chunking(coding, sizes):
    data = COMPRESSED[coding] if sizes != [1] else COMPRESSED[coding][:20000]
    if sizes == [1]:  # byte by byte: only check the output is a prefix, then the whole
        decoder = ContentDecoder(coding.split(" (")[0])
        out: list[bytes] = []
        for piece in _split_bytes(data, sizes):
            decoder.feed(piece, out.append)
        assert (BODY + EXTRA.get(coding, b"")).startswith(b"".join(out))
        return
    out = _decode(coding, data, sizes)
    assert b"".join(out) == BODY + EXTRA.get(coding, b"")
    assert max(len(piece) for piece in out) <= CHUNK


def test_brotli_hands_on_all_output_even_past_its_output_limit():
    body = BODY * 16  # repeats: far more output per input piece than one CHUNK
    out = _decode("br", brotli.compress(body), [65536])
    assert b"".join(out) == body


@pytest.mark.parametrize("coding", COMPRESSED)
def test_a_truncated_body_is_an_error(coding):
    with pytest.raises(ExtractionError, match="truncated"):
        _decode(coding, COMPRESSED[coding][: len(COMPRESSED[coding]) // 2], [4096])


@pytest.mark.parametrize(
    ("coding", "data"),
    [
        ("gzip", gzip.compress(b"x") + b"garbage"),
        ("gzip", gzip.compress(b"x") + b"\0\0\0junk"),
        ("deflate", zlib.compress(b"x") + b"junk"),
        ("br", brotli.compress(b"x") + b"junk"),
        ("zstd", b"not a zstd frame at all"),
        ("compress", b"x"),
    ],
)
def test_corrupt_trailing_or_unknown_is_an_error(coding, data):
    with pytest.raises(ExtractionError):
        _decode(coding, data, [4096])


@pytest.mark.parametrize(
    ("coding", "compress"),
    [
        ("gzip", gzip.compress),
        ("br", brotli.compress),
        ("zstd", lambda data: zstandard.ZstdCompressor(level=19).compress(data)),
    ],
)
def test_a_bomb_stops_at_the_ratio_with_bounded_pieces(coding, compress):
    bomb = compress(b"\0" * (300 * 2**20))
    decoder = ContentDecoder(coding, Limits())
    produced = []
    with pytest.raises(ExtractionError, match="200:1"):
        for piece in _split_bytes(bomb, [65536]):
            decoder.feed(piece, lambda data: produced.append(len(data)))
    assert max(produced) <= CHUNK
    limits = Limits()
    bound = max(limits.ratio_floor_bytes, limits.max_ratio * decoder.consumed) + CHUNK
    assert sum(produced) <= bound < 300 * 2**20  # stopped at the ratio, not at the end


def test_identity_passes_bytes_through_without_pending():
    decoder = ContentDecoder("identity")
    out: list[bytes] = []
    decoder.feed(b"abc", out.append)
    decoder.close(out.append)
    assert out == [b"abc"] and decoder.pending == 0
