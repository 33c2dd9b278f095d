"""Malformed and hostile input: extract() never raises, and Problems never quote content."""

from __future__ import annotations

import gzip
import io
import tarfile
import zipfile

import py7zr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules.extract import Limits, extract
from rules.findings import UNINSPECTABLE, Part, Problem

ID = "11010519491231002X"
SECRET = f"身份证号 {ID}\n".encode()

NAMES = [
    "", "a.txt", "a.csv", "a.tsv", "a.json", "a.html", "a.xml", "a.eml", "a.zip", "a.docx",
    "a.xlsx", "a.pptx", "a.pdf", "a.doc", "a.xls", "a.gz", "a.tgz", "a.tar", "a.tar.gz",
    "a.bz2", "a.xz", "a.zst", "a.br", "a.7z", "a.bin",
]  # fmt: skip
CONTENT_TYPES = [
    "", "text/plain", "text/plain; charset=gbk", "text/csv", "text/html", "application/json",
    "message/rfc822", "multipart/form-data; boundary=zz", "multipart/form-data",
    "application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=big5",
    "application/zip", "application/pdf", "application/gzip", "application/x-brotli",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/octet-stream", "text/plain; charset=no-such-charset",
]  # fmt: skip


def zipped(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def tarred(data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("a.txt")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def sevenzipped(data: bytes) -> bytes:
    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w") as archive:
        archive.writestr(data, "a.txt")
    return buf.getvalue()


DOCX = zipped(
    {
        "[Content_Types].xml": b"<Types/>",
        "word/document.xml": f'<w:document xmlns:w="w"><w:body><w:p><w:r><w:t>{ID}</w:t>'
        "</w:r></w:p></w:body></w:document>".encode(),
    }
)
SEEDS = [
    zipped({"a.txt": SECRET, "b.zip": zipped({"c.txt": SECRET})}),
    DOCX,
    gzip.compress(SECRET),
    tarred(SECRET),
    sevenzipped(SECRET),
    b"From: a@b.c\r\nSubject: x\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n"
    b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"6Lqr5Lu96K+B5Y+3IDExMDEwNTE5NDkxMjMxMDAyWA==\r\n--q--\r\n",
    b'--zz\r\nContent-Disposition: form-data; name="a"; filename="b.zip"\r\n\r\n'
    + zipped({"c.txt": SECRET})
    + b"\r\n--zz--\r\n",
]


def check(items: list) -> None:
    for item in items:
        assert isinstance(item, Part | Problem)
        if isinstance(item, Problem):
            assert ID not in item.reason
            assert item.reason
        else:
            offsets = [s.offset for s in item.segments]
            assert offsets == sorted(offsets)
            assert all(0 <= o <= len(item.text) for o in offsets)


def problems(data: bytes, **kw) -> list[Problem]:
    items = list(extract(data, **kw))
    check(items)
    return [i for i in items if isinstance(i, Problem)]


def test_garbage_with_an_office_name() -> None:
    for name in ("x.docx", "x.xlsx", "x.pptx", "x.zip", "x.7z", "x.tar", "x.gz", "x.xz", "x.doc"):
        found = problems(b"garbage " + SECRET, name=name)
        assert [p.detector for p in found] == [UNINSPECTABLE], name
        assert found[0].location == name


def test_truncated_seeds_never_raise_or_leak() -> None:
    for seed in SEEDS:
        for cut in range(1, len(seed), max(1, len(seed) // 40)):
            problems(seed[:cut], name="a.zip")
            problems(seed[:cut])


def test_unknown_binary_gives_nothing() -> None:
    assert list(extract(bytes(range(256)) * 4, name="blob.bin")) == []
    assert list(extract(b"")) == []
    assert list(extract(b"\x89PNG\r\n\x1a\n" + b"\x00\x01\x02\x03" * 100, name="a.png")) == []


def test_input_over_the_size_limit() -> None:
    found = problems(b"x" * 2048, name="big.txt", limits=Limits(max_input_bytes=1024))
    assert [p.reason for p in found] == ["2 KiB is over the 1 KiB limit"]


def test_time_budget() -> None:
    found = problems(SEEDS[0], name="a.zip", limits=Limits(max_seconds=0))
    assert [p.reason for p in found] == ["time budget of 0 s exhausted"]


def test_budget_exhaustion_is_reported_once() -> None:
    inner = zipped({f"f{i}.txt": SECRET for i in range(3)})
    data = zipped({f"z{i}.zip": inner for i in range(5)})
    found = problems(data, name="a.zip", limits=Limits(max_files=6))
    assert [p.reason for p in found] == ["more than 6 files in the input"]


def test_bytes_like_input() -> None:
    assert list(extract(bytearray(SECRET), name="a.txt")) == list(extract(SECRET, name="a.txt"))
    assert list(extract(memoryview(SECRET), name="a.txt")) == list(extract(SECRET, name="a.txt"))


@st.composite
def mutated_seeds(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(data) - 1))
        data[at] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.one_of(st.binary(max_size=2048), mutated_seeds()),
    name=st.sampled_from(NAMES),
    content_type=st.sampled_from(CONTENT_TYPES),
)
def test_extract_never_raises(data: bytes, name: str, content_type: str) -> None:
    check(list(extract(data, name=name, content_type=content_type, location="fuzz")))
