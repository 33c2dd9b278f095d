"""What a decompressor skips is scanned too: gzip header fields, zstd skippable frames,
bytes after a deflate stream; buffered (`rules.extract`) and streamed (`rules.stream`)."""

from __future__ import annotations

import struct
import zlib

import pytest
import zstandard

from rules.engine import Engine
from rules.extract import ExtractionError, decode_content_encoding, extract
from rules.extract.framing import MAX_GZIP_HEADER, MAX_STREAMED_SKIPPABLE, Hidden
from rules.stream import ContentDecoder

ID = "11010519491231002X"  # a valid resident ID (checksum X), generated
BODY = "季度对账说明，无个人信息。quarterly statement, nothing personal.\n".encode() * 20


def gzip_member(
    body: bytes,
    *,
    name: bytes | None = None,
    comment: bytes | None = None,
    extra: bytes | None = None,
    hcrc: bool = False,
) -> bytes:
    """One gzip member with the optional header fields Python's gzip module cannot write."""
    flags = (4 if extra is not None else 0) | (8 if name is not None else 0)
    flags |= (16 if comment is not None else 0) | (2 if hcrc else 0)
    header = b"\x1f\x8b\x08" + bytes([flags]) + b"\x00" * 4 + b"\x00\x03"
    if extra is not None:
        header += struct.pack("<H", len(extra)) + extra
    if name is not None:
        header += name + b"\x00"
    if comment is not None:
        header += comment + b"\x00"
    if hcrc:
        header += struct.pack("<H", zlib.crc32(header) & 0xFFFF)
    deflate = zlib.compressobj(wbits=-15)
    data = deflate.compress(body) + deflate.flush()
    return header + data + struct.pack("<II", zlib.crc32(body), len(body) & 0xFFFFFFFF)


def skippable(content: bytes, nibble: int = 0) -> bytes:
    return struct.pack("<II", 0x184D2A50 + nibble, len(content)) + content


def zstd(body: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(body)


def detectors(parts) -> list[tuple[str, str]]:
    engine = Engine(hash_key=b"k" * 32)
    return [(f.detector, f.location) for f in engine.scan_parts(list(parts))]


# -- buffered ----------------------------------------------------------------------------------


def test_gzip_header_fields_come_back_beside_the_content() -> None:
    raw = gzip_member(
        BODY, name=f"{ID}.txt".encode(), comment=f"身份证 {ID}".encode(), extra=b"AB\x02\x00hi",
        hcrc=True,
    )  # fmt: skip
    decoded = decode_content_encoding(raw, "gzip")
    assert decoded.content == BODY
    assert decoded.hidden == (
        Hidden("gzip extra field", b"AB\x02\x00hi"),
        Hidden("gzip file name", f"{ID}.txt".encode()),
        Hidden("gzip comment", f"身份证 {ID}".encode()),
    )


def test_every_member_of_a_multi_member_gzip_is_looked_at() -> None:
    raw = gzip_member(BODY[:50]) + gzip_member(BODY[50:], comment=ID.encode())
    decoded = decode_content_encoding(raw, "gzip")
    assert decoded.content == BODY
    assert decoded.hidden == (Hidden("gzip comment", ID.encode()),)


def test_a_plain_gzip_header_hides_nothing() -> None:
    assert decode_content_encoding(gzip_member(BODY, name=b""), "gzip").hidden == ()


def test_an_oversized_gzip_header_is_refused() -> None:
    raw = gzip_member(BODY, comment=b"x" * MAX_GZIP_HEADER)
    with pytest.raises(ExtractionError) as info:
        decode_content_encoding(raw, "gzip")
    assert info.value.reason == "gzip body is corrupt (gzip: gzip header over 64 KiB)"


@pytest.mark.parametrize("wrapped", [True, False], ids=["zlib", "raw-deflate"])
def test_bytes_after_a_deflate_stream_are_refused_not_ignored(wrapped: bool) -> None:
    c = zlib.compressobj(wbits=15 if wrapped else -15)
    raw = c.compress(BODY) + c.flush() + f"tail {ID}".encode()
    with pytest.raises(ExtractionError) as info:
        decode_content_encoding(raw, "deflate")
    assert "data after the end of the deflate stream" in info.value.reason


def test_zstd_skippable_frames_come_back_beside_the_content() -> None:
    raw = skippable(f"证件 {ID}".encode()) + zstd(BODY) + skippable(b"", 15) + skippable(b"z", 3)
    decoded = decode_content_encoding(raw, "zstd")
    assert decoded.content == BODY
    assert decoded.hidden == (
        Hidden("zstd skippable frame", f"证件 {ID}".encode()),
        Hidden("zstd skippable frame", b"z"),
    )


def test_a_truncated_skippable_frame_is_truncated() -> None:
    raw = zstd(BODY) + skippable(b"0123456789")[:-3]
    with pytest.raises(ExtractionError) as info:
        decode_content_encoding(raw, "zstd")
    assert info.value.reason.startswith("zstd body is truncated")


def test_chained_encodings_gather_what_every_stage_skipped() -> None:
    raw = skippable(b"outer") + zstd(gzip_member(BODY, comment=b"inner"))
    decoded = decode_content_encoding(raw, "gzip, zstd")
    assert decoded.content == BODY
    assert [h.data for h in decoded.hidden] == [b"outer", b"inner"]


@pytest.mark.parametrize(
    ("name", "raw", "place"),
    [
        ("notes.txt.gz", gzip_member(BODY, comment=f"身份证 {ID}".encode()), "gzip comment"),
        ("notes.txt.gz", gzip_member(BODY, name=f"{ID}.txt".encode()), "gzip file name"),
        ("notes.txt.zst", skippable(f"证件 {ID}".encode()) + zstd(BODY), "zstd skippable frame"),
    ],
)
def test_a_compressed_file_is_scanned_where_the_decoder_does_not_look(name, raw, place) -> None:
    found = detectors(extract(raw, name=name, location=f"attachment {name}"))
    assert found == [("cn_resident_id", f"attachment {name} › {place}")]


def test_a_gbk_file_name_in_a_gzip_header_is_read() -> None:
    raw = gzip_member(BODY, name=f"客户名单{ID}.csv".encode("gbk"))
    found = detectors(extract(raw, name="list.gz", location="attachment list.gz"))
    assert found == [("cn_resident_id", "attachment list.gz › gzip file name")]


def test_a_clean_compressed_file_has_no_findings() -> None:
    raw = gzip_member(BODY, name=b"statement.txt", comment=b"made by the office scanner")
    assert detectors(extract(raw, name="statement.txt.gz")) == []


# -- streamed ----------------------------------------------------------------------------------


def stream(raw: bytes, encoding: str, piece: int) -> tuple[bytes, list[Hidden], list[int]]:
    """Decode `raw` fed in pieces: the output, what was put aside, and the output length
    at each aside (what had been decoded when it was judged)."""
    out: list[bytes] = []
    hidden: list[Hidden] = []
    when: list[int] = []

    def aside(h: Hidden) -> None:
        hidden.append(h)
        when.append(sum(map(len, out)))

    decoder = ContentDecoder(encoding, aside=aside)
    for i in range(0, len(raw), piece):
        decoder.feed(raw[i : i + piece], out.append)
    decoder.close(out.append)
    return b"".join(out), hidden, when


@pytest.mark.parametrize("piece", [1, 7, 4096])
def test_streamed_gzip_header_fields_are_put_aside_before_the_content(piece: int) -> None:
    raw = gzip_member(BODY, name=b"a.txt", comment=ID.encode(), hcrc=True)
    raw += gzip_member(BODY, extra=b"xy")
    out, hidden, when = stream(raw, "gzip", piece)
    assert out == BODY * 2
    assert hidden == [
        Hidden("gzip file name", b"a.txt"),
        Hidden("gzip comment", ID.encode()),
        Hidden("gzip extra field", b"xy"),
    ]
    assert when[:2] == [0, 0]  # before any of the member's content


def test_a_streamed_gzip_header_holds_back_its_whole_length() -> None:
    assert ContentDecoder("gzip").pending > MAX_GZIP_HEADER
    assert ContentDecoder("deflate").pending < 4096


def test_an_oversized_streamed_gzip_header_is_refused_before_it_ends() -> None:
    decoder = ContentDecoder("gzip")
    raw = gzip_member(BODY, comment=b"x" * (2 * MAX_GZIP_HEADER))
    with pytest.raises(ExtractionError) as info:
        for i in range(0, len(raw), 4096):
            decoder.feed(raw[i : i + 4096], lambda _data: None)
    assert info.value.reason == "the gzip body is corrupt (gzip header over 64 KiB)"


def test_a_streamed_second_member_that_is_not_gzip_is_refused() -> None:
    raw = gzip_member(BODY) + f"tail {ID}".encode()
    with pytest.raises(ExtractionError) as info:
        stream(raw, "gzip", 100)
    assert info.value.reason == "the gzip body is corrupt (not a gzip member)"


@pytest.mark.parametrize("piece", [1, 5, 4096])
def test_streamed_zstd_skippable_frames_are_put_aside_whole(piece: int) -> None:
    content = f"证件 {ID} ".encode() * 50
    raw = zstd(BODY) + skippable(content, 7) + skippable(b"") + zstd(BODY)
    out, hidden, _ = stream(raw, "zstd", piece)
    assert out == BODY * 2
    assert hidden == [Hidden("zstd skippable frame", content)]


def test_a_streamed_skippable_frame_over_the_limit_is_refused() -> None:
    raw = zstd(BODY) + skippable(b"x" * (MAX_STREAMED_SKIPPABLE + 1))
    with pytest.raises(ExtractionError) as info:
        stream(raw, "zstd", 4096)
    assert info.value.reason == "the zstd body is corrupt (zstd skippable frame over 64 KiB)"
    assert ContentDecoder("zstd").pending > MAX_STREAMED_SKIPPABLE
