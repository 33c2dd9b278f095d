"""HTTP content encodings and text charsets."""

from __future__ import annotations

import bz2
import gzip
import lzma
import zlib

import brotli
import pytest
import zstandard

from rules.extract import ExtractionError, Limits, decode_content_encoding, decode_text, extract
from rules.extract.charset import choose_codec
from rules.findings import UNINSPECTABLE, Part

ID = "11010519491231002X"
TEXT = f"债务人 张三 身份证号 {ID} 手机 13800138000\n"
BODY = TEXT.encode()


def raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-15)
    return c.compress(data) + c.flush()


# --- content encodings ------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "encoded"),
    [
        ("gzip", gzip.compress(BODY)),
        ("x-gzip", gzip.compress(BODY)),
        ("GZIP", gzip.compress(BODY)),
        ("deflate", zlib.compress(BODY)),
        ("deflate", raw_deflate(BODY)),
        ("br", brotli.compress(BODY)),
        ("zstd", zstandard.ZstdCompressor().compress(BODY)),
        ("identity", BODY),
        ("", BODY),
        ("gzip, br", brotli.compress(gzip.compress(BODY))),
        ("deflate, identity, zstd", zstandard.ZstdCompressor().compress(zlib.compress(BODY))),
        ("gzip", gzip.compress(BODY[:10]) + gzip.compress(BODY[10:])),  # concatenated members
    ],
)
def test_decode_content_encoding(encoding: str, encoded: bytes) -> None:
    assert decode_content_encoding(encoded, encoding).content == BODY


@pytest.mark.parametrize(
    ("encoding", "encoded", "reason"),
    [
        ("gzip", b"\x1f\x8b\x08\x00garbage", "gzip body is truncated"),
        ("gzip", gzip.compress(BODY)[:-12], "gzip body is truncated"),
        ("gzip", gzip.compress(BODY)[:10] + b"\xff" * 40, "gzip body is corrupt"),
        ("br", b"\xff\xff\xff", "br body is corrupt"),
        ("zstd", b"\x28\xb5\x2f\xfd\x00\x00", "zstd body is truncated"),
        ("zstd", zstandard.ZstdCompressor().compress(BODY)[:-3], "zstd body is truncated"),
        ("br", brotli.compress(BODY)[:-3], "br body is truncated"),
        ("compress", b"x", "unsupported content encoding 'compress'"),
    ],
)
def test_decode_content_encoding_errors(encoding: str, encoded: bytes, reason: str) -> None:
    with pytest.raises(ExtractionError) as info:
        decode_content_encoding(encoded, encoding)
    assert info.value.reason.startswith(reason)


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("br", brotli.compress),
        ("zstd", lambda d: zstandard.ZstdCompressor().compress(d)),
    ],
)
def test_content_encoding_bombs_stop_at_the_ratio(encoding: str, compress) -> None:
    bomb = compress(b"\0" * (16 * 2**20))
    with pytest.raises(ExtractionError) as info:
        decode_content_encoding(bomb, encoding)
    assert "expands beyond 200:1" in info.value.reason


def test_content_encoding_member_limit() -> None:
    data = gzip.compress(bytes(range(256)) * 8192)  # 2 MiB, barely compressible
    with pytest.raises(ExtractionError) as info:
        decode_content_encoding(data, "gzip", Limits(max_member_bytes=2**20))
    assert info.value.reason == "gzip body expands beyond 1 MiB"


@pytest.mark.parametrize(
    ("name", "compress"),
    [
        ("a.txt.gz", gzip.compress),
        ("a.txt.bz2", bz2.compress),
        ("a.txt.xz", lzma.compress),
        ("a.txt.zst", lambda d: zstandard.ZstdCompressor().compress(d)),
        ("a.txt.br", brotli.compress),
    ],
)
def test_compressed_files_are_extracted(name: str, compress) -> None:
    (part,) = extract(compress(BODY), name=name)
    assert part == Part(name, TEXT)


def test_corrupt_gzip_file() -> None:
    items = list(extract(b"\x1f\x8b\x08\x00" + b"\x00" * 6 + b"\xff" * 40, name="x.gz"))
    assert [(i.detector, i.location) for i in items] == [(UNINSPECTABLE, "x.gz")]


# --- charsets ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "declared"),
    [
        (TEXT.encode("utf-8"), ""),
        (b"\xef\xbb\xbf" + TEXT.encode("utf-8"), ""),
        (TEXT.encode("gbk"), ""),
        (TEXT.encode("gbk"), "gb2312"),
        (TEXT.encode("gbk"), "x-gbk"),
        (TEXT.encode("utf-16"), ""),  # with BOM
        (TEXT.encode("utf-16-le"), ""),
        (TEXT.encode("utf-16-be"), ""),
        (b"\xff\xfe" + TEXT.encode("utf-16-le"), "utf-8"),  # the BOM outranks a declaration
        (TEXT.encode("utf-32"), ""),
        (TEXT.encode("gbk"), "utf-8"),  # a declaration that does not decode is ignored
    ],
)
def test_decode_text(data: bytes, declared: str) -> None:
    assert decode_text(data, declared=declared) == TEXT


def test_gb18030_four_byte_character() -> None:
    text = f"客户：𠮷田涛 身份证 {ID}\n对账单日期 2024年3月15日\n"
    data = text.encode("gb18030")
    with pytest.raises(UnicodeDecodeError):
        data.decode("gbk")
    assert decode_text(data) == text
    assert decode_text(data, declared="gbk") == text  # GBK labels read as GB18030


def test_big5() -> None:
    text = "客戶姓名：陳大文，身份證號碼 A123456789，電話 0912345678，地址：臺北市信義區\n"
    assert decode_text(text.encode("big5")) == text


def test_utf16_without_bom_mostly_chinese() -> None:
    text = "债务人清单和联系人信息，请于月底前核对。"
    assert decode_text(text.encode("utf-16-le")) == text


def test_declared_charset_wins_when_valid() -> None:
    data = "中文".encode()  # valid UTF-8, and also valid GBK (as other characters)
    assert decode_text(data) == "中文"
    assert decode_text(data, declared="gbk") == data.decode("gb18030")
    assert decode_text(b"caf\xe9", declared="latin-1") == "café"


def test_charset_declared_in_the_document() -> None:
    html = '<html><head><meta charset="gbk"></head><body>张三</body></html>'.encode("gbk")
    assert "张三" in decode_text(html)
    xml = '<?xml version="1.0" encoding="GB2312"?><a>张三</a>'.encode("gbk")
    assert decode_text(xml).endswith("<a>张三</a>")
    assert decode_text(html, declared="utf-8") == decode_text(html)  # utf-8 does not decode


def test_undecodable_bytes_never_raise() -> None:
    assert isinstance(decode_text(bytes(range(256)) * 3), str)
    assert decode_text(b"") == ""
    assert choose_codec(b"abc", declared="no-such-charset") == ("utf-8", 0)


@pytest.mark.parametrize(
    ("data", "kw"),
    [
        (TEXT.encode("gbk"), {"name": "a.txt"}),
        (TEXT.encode("utf-16"), {"name": "a.txt"}),
        (TEXT.encode("gbk"), {"content_type": "text/plain; charset=GBK"}),
        (TEXT.encode("big5", errors="ignore"), {"content_type": "text/plain; charset=big5"}),
        (TEXT.encode("utf-16-le"), {}),
    ],
)
def test_text_parts_in_any_charset(data: bytes, kw: dict) -> None:
    (part,) = extract(data, **kw)
    assert ID in part.text
